/**
 * The SSE events of docs/protocol.md ("GET /events"): one union of kinds and their data, the only definition.
 * The gateway builds them (bridge/handlers.ts, commands/commands.ts, transport/hub); the web page imports
 * them too. No runtime dependencies: protocol/ is bundled into the page as well (test/browser checks that
 * no Node-only API reaches it).
 */
import type { ReadingTime } from "./reading-time.ts";

export type { ReadingTime, TimeSource } from "./reading-time.ts";

export type DeviceStatus = "online" | "sleeping" | "offline" | "unknown";
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
  state: Exclude<DeviceStatus, "unknown">;
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
}

/** The kinds that are stored and get an id. */
export type StoredKind = keyof StoredEventData;
export const STORED_KINDS = ["telemetry", "status", "command-ack", "command"] as const satisfies readonly StoredKind[];

/** Every kind a stream carries: the stored ones and `reset`. */
export type EventKind = StoredKind | "reset";
export const EVENT_KINDS = [...STORED_KINDS, "reset"] as const satisfies readonly EventKind[];

/** One SSE event as a client parses it: `id` is the gateway-wide increasing event id. */
export type StreamEvent =
  | { [K in StoredKind]: { id: number; kind: K; data: StoredEventData[K] } }[StoredKind]
  | { id: number; kind: "reset"; data: ResetData };
