/**
 * The one-process Transport: SQLite (db.ts, through projection.ts) for the event log and the state derived from
 * it (device state, commands, alerts, summaries), the in-process SSE hub for fan-out. Store and publish happen in one synchronous step, which is what makes resume gap-free
 * (hub/subscriber.ts): a live event is always already in the log a replay reads.
 */
import type { AlertTable } from "./alerts.ts";
import type { CommandView } from "./commands.ts";
import type { DeviceView } from "../../protocol/device-state.ts";
import type { Logger } from "../../ops/log.ts";
import type { Metrics } from "../../ops/metrics.ts";
import { Hub, type HubOptions } from "../hub/hub.ts";
import {
  deviceDeleted,
  ErrTransportClosed,
  type NewEvent,
  type ReadingsQuery,
  type SseSink,
  type StoredEvent,
  type StoredListener,
  type StreamRequest,
  type Transport,
} from "../transport.ts";
import type { Db } from "./db.ts";
import { Projection, type ProjectionOptions } from "./projection.ts";
import type { SqliteSummaries } from "./summaries.ts";

const PRUNE_EVERY_MS = 10_000;

export interface SqliteTransportOptions extends ProjectionOptions {
  sse: HubOptions;
}

export class SqliteTransport implements Transport {
  private readonly projection: Projection;
  /** Buckets of every reading, kept in the reading's transaction. */
  readonly summaries: SqliteSummaries;
  private readonly hub: Hub;
  private readonly pruneTimer: NodeJS.Timeout;
  private readonly listeners: StoredListener[] = [];
  private closed = false;

  constructor(
    db: Db,
    opts: SqliteTransportOptions,
    private readonly metrics: Metrics,
    logger: Logger,
  ) {
    this.projection = new Projection(db, opts, metrics, logger);
    this.summaries = this.projection.summaries;
    this.hub = new Hub(opts.sse, this.projection.eventLog, metrics);
    this.projection.prune(Date.now());
    this.pruneTimer = setInterval(() => {
      try {
        this.projection.prune(Date.now());
      } catch (err) {
        logger.error({ err }, "history retention failed");
      }
    }, PRUNE_EVERY_MS);
    this.pruneTimer.unref();
  }

  dispatch(event: NewEvent, receivedMono = performance.now()): Promise<StoredEvent | undefined> {
    try {
      return Promise.resolve(this.dispatchNow(event, receivedMono));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** dispatch() without the promise (the summary publisher, which runs in a listener). */
  dispatchNow(event: NewEvent, receivedMono = performance.now()): StoredEvent | undefined {
    if (this.closed) throw new ErrTransportClosed();
    const stored = this.projection.apply(event);
    if (!stored) return undefined;
    this.metrics.eventsStored.inc({ kind: event.kind });
    this.committed(event, stored, receivedMono);
    return stored;
  }

  onStored(listener: StoredListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  private committed(event: NewEvent, stored: StoredEvent, receivedMono: number): void {
    this.hub.publish(stored, receivedMono);
    for (const listener of this.listeners) listener(event, stored);
  }

  subscribe(request: StreamRequest, sink: SseSink): void {
    if (this.closed) throw new ErrTransportClosed();
    this.hub.subscribe(request, sink);
  }

  readings(deviceId: string, query: ReadingsQuery, limit: number): StoredEvent[] {
    return this.projection.eventLog.readings(deviceId, query, limit);
  }

  healthy(): boolean {
    return this.projection.healthy();
  }

  /** A command as the command events made it (transport/sqlite/commands.ts). */
  command(id: string): CommandView | undefined {
    return this.projection.commandTable.get(id);
  }

  devices(): DeviceView[] {
    return this.projection.deviceTable.list();
  }

  device(deviceId: string): DeviceView | undefined {
    return this.projection.deviceTable.get(deviceId);
  }

  async forgetDevice(deviceId: string): Promise<boolean> {
    if (!this.device(deviceId)) return false;
    await this.dispatch(deviceDeleted(deviceId, Date.now()));
    return true;
  }

  /** Alerts as the alert events made them (transport/sqlite/alerts.ts). */
  get alertTable(): AlertTable {
    return this.projection.alertTable;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pruneTimer);
    this.projection.close();
    this.hub.close();
  }
}
