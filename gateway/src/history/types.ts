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
  /** Telemetry only: when the reading was taken, ms (bridge/reading-time.ts); the readings API orders by it. */
  t?: number;
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
  /**
   * The latest `limit` telemetry events of a device (latest by reading time `t`, then seq) that match
   * `query`, ordered by `t`, then seq: a reading that arrived late sits at the time it was taken.
   */
  readings(deviceId: string, query: ReadingsQuery, limit: number): StoredEvent[];
}

export interface ReadingsQuery {
  /** Received at or after this time (ms); default 0. */
  since?: number;
  /** Taken at or after this time (ms, reading time `t`); default no bound. */
  from?: number;
  /** Taken at or before this time (ms, reading time `t`); default no bound. */
  to?: number;
}
