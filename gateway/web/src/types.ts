// Shapes of what the gateway sends: the event union and the device view are the gateway's own definitions
// (gateway/src/protocol); only what the page alone uses is declared here.
import type { ResetData } from "../../src/protocol/events.ts";

export type {
  AlertData,
  AlertKind,
  AlertSeverity,
  AlertState,
  CommandAckData,
  CommandData,
  CommandOp,
  CommandState,
  DeviceMetaData,
  DeviceStatus,
  EventKind,
  ReadingTime,
  ResetData,
  StatusData,
  StreamEvent,
  SummaryBucket,
  SummaryData,
  SummaryStep,
  TelemetryData,
  TimeSource,
} from "../../src/protocol/events.ts";
export type { DeviceView as DeviceSummary, LastReading } from "../../src/protocol/device-state.ts";
export { EVENT_KINDS, STEP_MS, SUMMARY_STEPS } from "../../src/protocol/events.ts";

export type { BucketPoint, RawPoint, Series as SeriesAnswer, SeriesStep } from "../../src/summaries/series.ts";

/** Connection as the page shows it; the leader tab shares it with the others. */
export interface ConnState {
  state: "connecting" | "live" | "reconnecting" | "unauthorized";
  /** Events replayed after the last reconnect that happened while the page was disconnected. */
  missed: number;
  /** The gateway said history no longer reached back to our last id (event: reset). */
  reset: ResetData | null;
  lastEventId: number | null;
}
