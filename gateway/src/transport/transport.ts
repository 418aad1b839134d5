/**
 * The seam between what produces events (bridge/, commands/) and what reads them (http/): store-then-publish
 * behind one small interface, the way Mercure keeps its Transport. An implementation owns the durable event
 * log, the id sequence, de-duplication, the state derived from events (device state, by the reducer in
 * protocol/device-state.ts) and the live fan-out to SSE streams. transport/sqlite/ is the one-process
 * implementation; transport/contract.ts is the suite every implementation must pass.
 */
import type { DeviceView } from "../protocol/device-state.ts";
import type { StoredEventData, StoredKind } from "../protocol/events.ts";
import { gatewayEventTopic } from "../protocol/topics.ts";
import type { SseSink } from "./hub/sink.ts";
import type { StreamRequest } from "./hub/subscriber.ts";

export type { StreamRequest } from "./hub/subscriber.ts";
export type { SseSink } from "./hub/sink.ts";

/** An event before it has an id. */
export type NewEvent = { [K in StoredKind]: NewEventOf<K> }[StoredKind];

interface EventBase<K extends StoredKind> {
  kind: K;
  /** MQTT topic the event came from (`sensors/{id}/cmd` for command state changes): used by filters. */
  topic: string;
  deviceId: string;
  receivedAt: number;
  data: StoredEventData[K];
  /**
   * What identifies the MQTT message this event came from, for kinds without a seq (status, command acks):
   * with deviceId, a second copy of it takes no id. Every gateway of the scaled-out mode receives every message
   * (transport/redis/), so the shared log drops the copies; one process receives one copy and may ignore it.
   */
  dedupeKey?: string;
}

export type NewEventOf<K extends StoredKind> = K extends "telemetry"
  ? EventBase<K> & {
      /** With deviceId, the reading's identity: a second copy is a duplicate and takes no id. */
      seq: number;
      /** When the reading was taken, ms (protocol/reading-time.ts); the readings API orders by it. */
      t: number;
    }
  : EventBase<K>;

export interface StoredEvent {
  /** Gateway-wide, strictly increasing, never reused. */
  id: number;
  kind: StoredKind;
  topic: string;
  deviceId: string;
  receivedAt: number;
  /** The SSE `data:` line, JSON without newlines. */
  data: string;
}

export interface HistoryBounds {
  /** Smallest id still stored, undefined when empty. */
  earliestId: number | undefined;
  /** Largest id ever assigned (0 when none). */
  latestId: number;
  /** Every id ≤ this was deleted by retention. */
  evictedThrough: number;
}

/**
 * What the SSE hub replays from. Read synchronously, so a replay and the live head never leave a gap: an
 * implementation whose storage answers asynchronously keeps a local log the hub can read this way.
 */
export interface EventLog {
  /** Up to `limit` events with id > `afterId`, oldest first. */
  after(afterId: number, limit: number): StoredEvent[];
  bounds(): HistoryBounds;
}

export interface ReadingsQuery {
  /** Received at or after this time (ms); default 0. */
  since?: number;
  /** Taken at or after this time (ms, reading time `t`); default no bound. */
  from?: number;
  /** Taken at or before this time (ms, reading time `t`); default no bound. */
  to?: number;
}

/**
 * Told of every stored event once it is committed and published, in id order, synchronously (so it may dispatch
 * events of its own, e.g. alerts). It must not throw.
 */
export type StoredListener = (event: NewEvent, stored: StoredEvent) => void;

export interface Transport {
  /**
   * Stores the event, assigns its id, applies it to the derived state in the same transaction, then fans it
   * out to the streams. Resolves undefined for a duplicate reading (same device and seq): it takes no id.
   * `receivedMono` (performance.now() at MQTT receipt) feeds the relay-latency metric.
   */
  dispatch(event: NewEvent, receivedMono?: number): Promise<StoredEvent | undefined>;
  /**
   * Opens a stream onto `sink`: replays from `request.lastEventId` (or `reset` first when that id is gone),
   * then goes live, with no gap and no duplicate. Throws ErrTransportClosed after close().
   */
  subscribe(request: StreamRequest, sink: SseSink): void;
  /**
   * The latest `limit` readings of a device matching `query` (latest by reading time `t`, then seq),
   * ordered by `t`, then seq: a reading that arrived late sits at the time it was taken.
   */
  readings(deviceId: string, query: ReadingsQuery, limit: number): StoredEvent[];
  /** Device state as the reducer derived it from the events, ordered by device id. */
  devices(): DeviceView[];
  device(deviceId: string): DeviceView | undefined;
  /**
   * Forgets a device's state in every replica (DELETE /api/devices/:id): dispatches a `device` event with
   * `deleted`, which the apply step turns into the row's removal; its events stay until retention. False when
   * there was no such device.
   */
  forgetDevice(deviceId: string): Promise<boolean>;
  /** Adds a StoredListener; returns its removal. */
  onStored(listener: StoredListener): () => void;
  /** Whether the storage answers (for /healthz). */
  healthy(): boolean;
  /** Ends every stream (queued data is still written) and stops accepting; idempotent. */
  close(): Promise<void>;
}

/**
 * The event is in the shared log (it has its id and every replica will apply it), but this instance's replica
 * did not apply it in time: not a failure to store, only no read-your-write yet (Redis mode).
 */
export class ErrAppliedLate extends Error {
  readonly code = "applied_late";
  constructor(readonly id: number, timeoutMs: number) {
    super(`event ${id} is in Redis but this gateway's replica did not apply it within ${timeoutMs} ms`);
    this.name = "ErrAppliedLate";
  }
}

export class ErrTransportClosed extends Error {
  readonly code = "shutting_down";
  constructor() {
    super("the gateway is shutting down");
    this.name = "ErrTransportClosed";
  }
}

/** The `device` event of forgetDevice(): the apply step removes the device's row when it meets it. */
export function deviceDeleted(deviceId: string, at: number): NewEvent {
  const topic = gatewayEventTopic(deviceId, "device");
  return { kind: "device", topic, deviceId, receivedAt: at, data: { deviceId, topic, name: null, location: null, at, deleted: true } };
}
