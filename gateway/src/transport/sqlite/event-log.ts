/** The event log in SQLite (see db.ts for the schema and durability settings). */
import type { EventLog, HistoryBounds, NewEvent, ReadingsQuery, StoredEvent } from "../transport.ts";
import type { Db } from "./db.ts";

export interface Retention {
  /** Rows kept (the newest). */
  maxEvents: number;
  maxAgeMs: number;
  /**
   * `summary` events are live updates of buckets the series API always has: kept this long (default 1 h), so
   * they take the place of readings in `maxEvents` for an hour at most. A resume from further back skips them,
   * with no reset (a page that was away that long reads the series API again anyway).
   */
  summaryMaxAgeMs?: number;
}

const SUMMARY_EVENTS_MS = 3600_000;

type Row = { id: number; kind: StoredEvent["kind"]; topic: string; device_id: string; received_at: number; data: string };

const toEvent = (r: Row): StoredEvent => ({
  id: r.id,
  kind: r.kind,
  topic: r.topic,
  deviceId: r.device_id,
  receivedAt: r.received_at,
  data: r.data,
});

export class SqliteEventLog implements EventLog {
  private readonly insert;
  private readonly selectReading;
  private readonly selectAfter;
  private readonly selectReadings;
  private readonly selectBounds;
  private readonly selectEvicted;
  private readonly setEvicted;
  private readonly deleteThrough;
  private readonly maxIdOlderThan;
  private readonly newestBeyond;
  private readonly maxTThrough;
  private readonly setEvictedMaxT;
  private readonly deleteSummariesBefore;
  private readonly deleteId;

  constructor(
    private readonly db: Db,
    private readonly retention: Retention,
  ) {
    // id null: AUTOINCREMENT assigns the next; a given id (a replica of the Redis log) moves sqlite_sequence with it
    this.insert = db.prepare<[number | null, string, string, string, number | null, number | null, number, string], { id: number }>(
      "INSERT INTO events (id, kind, topic, device_id, seq, t, received_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    );
    this.deleteId = db.prepare<[number], void>("DELETE FROM events WHERE id = ?");
    this.selectReading = db.prepare<[string, number], { id: number }>(
      "SELECT id FROM events WHERE device_id = ? AND seq = ? AND kind = 'telemetry'",
    );
    this.selectAfter = db.prepare<[number, number], Row>("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?");
    // events_reading_time serves this: device, then t and seq in order.
    this.selectReadings = db.prepare<[string, number, number, number, number], Row>(
      `SELECT * FROM events WHERE device_id = ? AND kind = 'telemetry' AND t >= ? AND t <= ? AND received_at >= ?
       ORDER BY t DESC, seq DESC LIMIT ?`,
    );
    this.selectBounds = db.prepare<[], { earliest: number | null; latest: number | null }>(
      "SELECT (SELECT min(id) FROM events) AS earliest, (SELECT seq FROM sqlite_sequence WHERE name = 'events') AS latest",
    );
    this.selectEvicted = db.prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'evicted_through'");
    this.setEvicted = db.prepare<[number], void>(
      "INSERT INTO meta (key, value) VALUES ('evicted_through', ?) ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
    );
    this.deleteThrough = db.prepare<[number], void>("DELETE FROM events WHERE id <= ?");
    this.maxIdOlderThan = db.prepare<[number], { id: number | null }>(
      "SELECT max(id) AS id FROM events WHERE received_at < ?",
    );
    this.maxTThrough = db.prepare<[number], { t: number | null }>("SELECT max(t) AS t FROM events WHERE kind = 'telemetry' AND id <= ?");
    this.setEvictedMaxT = db.prepare<[number], void>(
      "INSERT INTO meta (key, value) VALUES ('evicted_max_t', ?) ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
    );
    this.newestBeyond = db.prepare<[number], { id: number }>("SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?");
    this.deleteSummariesBefore = db.prepare<[number], void>("DELETE FROM events WHERE kind = 'summary' AND received_at < ?");
  }

  /**
   * Stores the event with the next id, or with `id` when the id was assigned elsewhere (the Redis log, whose
   * de-duplication already decided): undefined for a duplicate reading.
   */
  append(event: NewEvent, id?: number): StoredEvent | undefined {
    // Look first instead of INSERT OR IGNORE: an ignored AUTOINCREMENT insert still burns an id, and
    // a duplicate must not get one. Single writer (this process, synchronous), so no race; the
    // UNIQUE index events_reading stays as the durable guarantee.
    const reading = event.kind === "telemetry" ? event : undefined;
    const existing = reading && this.selectReading.get(reading.deviceId, reading.seq);
    if (existing) {
      if (id === undefined) return undefined;
      // The shared log gave it a new id: it had forgotten the reading, because its retention deleted it
      // (transport/redis/log.ts); this replica's own retention had not yet. The log's order wins.
      this.deleteId.run(existing.id);
    }
    const data = JSON.stringify(event.data);
    const row = this.insert.get(id ?? null, event.kind, event.topic, event.deviceId, reading?.seq ?? null, reading?.t ?? null, event.receivedAt, data);
    if (!row) return undefined;
    return { id: row.id, kind: event.kind, topic: event.topic, deviceId: event.deviceId, receivedAt: event.receivedAt, data };
  }

  /** The id append() gives the next event without one (in this process's transaction: single writer). */
  nextId(): number {
    return this.bounds().latestId + 1;
  }

  after(afterId: number, limit: number): StoredEvent[] {
    return this.selectAfter.all(afterId, limit).map(toEvent);
  }

  bounds(): HistoryBounds {
    const b = this.selectBounds.get()!;
    return {
      earliestId: b.earliest ?? undefined,
      latestId: b.latest ?? 0,
      evictedThrough: this.selectEvicted.get()?.value ?? 0,
    };
  }

  /** A replica that starts from a trimmed shared log: every id ≤ `through` is gone there, so here too. */
  recordEvicted(through: number): void {
    this.setEvicted.run(through);
  }

  prune(now: number): number {
    this.deleteSummariesBefore.run(now - (this.retention.summaryMaxAgeMs ?? SUMMARY_EVENTS_MS));
    // Deleting by id keeps the rule "everything ≤ evicted_through is gone" exact, which is what
    // decides whether a resuming client gets `event: reset`.
    const byCount = this.newestBeyond.get(this.retention.maxEvents)?.id ?? 0;
    const byAge = this.maxIdOlderThan.get(now - this.retention.maxAgeMs)?.id ?? 0;
    const through = Math.max(byCount, byAge);
    if (through <= 0 || through <= (this.selectEvicted.get()?.value ?? 0)) return 0;
    return this.db.transaction(() => {
      // the latest reading time retention deletes: summaries can be rebuilt only after it (sqlite/summaries.ts)
      const maxT = this.maxTThrough.get(through)?.t;
      if (maxT !== null && maxT !== undefined) this.setEvictedMaxT.run(maxT);
      const deleted = this.deleteThrough.run(through) as unknown as { changes: number };
      this.setEvicted.run(through);
      return deleted.changes;
    })();
  }

  readings(deviceId: string, query: ReadingsQuery, limit: number): StoredEvent[] {
    const { since = 0, from = Number.MIN_SAFE_INTEGER, to = Number.MAX_SAFE_INTEGER } = query;
    return this.selectReadings.all(deviceId, from, to, since, limit).map(toEvent).reverse();
  }
}
