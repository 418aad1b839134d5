/**
 * One handler per inbound MQTT message type, plus a dispatcher that only routes by topic.
 * Handlers validate first (schema.ts), then store-and-relay; a bad message is rejected and counted,
 * never thrown out of here.
 */
import type { Commands } from "../commands.ts";
import type { DeviceRegistry } from "../devices.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { Relay } from "../relay.ts";
import { commandAckSchema, parsePayload, statusSchema, telemetrySchema, type PayloadRejection } from "../schema.ts";
import { parseDeviceTopic } from "../topics.ts";
import { readingTime } from "./reading-time.ts";

export interface HandlerContext {
  relay: Relay;
  devices: DeviceRegistry;
  commands: Commands;
  metrics: Metrics;
  log: Logger;
}

export interface Inbound {
  topic: string;
  deviceId: string;
  payload: Buffer;
  receivedAt: number;
  receivedMono: number;
}

type RejectReason = PayloadRejection | "bad_topic" | "internal";

/** Logs at most `perWindow` rejections per reason per window, so a flooding device cannot flood the log. */
class RejectionLog {
  private window = 0;
  private readonly counts = new Map<RejectReason, number>();
  constructor(private readonly log: Logger, private readonly perWindow = 20, private readonly windowMs = 10_000) {}
  warn(reason: RejectReason, topic: string, detail: string): void {
    const w = Math.floor(Date.now() / this.windowMs);
    if (w !== this.window) {
      for (const [r, n] of this.counts) if (n > this.perWindow) this.log.warn({ reason: r, suppressed: n - this.perWindow }, "rejections not logged");
      this.window = w;
      this.counts.clear();
    }
    const n = (this.counts.get(reason) ?? 0) + 1;
    this.counts.set(reason, n);
    if (n <= this.perWindow) this.log.warn({ reason, topic, detail }, "rejected MQTT message");
  }
}

export function handleTelemetry(ctx: HandlerContext, m: Inbound, reject: Reject): void {
  const parsed = parsePayload(telemetrySchema, m.payload);
  if (!parsed.ok) return reject(parsed.reason, m.topic, parsed.detail);
  const t = parsed.value;
  const time = readingTime(t, m.receivedAt);
  const stored = ctx.relay.emit(
    {
      kind: "telemetry",
      topic: m.topic,
      deviceId: m.deviceId,
      receivedAt: m.receivedAt,
      seq: t.seq,
      t: time.t,
      data: {
        deviceId: m.deviceId,
        topic: m.topic,
        seq: t.seq,
        boot: t.boot,
        t: time.t,
        age: time.age,
        timeSource: time.timeSource,
        receivedAt: m.receivedAt,
        readings: t.readings,
        battery: t.battery,
        dropped: t.dropped ?? 0,
        corrupt: t.corrupt ?? 0,
      },
    },
    m.receivedMono,
  );
  if (!stored) {
    ctx.metrics.duplicates.inc();
    return;
  }
  ctx.devices.recordReading(m.deviceId, t, time, m.receivedAt);
}

export function handleStatus(ctx: HandlerContext, m: Inbound, reject: Reject): void {
  const parsed = parsePayload(statusSchema, m.payload);
  if (!parsed.ok) return reject(parsed.reason, m.topic, parsed.detail);
  const s = parsed.value;
  const sleepMs = s.state === "sleeping" ? s.sleepMs : null;
  ctx.devices.recordStatus(m.deviceId, s, m.receivedAt);
  ctx.relay.emit(
    {
      kind: "status",
      topic: m.topic,
      deviceId: m.deviceId,
      receivedAt: m.receivedAt,
      data: {
        deviceId: m.deviceId,
        topic: m.topic,
        state: s.state,
        sleepMs,
        nextWakeAt: sleepMs === null ? null : m.receivedAt + sleepMs,
        receivedAt: m.receivedAt,
      },
    },
    m.receivedMono,
  );
}

export function handleCommandAck(ctx: HandlerContext, m: Inbound, reject: Reject): void {
  const parsed = parsePayload(commandAckSchema, m.payload);
  if (!parsed.ok) return reject(parsed.reason, m.topic, parsed.detail);
  const ack = parsed.value;
  ctx.relay.emit(
    {
      kind: "command-ack",
      topic: m.topic,
      deviceId: m.deviceId,
      receivedAt: m.receivedAt,
      data: {
        deviceId: m.deviceId,
        topic: m.topic,
        commandId: ack.id,
        op: ack.op,
        ok: ack.ok,
        error: ack.error ?? null,
        receivedAt: m.receivedAt,
      },
    },
    m.receivedMono,
  );
  ctx.commands.handleAck(m.deviceId, ack, m.receivedAt);
}

type Reject = (reason: RejectReason, topic: string, detail: string) => void;

/** Routes one MQTT message; never throws. */
export function createDispatcher(ctx: HandlerContext): (topic: string, payload: Buffer) => void {
  const rejections = new RejectionLog(ctx.log);
  const reject: Reject = (reason, topic, detail) => {
    ctx.metrics.rejected.inc({ reason });
    rejections.warn(reason, topic, detail);
  };
  return (topic, payload) => {
    const receivedMono = performance.now();
    const parsed = parseDeviceTopic(topic);
    const kind = parsed?.kind === "cmd/ack" ? "ack" : parsed?.kind === "cmd" ? "other" : (parsed?.kind ?? "other");
    ctx.metrics.messagesIn.inc({ kind });
    if (!parsed || parsed.kind === "cmd") return reject("bad_topic", topic, "not a device → gateway topic");
    const m: Inbound = { topic, deviceId: parsed.deviceId, payload, receivedAt: Date.now(), receivedMono };
    try {
      if (parsed.kind === "telemetry") handleTelemetry(ctx, m, reject);
      else if (parsed.kind === "status") handleStatus(ctx, m, reject);
      else handleCommandAck(ctx, m, reject);
    } catch (e) {
      // e.g. the database is unavailable: count and keep running; the message is lost only if the
      // broker already considered it delivered (we ack after this returns).
      reject("internal", topic, (e as Error).message);
    }
  };
}
