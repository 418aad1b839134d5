/**
 * One SSE stream: a bounded queue (events and bytes) between the hub and the HTTP response, and
 * the replay-then-live state machine.
 *
 * Resume without gap or duplicate: the relay stores an event (getting its id) and publishes it to
 * the hub in the same synchronous step, and history reads are synchronous too (better-sqlite3).
 * So while replaying, a live event is always also in history, and replay keeps reading history
 * page by page until a page comes back short: at that instant (same tick) the stream has seen every
 * id up to the newest one and switches to live. This is Mercure's "buffer live events during
 * replay" with history itself as the buffer, which keeps memory bounded however long replay takes.
 */
import { levelsMatch } from "../topics.ts";
import type { History, StoredEvent } from "../history/types.ts";
import type { Metrics } from "../metrics.ts";
import { HEARTBEAT, encodeEvent, encodeRetry } from "./sse-format.ts";

export type DropReason = "queue_events" | "queue_bytes" | "stalled";

export interface SubscriberOptions {
  /** Requested topic filters (already validated). */
  filters: string[];
  /** Token read filters; undefined = open mode (no restriction). */
  allowed?: string[];
  /** Resume point; undefined = live only. */
  lastEventId?: number;
  maxQueueEvents: number;
  maxQueueBytes: number;
  replayPageSize: number;
  retryMs: number;
  /** Destroys the underlying connection (Node's ServerResponse) when the stream is dropped. */
  abortConnection?: () => void;
}

interface Queued {
  bytes: Uint8Array;
  /** performance.now() at MQTT receipt, for live events (latency histogram). */
  receivedMono?: number;
  isEvent: boolean;
}

export class SseSubscriber {
  readonly stream: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private queue: Queued[] = [];
  private queuedEvents = 0;
  private queuedBytes = 0;
  private readPending = false;
  private pulledSinceTick = true;
  private mode: "replay" | "live";
  /** Highest event id this stream has passed (sent or filtered out). */
  private cursor: number;
  private closed = false;
  private readonly filterLevels: string[][];
  private readonly allowedLevels: string[][] | undefined;

  constructor(
    private readonly opts: SubscriberOptions,
    private readonly history: History,
    private readonly metrics: Metrics,
    /** Called once when the stream ends for any reason. */
    private readonly onClose: (sub: SseSubscriber) => void,
    /** Asks the hub to flush this stream soon (batches writes per event-loop turn). */
    private readonly scheduleFlush: (sub: SseSubscriber) => void,
  ) {
    this.filterLevels = opts.filters.map((f) => f.split("/"));
    this.allowedLevels = opts.allowed?.map((f) => f.split("/"));
    this.mode = opts.lastEventId === undefined ? "live" : "replay";
    this.cursor = opts.lastEventId ?? 0;
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
          this.push({ bytes: encodeRetry(opts.retryMs), isEvent: false });
          if (this.mode === "replay") this.startReplay();
        },
        pull: () => {
          this.readPending = true;
          this.pulledSinceTick = true;
          this.flush();
        },
        cancel: () => this.finish(),
      },
      // No internal buffering in the web stream: our queue is the only one, so its limits are real.
      { highWaterMark: 0 },
    );
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Live event from the hub (already stored, so `event.id` is final). */
  offer(event: StoredEvent, topicLevels: string[], bytes: Uint8Array, receivedMono: number): void {
    if (this.closed || this.mode === "replay") return; // replay will read it from history
    if (event.id <= this.cursor) return;
    this.cursor = event.id;
    if (!this.matches(topicLevels)) return;
    this.push({ bytes, receivedMono, isEvent: true });
  }

  /** Heartbeat tick: detect a stream whose socket accepted nothing for a whole interval. */
  tick(): void {
    if (this.closed) return;
    if (!this.pulledSinceTick && this.queue.length > 0) return this.drop("stalled");
    this.pulledSinceTick = false;
    this.push({ bytes: HEARTBEAT, isEvent: false });
  }

  /** Ends the stream cleanly (graceful shutdown): queued data is still written. */
  end(): void {
    if (this.closed) return;
    this.flushNow();
    this.finish();
    try {
      this.controller.close();
    } catch {
      // already errored or closed by the consumer
    }
  }

  /** Writes what is queued if the HTTP side is ready for it. Called by the hub's batcher. */
  flush(): void {
    if (this.mode === "replay") this.continueReplay();
    this.flushNow();
  }

  private matches(topicLevels: string[]): boolean {
    if (!this.filterLevels.some((f) => levelsMatch(f, topicLevels))) return false;
    return this.allowedLevels === undefined || this.allowedLevels.some((f) => levelsMatch(f, topicLevels));
  }

  private push(item: Queued): void {
    if (this.closed) return;
    if (item.isEvent && this.queuedEvents + 1 > this.opts.maxQueueEvents) return this.drop("queue_events");
    if (this.queuedBytes + item.bytes.length > this.opts.maxQueueBytes) return this.drop("queue_bytes");
    this.queue.push(item);
    this.queuedBytes += item.bytes.length;
    if (item.isEvent) this.queuedEvents++;
    this.scheduleFlush(this);
  }

  private flushNow(): void {
    if (this.closed || !this.readPending || this.queue.length === 0) return;
    const items = this.queue;
    this.queue = [];
    const size = this.queuedBytes;
    this.queuedBytes = 0;
    this.queuedEvents = 0;
    // Coalesce: one write per flush instead of one per event keeps syscalls low at high fan-out.
    let chunk: Uint8Array;
    if (items.length === 1) chunk = items[0].bytes;
    else {
      chunk = new Uint8Array(size);
      let offset = 0;
      for (const item of items) {
        chunk.set(item.bytes, offset);
        offset += item.bytes.length;
      }
    }
    const now = performance.now();
    let events = 0;
    for (const item of items) {
      if (!item.isEvent) continue;
      events++;
      if (item.receivedMono !== undefined) this.metrics.relayLatency.observe((now - item.receivedMono) / 1000);
    }
    if (events) this.metrics.eventsOut.inc(events);
    this.readPending = false;
    this.controller.enqueue(chunk);
  }

  private startReplay(): void {
    const requested = this.opts.lastEventId!;
    const bounds = this.history.bounds();
    let reason: string | undefined;
    if (requested < bounds.evictedThrough) reason = "history_evicted";
    else if (requested > bounds.latestId) reason = "unknown_id"; // e.g. a wiped database
    if (reason) {
      this.metrics.resets.inc();
      const from = reason === "history_evicted" ? bounds.evictedThrough : 0;
      const earliestId = bounds.earliestId ?? bounds.latestId + 1;
      const data = JSON.stringify({ reason, requestedId: requested, earliestId });
      // The reset carries the id replay restarts after, so a reconnect does not reset again.
      this.push({ bytes: encodeEvent(from, "reset", data), isEvent: true });
      this.cursor = from;
    }
    this.continueReplay();
  }

  /** Reads history pages while the queue is under half full; goes live when a page comes back short. */
  private continueReplay(): void {
    const { replayPageSize, maxQueueEvents, maxQueueBytes } = this.opts;
    while (!this.closed && this.mode === "replay") {
      const page = this.history.after(this.cursor, replayPageSize);
      for (const event of page) {
        // Full enough: the next pull (the socket took the queue) continues from the cursor.
        if (this.queuedEvents * 2 >= maxQueueEvents || this.queuedBytes * 2 >= maxQueueBytes) return;
        this.cursor = event.id;
        if (!this.matches(event.topic.split("/"))) continue;
        this.push({ bytes: encodeEvent(event.id, event.kind, event.data), isEvent: true });
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
    // queue could not hold. (Erroring the web stream instead would make @hono/node-server log it.)
    this.opts.abortConnection?.();
    try {
      this.controller.close();
    } catch {
      // already cancelled by the connection closing
    }
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.queuedBytes = 0;
    this.queuedEvents = 0;
    this.onClose(this);
  }
}
