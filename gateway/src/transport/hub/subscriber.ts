/**
 * One SSE stream: a bounded queue (events and bytes) between the hub and the HTTP response (a sink,
 * see sink.ts), and the replay-then-live state machine.
 *
 * Resume without gap or duplicate: the transport stores an event (getting its id) before it publishes
 * it to the hub, and reads of the event log (EventLog) are synchronous. So while replaying, a live
 * event is always also in the log, and replay keeps reading the log
 * page by page until a page comes back short: at that instant (same tick) the stream has seen every
 * id up to the newest one and switches to live. This is Mercure's "buffer live events during
 * replay" with history itself as the buffer, which keeps memory bounded however long replay takes.
 */
import type { ResetData } from "../../protocol/events.ts";
import { levelsMatch } from "../../protocol/topic-filter.ts";
import type { Metrics } from "../../ops/metrics.ts";
import type { EventLog, StoredEvent } from "../transport.ts";
import { HEARTBEAT, encodeEvent } from "./sse-format.ts";
import type { SinkEvents, SseSink } from "./sink.ts";

export type DropReason = "queue_events" | "queue_bytes" | "stalled";

/** What a client asked for. */
export interface StreamRequest {
  /** Requested topic filters (already validated). */
  filters: string[];
  /** Token read filters; undefined = open mode (no restriction). */
  allowed?: string[];
  /** Resume point; undefined = live only. */
  lastEventId?: number;
}

/** The same for every stream of a hub: one shared object (an idle stream's memory counts, see gateway/bench). */
export interface StreamLimits {
  maxQueueEvents: number;
  maxQueueBytes: number;
  replayPageSize: number;
  /** The encoded `retry:` line, sent first. */
  retry: Uint8Array;
}

/** The hub's side of a stream. */
export interface SubscriberOwner {
  /** Called once when the stream ends for any reason. */
  release(sub: SseSubscriber): void;
  /** Asks the hub to flush this stream soon (batches writes per event-loop turn). */
  scheduleFlush(sub: SseSubscriber): void;
}

/**
 * The last chunk a flush concatenated, kept by the hub for one batch: the streams of a batch usually queued the
 * very same buffers (every stream of "#", all live), so they all write one shared Buffer instead of a copy each.
 */
export interface ChunkMemo {
  parts: readonly Uint8Array[];
  chunk: Uint8Array;
}

export class SseSubscriber implements SinkEvents {
  /** Encoded events and control lines (retry, heartbeat); events are often shared with other streams. */
  private queue: Uint8Array[] = [];
  private queuedEvents = 0;
  private queuedBytes = 0;
  /** The sink can take a write now. */
  private ready = false;
  /** The sink took data (or asked for more) since the last heartbeat tick. */
  private tookSinceTick = true;
  private mode: "replay" | "live";
  /** Highest event id this stream has passed (sent or filtered out). */
  private cursor: number;
  private closed = false;
  readonly filters: string[];
  private readonly filterLevels: string[][];
  private readonly allowedLevels: string[][] | undefined;

  constructor(
    request: StreamRequest,
    private readonly limits: StreamLimits,
    private readonly sink: SseSink,
    private readonly log: EventLog,
    private readonly metrics: Metrics,
    private readonly owner: SubscriberOwner,
  ) {
    this.filters = request.filters;
    this.filterLevels = request.filters.map((f) => f.split("/"));
    this.allowedLevels = request.allowed?.map((f) => f.split("/"));
    this.mode = request.lastEventId === undefined ? "live" : "replay";
    this.cursor = request.lastEventId ?? 0;
    this.ready = sink.open(this);
    this.push(limits.retry, false);
    if (request.lastEventId !== undefined) this.startReplay(request.lastEventId);
  }

  /** Sink event: the receiver took what was written. */
  writable(): void {
    this.ready = true;
    this.tookSinceTick = true;
    this.flush();
  }

  /** Sink event: the client went away. */
  gone(): void {
    this.finish();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Live event from the hub (already stored, so `event.id` is final). Returns whether it was queued. */
  offer(event: StoredEvent, topicLevels: string[], bytes: Uint8Array): boolean {
    if (this.closed || this.mode === "replay") return false; // replay will read it from history
    if (event.id <= this.cursor) return false;
    this.cursor = event.id;
    if (!this.matches(topicLevels)) return false;
    this.push(bytes, true);
    return !this.closed; // push() drops a stream whose queue is full
  }

  /** Heartbeat tick: detect a stream whose socket accepted nothing for a whole interval. */
  tick(): void {
    if (this.closed) return;
    if (!this.tookSinceTick && this.queue.length > 0) return this.drop("stalled");
    this.tookSinceTick = false;
    this.push(HEARTBEAT, false);
  }

  /** Ends the stream cleanly (graceful shutdown): queued data is still written. */
  end(): void {
    if (this.closed) return;
    this.ready = true; // the last write may go over the sink's mark: it is the last one
    this.flushNow();
    this.finish();
    this.sink.end();
  }

  /** Writes what is queued if the HTTP side is ready for it. Called by the hub's batcher with its batch's memo. */
  flush(memo?: ChunkMemo): void {
    if (this.mode === "replay") this.continueReplay();
    this.flushNow(memo);
  }

  private matches(topicLevels: string[]): boolean {
    if (!this.filterLevels.some((f) => levelsMatch(f, topicLevels))) return false;
    return this.allowedLevels === undefined || this.allowedLevels.some((f) => levelsMatch(f, topicLevels));
  }

  private push(bytes: Uint8Array, isEvent: boolean): void {
    if (this.closed) return;
    if (isEvent && this.queuedEvents + 1 > this.limits.maxQueueEvents) return this.drop("queue_events");
    if (this.queuedBytes + bytes.length > this.limits.maxQueueBytes) return this.drop("queue_bytes");
    this.queue.push(bytes);
    this.queuedBytes += bytes.length;
    if (isEvent) this.queuedEvents++;
    this.owner.scheduleFlush(this);
  }

  private flushNow(memo?: ChunkMemo): void {
    if (this.closed || !this.ready || this.queue.length === 0) return;
    const parts = this.queue;
    const events = this.queuedEvents;
    const size = this.queuedBytes;
    this.queue = [];
    this.queuedBytes = 0;
    this.queuedEvents = 0;
    // Coalesce: one write per flush instead of one per event keeps syscalls low at high fan-out.
    let chunk: Uint8Array;
    if (parts.length === 1) chunk = parts[0];
    else if (memo && samePartsAs(memo, parts)) chunk = memo.chunk;
    else {
      chunk = Buffer.concat(parts, size);
      if (memo) {
        memo.parts = parts;
        memo.chunk = chunk;
      }
    }
    if (events) this.metrics.eventsOut.inc(events);
    this.ready = this.sink.write(chunk);
    if (this.ready) this.tookSinceTick = true;
  }

  private startReplay(requested: number): void {
    const bounds = this.log.bounds();
    let reason: ResetData["reason"] | undefined;
    if (requested < bounds.evictedThrough) reason = "history_evicted";
    else if (requested > bounds.latestId) reason = "unknown_id"; // e.g. a wiped database
    if (reason) {
      this.metrics.resets.inc();
      const from = reason === "history_evicted" ? bounds.evictedThrough : 0;
      const earliestId = bounds.earliestId ?? bounds.latestId + 1;
      const data = JSON.stringify({ reason, requestedId: requested, earliestId } satisfies ResetData);
      // The reset carries the id replay restarts after, so a reconnect does not reset again.
      this.push(encodeEvent(from, "reset", data), true);
      this.cursor = from;
    }
    this.continueReplay();
  }

  /** Reads history pages while the queue is under half full; goes live when a page comes back short. */
  private continueReplay(): void {
    const { replayPageSize, maxQueueEvents, maxQueueBytes } = this.limits;
    while (!this.closed && this.mode === "replay") {
      const page = this.log.after(this.cursor, replayPageSize);
      for (const event of page) {
        // Full enough: the next pull (the socket took the queue) continues from the cursor.
        if (this.queuedEvents * 2 >= maxQueueEvents || this.queuedBytes * 2 >= maxQueueBytes) return;
        this.cursor = event.id;
        if (!this.matches(event.topic.split("/"))) continue;
        this.push(encodeEvent(event.id, event.kind, event.data), true);
      }
      if (page.length < replayPageSize) this.mode = "live";
    }
  }

  private drop(reason: DropReason): void {
    if (this.closed) return;
    this.metrics.drops.inc({ reason });
    this.finish();
    // Cut the connection rather than end it: a stalled socket would never finish a graceful end.
    // The client sees the stream break and resumes with its last id, which replays what this
    // queue could not hold.
    this.sink.abort();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.queuedBytes = 0;
    this.queuedEvents = 0;
    this.owner.release(this);
  }
}

function samePartsAs(memo: ChunkMemo, parts: readonly Uint8Array[]): boolean {
  if (memo.parts.length !== parts.length) return false;
  for (let i = 0; i < parts.length; i++) if (memo.parts[i] !== parts[i]) return false;
  return true;
}
