/**
 * The retained JSON the gateway publishes on `sleepy/devices/<id>/state` (docs/protocol.md), read by the Home
 * Assistant entities of discovery.ts. The gateway publishes it, not the device's telemetry, because:
 * telemetry is not retained (Home Assistant would show nothing until a sleepy device next wakes, maybe an hour);
 * an outbox flush sends older readings after newer ones (this is the highest-seq reading: device-state.ts);
 * and `overdue` and the firing alerts are the gateway's knowledge, not the device's.
 */
import type { DeviceView } from "../protocol/device-state.ts";
import type { DeviceStatus } from "../protocol/events.ts";

export interface DeviceStatePayload {
  status: DeviceStatus;
  /**
   * The latest reading's values, and null for every other key the device has an entity for (Home Assistant
   * shows a template rendering `None` as unknown); battery in volts or null.
   */
  readings: Record<string, number | null>;
  battery: number | null;
  /** When the latest reading was taken and when the device last sent anything, ms since epoch (or null). */
  readingAt: number | null;
  lastSeen: number | null;
  nextWakeAt: number | null;
  alertsFiring: number;
}

export function deviceStatePayload(d: DeviceView, alertsFiring: number, readingKeys: readonly string[] = []): DeviceStatePayload {
  const readings: Record<string, number | null> = Object.fromEntries(readingKeys.map((k) => [k, null]));
  return {
    status: d.status,
    readings: Object.assign(readings, d.lastReading?.readings),
    battery: d.battery,
    readingAt: d.lastReading?.t ?? null,
    lastSeen: d.lastSeen,
    nextWakeAt: d.nextWakeAt,
    alertsFiring,
  };
}
