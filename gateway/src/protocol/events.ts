/**
 * The SSE events of docs/protocol.md ("GET /events"): one union of kinds and their data, the only definition.
 * The gateway builds them (bridge/handlers.ts, commands/commands.ts, transport/hub); the web page imports
 * them too. No runtime dependencies: protocol/ is bundled into the page as well (test/browser checks that
 * no Node-only API reaches it).
 */
import type { ReadingTime } from "./reading-time.ts";

export type { ReadingTime, TimeSource } from "./reading-time.ts";

/** `overdue`: sleeping past its announced wake, by an alert rule of kind `overdue` (gateway/src/alerts). */
export type DeviceStatus = "online" | "sleeping" | "overdue" | "offline" | "unknown";
export type CommandState = "queued" | "delivered" | "acked" | "failed";
export type { CommandOp } from "./commands.ts";

export interface TelemetryData extends ReadingTime {
  deviceId: string;
  topic: string;
  seq: number;
  boot: number;
  receivedAt: number;
  readings: Record<string, number>;
  battery: number | null;
  dropped: number;
  corrupt: number;
}

export interface StatusData {
  deviceId: string;
  topic: string;
  state: "online" | "sleeping" | "offline";
  sleepMs: number | null;
  nextWakeAt: number | null;
  receivedAt: number;
}

export interface CommandAckData {
  deviceId: string;
  topic: string;
  commandId: string;
  op: string;
  ok: boolean;
  error: string | null;
  receivedAt: number;
}

export interface CommandData {
  deviceId: string;
  commandId: string;
  op: string;
  state: CommandState;
  at: number;
  /** `queued` only: the command's arguments (the command table is derived from these events). */
  args?: Record<string, unknown>;
  /** `failed` only: why. */
  error?: string;
}

/** Bucket widths of the summaries (gateway/src/summaries). */
export type SummaryStep = "1m" | "1h" | "1d";
export const SUMMARY_STEPS = ["1m", "1h", "1d"] as const satisfies readonly SummaryStep[];
export const STEP_MS: Record<SummaryStep, number> = { "1m": 60_000, "1h": 3_600_000, "1d": 86_400_000 };

/** One bucket of one metric: the readings taken (reading time `t`) in [start, start + step). */
export interface SummaryBucket {
  metric: string;
  step: SummaryStep;
  start: number;
  count: number;
  min: number;
  max: number;
  mean: number;
  /** The value of the reading taken last in the bucket (by `t`, then seq). */
  last: number;
}

/** Buckets of one device that changed since its last summary event (coalesced: see summaries/publisher.ts). */
export interface SummaryData {
  deviceId: string;
  /** `sensors/{id}/summary` (protocol/topics.ts gatewayEventTopic): filters and read rights select it. */
  topic: string;
  buckets: SummaryBucket[];
  at: number;
}

export type AlertKind = "threshold" | "battery" | "overdue" | "offline";
export type AlertState = "firing" | "resolved";
export type AlertSeverity = "info" | "warning" | "critical";

/** An alert as stored (GET /api/alerts) and streamed (`alert` event) after each change of it. */
export interface AlertData {
  alertId: number;
  ruleId: string;
  ruleName: string;
  kind: AlertKind;
  severity: AlertSeverity;
  deviceId: string;
  /**
   * The topic it was raised from (telemetry for threshold and battery, status for overdue and offline); the
   * `alert` event itself has the topic `sensors/{id}/alert`.
   */
  topic: string;
  metric: string | null;
  state: AlertState;
  /** One line for a person, e.g. "temperature 31.2 above 30 for 120 s". */
  message: string;
  /** The value that fired it, and the threshold (null for overdue and offline). */
  value: number | null;
  threshold: number | null;
  firedAt: number;
  resolvedAt: number | null;
  ackedAt: number | null;
  /** Name of the token (or "open") that acknowledged it. */
  ackedBy: string | null;
  updatedAt: number;
}

/** What a person set about a device (PATCH /api/devices/:id). */
export interface DeviceMetaData {
  deviceId: string;
  /** `sensors/{id}/device`. */
  topic: string;
  name: string | null;
  location: string | null;
  at: number;
  /** DELETE /api/devices/:id: the device's state is forgotten (its next report starts it afresh). */
  deleted?: boolean;
}

/** Sent before a replay that cannot start where the client asked: the id was trimmed, or never existed. */
export interface ResetData {
  reason: "history_evicted" | "unknown_id";
  requestedId: number;
  earliestId: number;
}

/** Data of each stored event kind. */
export interface StoredEventData {
  telemetry: TelemetryData;
  status: StatusData;
  "command-ack": CommandAckData;
  command: CommandData;
  summary: SummaryData;
  alert: AlertData;
  device: DeviceMetaData;
}

/** The kinds that are stored and get an id. */
export type StoredKind = keyof StoredEventData;
export const STORED_KINDS = ["telemetry", "status", "command-ack", "command", "summary", "alert", "device"] as const satisfies readonly StoredKind[];

/** Every kind a stream carries: the stored ones and `reset`. */
export type EventKind = StoredKind | "reset";
export const EVENT_KINDS = [...STORED_KINDS, "reset"] as const satisfies readonly EventKind[];

/** One SSE event as a client parses it: `id` is the gateway-wide increasing event id. */
export type StreamEvent =
  | { [K in StoredKind]: { id: number; kind: K; data: StoredEventData[K] } }[StoredKind]
  | { id: number; kind: "reset"; data: ResetData };
