/**
 * Every event that comes from MQTT enters the gateway here: one handler per inbound message kind, the broker's
 * delivery reports, and a router that only dispatches by topic. Handlers validate first (protocol/payloads.ts),
 * then hand the typed event to the transport; a bad message is rejected and counted, never thrown out of here.
 */
import { createHash } from "node:crypto";
import type { Commands } from "../commands/commands.ts";
import type { Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { CommandAckData, DeviceStatus, StatusData, TelemetryData } from "../protocol/events.ts";
import { commandAckSchema, parsePayload, statusSchema, telemetrySchema, type PayloadRejection, type Status } from "../protocol/payloads.ts";
import { readingTime } from "../protocol/reading-time.ts";
import { parseDeviceTopic } from "../protocol/topics.ts";
import { ErrTransportClosed, type Transport } from "../transport/transport.ts";

export interface HandlerContext {
  transport: Transport;
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
  /** A retained message replayed because the gateway (re)subscribed, not one the device just sent. */
  retained: boolean;
}

type RejectReason = PayloadRejection | "bad_topic" | "not_stored";

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

async function handleTelemetry(ctx: HandlerContext, m: Inbound, reject: Reject): Promise<void> {
  const parsed = parsePayload(telemetrySchema, m.payload);
  if (!parsed.ok) return reject(parsed.reason, m.topic, parsed.detail);
  const t = parsed.value;
  const time = readingTime(t, m.receivedAt);
  const data: TelemetryData = {
    deviceId: m.deviceId,
    topic: m.topic,
    seq: t.seq,
    boot: t.boot,
    ...time,
    receivedAt: m.receivedAt,
    readings: t.readings,
    battery: t.battery,
    dropped: t.dropped ?? 0,
    corrupt: t.corrupt ?? 0,
  };
  const event = { kind: "telemetry", topic: m.topic, deviceId: m.deviceId, receivedAt: m.receivedAt, seq: t.seq, t: time.t, data } as const;
  if (!(await ctx.transport.dispatch(event, m.receivedMono))) ctx.metrics.duplicates.inc();
}

async function handleStatus(ctx: HandlerContext, m: Inbound, reject: Reject): Promise<void> {
  // An empty payload deletes the retained status (MQTT 3.1.1 §3.3.1.3): the gateway does it when a device is
  // deleted (DELETE /api/devices/:id); the broker forwards it like any message. Not a report: counted, not
  // stored, and not logged as a bad message.
  if (m.payload.length === 0) {
    ctx.metrics.retainedCleared.inc();
    return;
  }
  const parsed = parsePayload(statusSchema, m.payload);
  if (!parsed.ok) return reject(parsed.reason, m.topic, parsed.detail);
  const s = parsed.value;
  // The replay of a status the gateway already has is not news: storing it would restart the device's overdue
  // clock and end its overdue or offline alert although the device said nothing.
  if (m.retained && sameStatus(ctx.transport.device(m.deviceId)?.status, s.state)) {
    ctx.metrics.retainedReplays.inc();
    return;
  }
  const sleepMs = s.state === "sleeping" ? s.sleepMs : null;
  const data: StatusData = {
    deviceId: m.deviceId,
    topic: m.topic,
    state: s.state,
    sleepMs,
    nextWakeAt: sleepMs === null ? null : m.receivedAt + sleepMs,
    receivedAt: m.receivedAt,
  };
  await ctx.transport.dispatch({ kind: "status", topic: m.topic, deviceId: m.deviceId, receivedAt: m.receivedAt, data, dedupeKey: statusDedupeKey(s, m) }, m.receivedMono);
}

/**
 * The identity of a status report, the same on every gateway and however late a copy comes (a persistent
 * session redelivers hours later): `online` and `sleeping` name their wake (`boot`), and the payload's hash
 * tells two reports of one boot apart (a low-battery wake sends no reading and keeps the previous boot; its
 * `sleeping` carries its own wake times). A copy is a no-op, so a redelivery cannot turn a device's state back.
 * The Last Will (`offline`) and statuses without `boot` have nothing to tell one report from the next: there,
 * copies within STATUS_DEDUPE_WINDOW_MS of receipt are one report.
 */
function statusDedupeKey(s: Status, m: Inbound): string {
  const hash = createHash("sha256").update(m.payload).digest("base64url").slice(0, 22);
  if (s.state !== "offline" && s.boot !== undefined) return `${s.state}/${s.boot}/${hash}`;
  return `${hash}@${Math.floor(m.receivedAt / STATUS_DEDUPE_WINDOW_MS)}`;
}

/** Copies of a Last Will reach the gateways of Redis mode within milliseconds; a straddling copy is stored twice (harmless). */
const STATUS_DEDUPE_WINDOW_MS = 2_000;

const sameStatus = (known: DeviceStatus | undefined, reported: StatusData["state"]): boolean =>
  known === reported || (known === "overdue" && reported === "sleeping");

async function handleCommandAck(ctx: HandlerContext, m: Inbound, reject: Reject): Promise<void> {
  const parsed = parsePayload(commandAckSchema, m.payload);
  if (!parsed.ok) return reject(parsed.reason, m.topic, parsed.detail);
  const ack = parsed.value;
  const data: CommandAckData = {
    deviceId: m.deviceId,
    topic: m.topic,
    commandId: ack.id,
    op: ack.op,
    ok: ack.ok,
    error: ack.error ?? null,
    receivedAt: m.receivedAt,
  };
  // one ack per command and outcome: a repeat (a redelivery, or its copy on another gateway) says nothing new
  const dedupeKey = `${ack.id}/${ack.ok}`;
  await ctx.transport.dispatch({ kind: "command-ack", topic: m.topic, deviceId: m.deviceId, receivedAt: m.receivedAt, data, dedupeKey }, m.receivedMono);
  await ctx.commands.handleAck(m.deviceId, ack, m.receivedAt);
}

type Reject = (reason: RejectReason, topic: string, detail: string) => void;

export interface BridgeHandlers {
  /**
   * Routes one MQTT message from the gateway's subscription. Resolves when it is handled (stored, or rejected
   * and counted as a bad message): then it may be acknowledged. Rejects when it could not be stored.
   */
  message(topic: string, payload: Buffer, retained?: boolean): Promise<void>;
  /** The embedded broker saw a client acknowledge a message it forwarded (broker "delivered" event). */
  delivered(report: { clientId: string; topic: string; payload: Buffer }): void;
}

export function createHandlers(ctx: HandlerContext): BridgeHandlers {
  const rejections = new RejectionLog(ctx.log);
  const reject: Reject = (reason, topic, detail) => {
    ctx.metrics.rejected.inc({ reason });
    rejections.warn(reason, topic, detail);
  };
  return {
    async message(topic, payload, retained = false) {
      const receivedMono = performance.now();
      const parsed = parseDeviceTopic(topic);
      const kind = parsed?.kind === "cmd/ack" ? "ack" : parsed?.kind === "cmd" ? "other" : (parsed?.kind ?? "other");
      ctx.metrics.messagesIn.inc({ kind });
      if (!parsed || parsed.kind === "cmd") return reject("bad_topic", topic, "not a device → gateway topic");
      const m: Inbound = { topic, deviceId: parsed.deviceId, payload, receivedAt: Date.now(), receivedMono, retained };
      try {
        if (parsed.kind === "telemetry") await handleTelemetry(ctx, m, reject);
        else if (parsed.kind === "status") await handleStatus(ctx, m, reject);
        else await handleCommandAck(ctx, m, reject);
      } catch (e) {
        // Not stored (the database failed, or the transport is closing): the rejection withholds the PUBACK,
        // so the broker keeps the message and redelivers it on the next connection.
        ctx.metrics.notAcked.inc({ reason: e instanceof ErrTransportClosed ? "shutting_down" : "store_failed" });
        rejections.warn("not_stored", topic, (e as Error).message);
        throw e;
      }
    },
    delivered({ clientId, topic, payload }) {
      const parsed = parseDeviceTopic(topic);
      // Only a device's own client taking its own command counts as delivery.
      if (parsed?.kind !== "cmd" || parsed.deviceId !== clientId) return;
      try {
        ctx.commands.markDelivered(parsed.deviceId, payload);
      } catch (e) {
        ctx.log.warn({ err: (e as Error).message, deviceId: clientId }, "cannot record command delivery");
      }
    },
  };
}
