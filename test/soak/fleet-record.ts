/**
 * What the devices themselves said, from fleet events, keyed by device id so that several fleets on the
 * same flash images (a faulty run, then a calm one) add up:
 * - stored readings: the firmware's `reading seq=N boot=B {...} stored at` line is printed after the
 *   append was read back from flash, so a seq is taken (durable, must arrive) once that line exists;
 * - completed wakes (standby requests) with the requested sleep and the awake time;
 * - CONNACK sessionPresent per connection, and telemetry PUBLISHes the device sent with DUP set.
 */
import type { Fleet } from "../../simulator/src/index.ts";

export interface StoredByDevice {
  seq: number;
  boot: number;
  readings: Record<string, number>;
}

export interface Standby {
  ms: number;
  awakeMs: number;
  at: number;
}

export interface DeviceRecord {
  stored: Map<number, StoredByDevice>;
  /** a seq logged twice with different values: the firmware reused it */
  reused: { seq: number; first: string; second: string }[];
  standbys: Standby[];
  sessionPresent: { value: 0 | 1; at: number }[];
  telemetrySent: number;
  telemetryDupSent: number;
  /** QoS of the telemetry PUBLISHes the device sent */
  telemetryQos: Set<number>;
  /** timeline: firmware lines, warnings, telemetry PUBLISHes, power cuts, each with Date.now() */
  lines: { at: number; line: string }[];
}

const READING = /^reading seq=(\d+) boot=(\d+) (\{.*\}) stored at/;
const CONNECTED = /^mqtt: connected at \d+ ms, sessionPresent=([01])/;
/** Timeline lines kept per device for failure messages (a soak device writes ~10 per wake). */
const KEEP_LINES = 2000;

export class FleetRecord {
  readonly devices = new Map<string, DeviceRecord>();

  device(id: string): DeviceRecord {
    let r = this.devices.get(id);
    if (!r) {
      r = { stored: new Map(), reused: [], standbys: [], sessionPresent: [], telemetrySent: 0, telemetryDupSent: 0, telemetryQos: new Set(), lines: [] };
      this.devices.set(id, r);
    }
    return r;
  }

  /** Starts recording a fleet's events (call right after startFleet). */
  attach(fleet: Fleet): void {
    fleet.on("log", ({ device, line }) => {
      const r = this.device(device.id);
      this.note(r, line);
      const reading = READING.exec(line);
      if (reading) {
        const stored = { seq: Number(reading[1]), boot: Number(reading[2]), readings: JSON.parse(reading[3]!) };
        const earlier = r.stored.get(stored.seq);
        if (earlier && JSON.stringify(earlier.readings) !== JSON.stringify(stored.readings)) {
          r.reused.push({ seq: stored.seq, first: JSON.stringify(earlier.readings), second: JSON.stringify(stored.readings) });
        }
        r.stored.set(stored.seq, stored);
      }
      const connected = CONNECTED.exec(line);
      if (connected) r.sessionPresent.push({ value: Number(connected[1]) as 0 | 1, at: Date.now() });
    });
    fleet.on("dmesg", ({ device, line }) => {
      // console.warn / console.error of the firmware arrive as "* " / "! " dmesg lines
      if (/^[!*] /.test(line)) this.note(this.device(device.id), line);
    });
    fleet.on("power-cut", ({ device, afterMs }) => this.note(this.device(device.id), `(power cut ${afterMs} ms after boot)`));
    fleet.on("standby", ({ device, ms, awakeMs }) => this.device(device.id).standbys.push({ ms, awakeMs, at: Date.now() }));
    fleet.on("publish", ({ device, topic, qos, dup }) => {
      if (!topic.endsWith("/telemetry")) return;
      const r = this.device(device.id);
      r.telemetrySent++;
      r.telemetryQos.add(qos);
      if (dup) r.telemetryDupSent++;
      this.note(r, `(telemetry PUBLISH qos=${qos} dup=${dup ? 1 : 0})`);
    });
  }

  wakes(id: string): number {
    return this.devices.get(id)?.standbys.length ?? 0;
  }

  private note(r: DeviceRecord, line: string): void {
    r.lines.push({ at: Date.now(), line });
    if (r.lines.length > KEEP_LINES) r.lines.shift();
  }
}

/** A device's timeline between two moments (UTC clock times), for assertion messages. */
export function timeline(record: DeviceRecord, from: number, to: number): string {
  return record.lines
    .filter((l) => l.at >= from && l.at <= to)
    .map((l) => `${clock(l.at)} ${l.line}`)
    .join("\n");
}

export const clock = (at: number): string => new Date(at).toISOString().slice(11, 23);
