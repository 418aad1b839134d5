/** Store-then-publish: the single path by which an event gets its id and reaches SSE streams. */
import type { History, NewEvent, StoredEvent } from "./history/types.ts";
import type { Hub } from "./hub/hub.ts";
import type { Metrics } from "./metrics.ts";

export class Relay {
  constructor(
    private readonly history: History,
    private readonly hub: Hub,
    private readonly metrics: Metrics,
  ) {}

  /**
   * Stores the event and fans it out, in one synchronous step (see hub/subscriber.ts for why
   * that makes resume gap-free). Returns undefined for a duplicate reading.
   */
  emit(event: NewEvent, receivedMono = performance.now()): StoredEvent | undefined {
    const stored = this.history.append(event);
    if (!stored) return undefined;
    this.metrics.eventsStored.inc({ kind: event.kind });
    this.hub.publish(stored, receivedMono);
    return stored;
  }
}
