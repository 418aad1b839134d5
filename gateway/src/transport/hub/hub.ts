/**
 * The SSE hub: fans stored events out to subscribers, batches their writes (per event-loop turn, at most one
 * batch per 20 ms), and runs one heartbeat timer for all of them (which also detects stalled streams).
 */
import type { Metrics } from "../../ops/metrics.ts";
import { ErrTransportClosed, type EventLog, type StoredEvent } from "../transport.ts";
import { encodeEvent, encodeRetry } from "./sse-format.ts";
import type { SseSink } from "./sink.ts";
import { SseSubscriber, type ChunkMemo, type StreamLimits, type StreamRequest, type SubscriberOwner } from "./subscriber.ts";

/**
 * Batches of writes start at least this far apart: at most 20 ms added to an event's latency, and only to one
 * that comes within 20 ms of the last batch (at a sensor fleet's rates, none). One write per stream per gap instead of
 * per event: at 100 events/s to 1,000 streams, 2026-12-01, half the syscalls and a p99 of 58 instead of 204 ms
 * (docs/benchmarks.md). 10 ms was too little to matter at 100/s.
 */
const MIN_BATCH_GAP_MS = 20;

export interface HubOptions {
  heartbeatMs: number;
  retryMs: number;
  maxQueueEvents: number;
  maxQueueBytes: number;
  replayPageSize: number;
}

export class Hub implements SubscriberOwner {
  private readonly subscribers = new Set<SseSubscriber>();
  /** Streams whose filters are all literal topics, by topic: publish looks them up instead of matching. */
  private readonly byTopic = new Map<string, Set<SseSubscriber>>();
  /** Streams with at least one wildcard filter: matched one by one. */
  private readonly wildcard = new Set<SseSubscriber>();
  private readonly dirty = new Set<SseSubscriber>();
  private flushScheduled = false;
  private lastBatchAt = -Infinity;
  /** performance.now() at MQTT receipt of the live events published since the last batch (latency histogram). */
  private batchReceived: number[] = [];
  private readonly heartbeat: NodeJS.Timeout;
  private closed = false;
  private readonly limits: StreamLimits;

  constructor(
    private readonly opts: HubOptions,
    private readonly log: EventLog,
    private readonly metrics: Metrics,
  ) {
    this.heartbeat = setInterval(() => {
      for (const sub of this.subscribers) sub.tick();
    }, opts.heartbeatMs);
    this.heartbeat.unref();
    const { maxQueueEvents, maxQueueBytes, replayPageSize } = opts;
    this.limits = { maxQueueEvents, maxQueueBytes, replayPageSize, retry: encodeRetry(opts.retryMs) };
  }

  get size(): number {
    return this.subscribers.size;
  }

  /**
   * Opens a stream onto `sink` (which it starts). Throws ErrTransportClosed during shutdown, before touching the sink.
   */
  subscribe(request: StreamRequest, sink: SseSink): SseSubscriber {
    if (this.closed) throw new ErrTransportClosed();
    const sub = new SseSubscriber(request, this.limits, sink, this.log, this.metrics, this);
    if (!sub.isClosed) {
      this.subscribers.add(sub);
      this.index(sub, request.filters);
    }
    this.metrics.clients.set(this.subscribers.size);
    return sub;
  }

  /** SubscriberOwner: a stream ended. */
  release(sub: SseSubscriber): void {
    if (!this.subscribers.delete(sub)) return; // ended while being created: never indexed
    this.dirty.delete(sub);
    this.unindex(sub, sub.filters);
    this.metrics.clients.set(this.subscribers.size);
  }

  /** SubscriberOwner: write this stream in the next batch. */
  scheduleFlush(sub: SseSubscriber): void {
    this.markDirty(sub);
  }

  /** Fans a stored event out. `receivedMono` is performance.now() at MQTT receipt. */
  publish(event: StoredEvent, receivedMono: number): void {
    if (this.subscribers.size === 0) return;
    const bytes = encodeEvent(event.id, event.kind, event.data); // encoded once, shared by all streams
    // Every stream sees every id (offer() filters), except literal-only streams for other topics:
    // they skip it, which is safe because their cursor only guards against replay duplicates.
    const levels = event.topic.split("/");
    const exact = this.byTopic.get(event.topic);
    let taken = false;
    if (exact) for (const sub of exact) taken = sub.offer(event, levels, bytes) || taken;
    for (const sub of this.wildcard) taken = sub.offer(event, levels, bytes) || taken;
    // Its latency is observed once, when the batch that writes it ends: per stream it would cost a histogram
    // observation per delivered event.
    if (taken) this.batchReceived.push(receivedMono);
  }

  private index(sub: SseSubscriber, filters: string[]): void {
    if (filters.some((f) => f.includes("+") || f.includes("#"))) {
      this.wildcard.add(sub);
      return;
    }
    for (const f of new Set(filters)) {
      let set = this.byTopic.get(f);
      if (!set) this.byTopic.set(f, (set = new Set()));
      set.add(sub);
    }
  }

  private unindex(sub: SseSubscriber, filters: string[]): void {
    this.wildcard.delete(sub);
    for (const f of filters) {
      const set = this.byTopic.get(f);
      if (!set) continue;
      set.delete(sub);
      if (set.size === 0) this.byTopic.delete(f);
    }
  }

  /** Graceful shutdown: ends every stream (queued data is still written); idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const sub of [...this.subscribers]) sub.end();
  }

  private markDirty(sub: SseSubscriber): void {
    this.dirty.add(sub);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate runs after the current I/O phase: every MQTT message parsed from the same socket read lands
    // in one write per stream. Batches also start at least MIN_BATCH_GAP_MS apart: above 50 messages a second
    // the events of a gap share one write per stream, and those writes (a syscall each) are most of the cost.
    const wait = this.lastBatchAt + MIN_BATCH_GAP_MS - performance.now();
    if (wait > 0) setTimeout(this.writeBatch, wait);
    else setImmediate(this.writeBatch);
  }

  private readonly writeBatch = (): void => {
    this.lastBatchAt = performance.now();
    this.flushScheduled = false;
    const subs = [...this.dirty];
    this.dirty.clear();
    const received = this.batchReceived;
    this.batchReceived = [];
    const memo: ChunkMemo = { parts: [], chunk: new Uint8Array(0) };
    for (const s of subs) s.flush(memo);
    const now = performance.now();
    for (const t of received) this.metrics.relayLatency.observe((now - t) / 1000);
  };
}
