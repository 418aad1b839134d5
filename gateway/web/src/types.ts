// Shapes of what the gateway sends, as written in docs/protocol.md ("Gateway HTTP API").
// The page trusts the gateway for shape but still checks the fields it indexes by (see parse.ts).

export type DeviceStatus = "online" | "sleeping" | "offline" | "unknown";
export type CommandState = "queued" | "delivered" | "acked" | "failed";
export type CommandOp = "set-interval" | "stay-awake" | "ping" | "reboot";
/** How the gateway obtained a reading's `t`: sent by the device, `receivedAt - age`, or `receivedAt`. */
export type TimeSource = "device" | "age" | "received";

/** When a reading was taken (docs/protocol.md "Telemetry"): every report of a reading carries these. */
export interface ReadingTime {
  /** ms since epoch when the reading was taken: where charts and cards place it. */
  t: number;
  /** ms between taking the reading and publishing it, as the device sent it; null when it sent none. */
  age: number | null;
  timeSource: TimeSource;
}

export interface TelemetryData extends ReadingTime {
  deviceId: string;
  topic: string;
  seq: number;
  boot: number;
  receivedAt: number;
  readings: Record<string, number>;
  battery: number | null;
  dropped?: number;
  corrupt?: number;
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
}

export interface ResetData {
  reason: string;
  requestedId: number;
  earliestId: number;
}

/** One SSE event: `id` is the gateway-wide increasing event id. */
export type StreamEvent =
  | { id: number; kind: "telemetry"; data: TelemetryData }
  | { id: number; kind: "status"; data: StatusData }
  | { id: number; kind: "command-ack"; data: CommandAckData }
  | { id: number; kind: "command"; data: CommandData }
  | { id: number; kind: "reset"; data: ResetData };

export type EventKind = StreamEvent["kind"];
export const EVENT_KINDS: readonly EventKind[] = ["telemetry", "status", "command-ack", "command", "reset"];

/** GET /api/devices item. */
export interface DeviceSummary {
  deviceId: string;
  status: DeviceStatus;
  nextWakeAt: number | null;
  lastSeen: number | null;
  battery: number | null;
  lastReading: LastReading | null;
}

/** The reading with the highest seq of a device (GET /api/devices `lastReading`). */
export interface LastReading extends ReadingTime {
  seq: number;
  receivedAt: number;
  readings: Record<string, number>;
}

/** GET /api/devices/:id/readings item. */
export interface Reading extends ReadingTime {
  eventId: number;
  seq: number;
  boot: number;
  receivedAt: number;
  readings: Record<string, number>;
  battery: number | null;
}

/** Connection as the page shows it; the leader tab shares it with the others. */
export interface ConnState {
  state: "connecting" | "live" | "reconnecting" | "unauthorized";
  /** Events replayed after the last reconnect that happened while the page was disconnected. */
  missed: number;
  /** The gateway said history no longer reached back to our last id (event: reset). */
  reset: ResetData | null;
  lastEventId: number | null;
}
