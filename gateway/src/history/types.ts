/** The durable event log behind SSE ids, resume and the readings API. */

export type EventKind = "telemetry" | "status" | "command-ack" | "command";

export interface StoredEvent {
  /** Gateway-wide, strictly increasing, never reused. */
  id: number;
  kind: EventKind;
  /** MQTT topic the event came from (`sensors/{id}/cmd` for command state changes): used by filters. */
  topic: string;
  deviceId: string;
  receivedAt: number;
  /** The SSE `data:` line, JSON without newlines. */
  data: string;
}

export interface NewEvent {
  kind: EventKind;
  topic: string;
  deviceId: string;
  receivedAt: number;
  /** Telemetry only: with deviceId, the reading's identity. */
  seq?: number;
  data: Record<string, unknown>;
}

export interface HistoryBounds {
  /** Smallest id still stored, undefined when empty. */
  earliestId: number | undefined;
  /** Largest id ever assigned (0 when none). */
  latestId: number;
  /** Every id ≤ this was deleted by retention. */
  evictedThrough: number;
}

export interface History {
  /** Stores the event and assigns its id; undefined when it is a duplicate reading. */
  append(event: NewEvent): StoredEvent | undefined;
  /** Up to `limit` events with id > `afterId`, oldest first. */
  after(afterId: number, limit: number): StoredEvent[];
  bounds(): HistoryBounds;
  /** Applies retention by count and age; returns how many events were deleted. */
  prune(now: number): number;
  /** Latest `limit` telemetry events of a device received at or after `since`, oldest first. */
  readings(deviceId: string, since: number, limit: number): StoredEvent[];
}
