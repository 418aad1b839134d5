// Shapes of what the gateway sends: the event union and the device view are the gateway's own definitions
// (gateway/src/protocol); only what the page alone uses is declared here.
import type { ReadingTime, ResetData } from "../../src/protocol/events.ts";

export type {
  CommandAckData,
  CommandData,
  CommandOp,
  CommandState,
  DeviceStatus,
  EventKind,
  ReadingTime,
  ResetData,
  StatusData,
  StreamEvent,
  TelemetryData,
  TimeSource,
} from "../../src/protocol/events.ts";
export type { DeviceView as DeviceSummary, LastReading } from "../../src/protocol/device-state.ts";
export { EVENT_KINDS } from "../../src/protocol/events.ts";

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
