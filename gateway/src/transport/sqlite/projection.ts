/**
 * The apply step, owned once: an event goes into the SQLite event log with its id and changes the state derived
 * from it (device state, commands, alerts, summaries) in the same transaction, or nothing changes. SqliteTransport lets the log
 * assign the id; RedisTransport applies the shared Redis log here with the ids Redis assigned (a local replica),
 * so readings, devices, series and SSE replay read the same tables in both modes.
 */
import { randomInt } from "node:crypto";
import type { Logger } from "../../ops/log.ts";
import type { Metrics } from "../../ops/metrics.ts";
import type { SummaryRetention } from "../../summaries/series.ts";
import type { NewEvent, StoredEvent } from "../transport.ts";
import type { Db } from "./db.ts";
import { AlertTable } from "./alerts.ts";
import { CommandTable } from "./commands.ts";
import { DeviceTable } from "./devices.ts";
import { SqliteEventLog, type Retention } from "./event-log.ts";
import { SqliteSummaries } from "./summaries.ts";

export interface ProjectionOptions {
  retention: Retention;
  summaryRetention: SummaryRetention;
  /** Keep summaries (default true). */
  summaries?: boolean;
}

export class Projection {
  readonly eventLog: SqliteEventLog;
  readonly deviceTable: DeviceTable;
  readonly commandTable: CommandTable;
  readonly alertTable: AlertTable;
  /** Buckets of every reading, kept in the reading's transaction. */
  readonly summaries: SqliteSummaries;
  private readonly applyOne: (event: NewEvent, id: number | undefined) => StoredEvent | undefined;
  private readonly applyBatch: (batch: Array<{ event: NewEvent; id: number }>) => StoredEvent[];

  constructor(
    readonly db: Db,
    opts: ProjectionOptions,
    metrics: Metrics,
    logger: Logger,
  ) {
    this.eventLog = new SqliteEventLog(db, opts.retention);
    this.deviceTable = new DeviceTable(db);
    this.commandTable = new CommandTable(db);
    this.alertTable = new AlertTable(db);
    this.summaries = new SqliteSummaries(db, opts.summaryRetention, () => metrics.summaryValuesSkipped.inc());
    const summarise = opts.summaries ?? true;
    const apply = (event: NewEvent, id: number | undefined): StoredEvent | undefined => {
      if (event.kind === "alert") {
        // the table decides what the alert is now (its id, forward-only fields): the event carries that
        id ??= this.eventLog.nextId();
        event = { ...event, data: this.alertTable.apply(event.data, id) };
      }
      const stored = this.eventLog.append(event, id);
      if (stored) {
        // a device deleted through the API (DELETE /api/devices/:id) leaves every replica with this event
        if (event.kind === "device" && event.data.deleted) this.deviceTable.delete(event.deviceId);
        else this.deviceTable.apply(event, stored.id);
        this.commandTable.apply(event);
        if (summarise) this.summaries.apply(event, stored.id);
      }
      return stored;
    };
    this.applyOne = db.transaction(apply);
    this.applyBatch = db.transaction((batch: Array<{ event: NewEvent; id: number }>) =>
      batch.map(({ event, id }) => apply(event, id)!),
    );
    if (summarise) {
      // before retention runs: the readings the buckets have not caught up with must still be in the log
      const { readings } = this.summaries.recover();
      if (readings > 0) logger.info({ readings }, "summaries caught up with the stored readings");
    }
  }

  /**
   * Stores `event` (with `id`, or the log's next id) and applies it; undefined for a duplicate reading (only
   * without `id`).
   */
  apply(event: NewEvent, id?: number): StoredEvent | undefined {
    try {
      return this.applyOne(event, id);
    } catch (err) {
      this.summaries.rolledBack(); // the reading may be in the buckets' memory only
      throw err;
    }
  }

  /** Applies events whose ids were assigned elsewhere, in one transaction, in the order given. */
  applyAll(batch: Array<{ event: NewEvent; id: number }>): StoredEvent[] {
    try {
      return this.applyBatch(batch);
    } catch (err) {
      this.summaries.rolledBack();
      throw err;
    }
  }

  /** History and summary retention. */
  prune(now: number): void {
    this.summaries.flush(); // what retention deletes next is in the buckets on disk first
    this.eventLog.prune(now);
    this.summaries.prune(now);
  }

  /** A random id of this database, made once: who holds a Redis claim across restarts (transport/redis). */
  replicaId(): string {
    this.replica ??= String(this.metaOnce("replica_id", randomInt(2 ** 47)));
    return this.replica;
  }
  private replica: string | undefined;

  /**
   * The epoch of the Redis log this replica was built from (transport/redis/log.ts): `current` when it has
   * none yet, or when it has applied nothing yet (`adopt`).
   */
  followedEpoch(current: number, adopt: boolean): number {
    if (adopt) this.db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('redis_epoch', ?)").run(current);
    return this.metaOnce("redis_epoch", current);
  }

  /** The meta value at `key`, set to `candidate` first if it has none. */
  private metaOnce(key: string, candidate: number): number {
    this.db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)").run(key, candidate);
    return this.db.prepare<[string], { value: number }>("SELECT value FROM meta WHERE key = ?").get(key)!.value;
  }

  healthy(): boolean {
    return this.db.open && this.db.prepare("SELECT 1").get() !== undefined;
  }

  close(): void {
    this.summaries.close();
  }
}
