/**
 * Coalesced `summary` events: every `coalesceMs` one event per device whose buckets changed, carrying each
 * changed bucket once as it is now, so a device that sends ten readings a second still costs one event per
 * period. They go through the transport like every other event (ids, resume, topic filters).
 */
import { createHash } from "node:crypto";
import type { Logger } from "../ops/log.ts";
import type { SummaryBucket } from "../protocol/events.ts";
import { gatewayEventTopic } from "../protocol/topics.ts";
import type { NewEvent } from "../transport/transport.ts";

/** ~150 bytes each: an event stays under 40 KB. */
export const MAX_BUCKETS_PER_EVENT = 250;

export interface ChangedBuckets {
  takeChanged(): Map<string, SummaryBucket[]>;
}

export class SummaryPublisher {
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly source: ChangedBuckets,
    private readonly dispatch: (event: NewEvent) => unknown,
    coalesceMs: number,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => this.flush(), coalesceMs);
    this.timer.unref();
  }

  flush(now = Date.now()): void {
    for (const [deviceId, buckets] of this.source.takeChanged()) {
      const topic = gatewayEventTopic(deviceId, "summary");
      // A backlog of late readings can touch thousands of buckets: several events then, each well under an SSE
      // stream's byte limit (hub/subscriber.ts), which one huge event would exceed for every stream.
      for (let i = 0; i < buckets.length; i += MAX_BUCKETS_PER_EVENT) {
        const part = buckets.slice(i, i + MAX_BUCKETS_PER_EVENT);
        try {
          // Buckets only grow, so their content identifies the update: in Redis mode a second leader's copy (two
          // can overlap for a moment around a lease handover) takes no id.
          const dedupeKey = createHash("sha256").update(JSON.stringify(part)).digest("base64url").slice(0, 22);
          this.dispatch({ kind: "summary", topic, deviceId, receivedAt: now, data: { deviceId, topic, buckets: part, at: now }, dedupeKey });
        } catch (err) {
          // The buckets themselves are stored; only their live update is lost (a page reload reads them).
          this.log.warn({ err: (err as Error).message, deviceId }, "summary event not stored");
        }
      }
    }
  }

  /**
   * Stops. What changed in the last period is not sent: the buckets are stored, and a page that reconnects to
   * the next start reads them from the series API.
   */
  close(): void {
    clearInterval(this.timer);
  }
}
