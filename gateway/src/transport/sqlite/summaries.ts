/**
 * Summaries in SQLite: per device, metric and bucket (1m, 1h, 1d of reading time) the count, min, max, sum and
 * last value; a late reading updates its old bucket.
 *
 * Write-behind, with the event log as its journal: apply() (in the reading's transaction) updates the bucket in
 * memory; flush() writes every changed bucket and "applied through event id N" in one transaction, every
 * second and before any read. After a crash, recover() applies the readings after N again, from the log, in id
 * order, so the buckets are exactly what one update per reading gives, at a fraction of the writes (a bucket
 * that takes 60 readings a minute is written once a second, not 60 times).
 *
 * Every bucket is computed by merge() in event-id order, whether live, recovered or rebuilt, so even the
 * floating-point sums come out bit for bit the same. Changed buckets are also collected for the coalesced
 * `summary` events (summaries/publisher.ts takes them with takeChanged()).
 */
import { STEP_MS, SUMMARY_STEPS, type SummaryBucket, type SummaryStep, type TelemetryData } from "../../protocol/events.ts";
import { bucketStart, summaryValues, type BucketPoint, type RawPoint, type SummaryRetention } from "../../summaries/series.ts";
import type { NewEvent } from "../transport.ts";
import type { Db } from "./db.ts";

type BucketRow = { start: number; count: number; min: number; max: number; sum: number; last: number };

/** One CSV row's worth of a bucket or a reading, for export. */
export type ExportRow =
  | { kind: "raw"; deviceId: string; t: number; seq: number; metric: string; value: number }
  | { kind: "bucket"; deviceId: string; step: SummaryStep; t: number; metric: string; count: number; min: number; max: number; mean: number; last: number };

const EXPORT_PAGE = 2000;

/** A bucket as stored, with what `last` is ordered by. */
interface Bucket {
  count: number;
  min: number;
  max: number;
  sum: number;
  last: number;
  lastT: number;
  lastSeq: number;
}
type Key = string;
const keyOf = (deviceId: string, metric: string, step: SummaryStep, start: number): Key => `${deviceId}\u0000${metric}\u0000${step}\u0000${start}`;

const FLUSH_EVERY_MS = 1000;
/** Clean buckets kept in memory for the next reading (a device's current minute, hour and day). */
const MAX_CACHED = 50_000;
/** Changed buckets held before a write even without the timer. */
const MAX_DIRTY = 20_000;

export class SqliteSummaries {
  /** Buckets read or changed lately; `dirty` are those not written yet. */
  private readonly cache = new Map<Key, Bucket>();
  private dirty = new Set<Key>();
  /** The highest event id applied to the cache, and to the database (meta `summaries_through`). */
  private appliedThrough = 0;
  private flushedThrough = 0;
  /** Set when the cache may hold a reading whose transaction did not commit: recover() before the next write. */
  private stale = false;
  private readonly flushTimer: NodeJS.Timeout;
  private readonly selectBucket;
  private readonly writeBucket;
  private readonly setThrough;
  private readonly bucketsIn;
  private readonly bucketCount;
  private readonly rawIn;
  private readonly rawCount;
  private readonly rawMetricsIn;
  private readonly pruneStep;
  private readonly metricsOf;
  private readonly evictedMaxT;
  private readonly bucketPage;
  /** Buckets changed since the last takeChanged(), by device, then by metric/step/start. */
  private changed = new Map<string, Map<string, SummaryBucket>>();

  constructor(
    private readonly db: Db,
    private readonly retention: SummaryRetention,
    private readonly onSkippedValue: () => void = () => {},
  ) {
    this.selectBucket = db.prepare<[string, string, string, number], { count: number; min: number; max: number; sum: number; last: number; last_t: number; last_seq: number }>(
      "SELECT count, min, max, sum, last, last_t, last_seq FROM summaries WHERE device_id = ? AND metric = ? AND step = ? AND start = ?",
    );
    this.writeBucket = db.prepare<[string, string, string, number, number, number, number, number, number, number, number], void>(
      `INSERT INTO summaries (device_id, metric, step, start, count, min, max, sum, last, last_t, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (device_id, metric, step, start) DO UPDATE SET count = excluded.count, min = excluded.min, max = excluded.max,
         sum = excluded.sum, last = excluded.last, last_t = excluded.last_t, last_seq = excluded.last_seq`,
    );
    this.setThrough = db.prepare<[number], void>(
      "INSERT INTO meta (key, value) VALUES ('summaries_through', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    );
    this.flushTimer = setInterval(() => this.flush(), FLUSH_EVERY_MS);
    this.flushTimer.unref();
    this.bucketsIn = db.prepare<[string, string, string, number, number], BucketRow>(
      `SELECT start, count, min, max, sum, last FROM summaries
       WHERE device_id = ? AND metric = ? AND step = ? AND start >= ? AND start <= ? ORDER BY start`,
    );
    this.bucketCount = db.prepare<[string, string, string, number, number, number], { n: number }>(
      "SELECT COUNT(*) AS n FROM (SELECT 1 FROM summaries WHERE device_id = ? AND metric = ? AND step = ? AND start >= ? AND start <= ? LIMIT ?)",
    );
    this.rawIn = db.prepare<[string, number, number, number], { t: number; seq: number; data: string }>(
      `SELECT t, seq, data FROM events WHERE kind = 'telemetry' AND device_id = ? AND t >= ? AND t <= ?
       ORDER BY t, seq LIMIT ?`,
    );
    this.rawCount = db.prepare<[string, number, number, number], { n: number }>(
      "SELECT COUNT(*) AS n FROM (SELECT 1 FROM events WHERE kind = 'telemetry' AND device_id = ? AND t >= ? AND t <= ? LIMIT ?)",
    );
    this.rawMetricsIn = db.prepare<[string, number, number, number, number, number], { t: number; seq: number; data: string }>(
      `SELECT t, seq, data FROM events WHERE kind = 'telemetry' AND device_id = ? AND t >= ? AND t <= ?
         AND (t > ? OR (t = ? AND seq > ?)) ORDER BY t, seq LIMIT ${EXPORT_PAGE}`,
    );
    this.pruneStep = db.prepare<[string, number], void>("DELETE FROM summaries WHERE step = ? AND start < ?");
    this.evictedMaxT = db.prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'evicted_max_t'");
    this.metricsOf = db.prepare<[string, string], { metric: string }>("SELECT DISTINCT metric FROM summaries WHERE device_id = ? AND step = ? ORDER BY metric");
    this.bucketPage = db.prepare<[string, string, string, number, number], BucketRow>(
      `SELECT start, count, min, max, sum, last FROM summaries
       WHERE device_id = ? AND metric = ? AND step = ? AND start > ? AND start <= ? ORDER BY start LIMIT ${EXPORT_PAGE}`,
    );
  }

  /** Projection of a stored event (in its transaction): a reading updates its three buckets per value. */
  apply(event: NewEvent, id: number): void {
    if (event.kind !== "telemetry") return;
    // a bulk import that never lets the flush timer run still writes every so often (in this transaction)
    if (this.dirty.size >= MAX_DIRTY) this.flush();
    this.merge(event.deviceId, event.data, this.cache, (key) => this.load(key), true);
    this.appliedThrough = id;
  }

  /** The reading's transaction did not commit: what apply() did must not be written (recover() redoes it). */
  rolledBack(): void {
    this.stale = true;
  }

  /**
   * Adds a reading to its buckets in `into`: count, min, max, sum in this order of readings, and `last` by
   * (t, seq). `base` gives a bucket's value before (the database's, or none).
   */
  private merge(deviceId: string, data: TelemetryData, into: Map<Key, Bucket>, base: (key: Key) => Bucket | undefined, live: boolean): number {
    let n = 0;
    for (const [metric, value] of summaryValues(data)) {
      if (!Number.isFinite(value)) {
        if (live) this.onSkippedValue();
        continue;
      }
      for (const step of SUMMARY_STEPS) {
        const start = bucketStart(data.t, step);
        const key = keyOf(deviceId, metric, step, start);
        let b = into.get(key) ?? base(key);
        if (!b) b = { count: 1, min: value, max: value, sum: value, last: value, lastT: data.t, lastSeq: data.seq };
        else {
          b.count++;
          b.min = Math.min(b.min, value);
          b.max = Math.max(b.max, value);
          b.sum += value;
          if (data.t > b.lastT || (data.t === b.lastT && data.seq > b.lastSeq)) {
            b.last = value;
            b.lastT = data.t;
            b.lastSeq = data.seq;
          }
        }
        into.set(key, b);
        n++;
        if (live) {
          this.dirty.add(key);
          this.noteChanged(deviceId, metric, step, start, b);
        }
      }
    }
    return n;
  }

  /** A bucket as the database has it (a copy: the cache owns it from here). */
  private load(key: Key): Bucket | undefined {
    const [deviceId, metric, step, start] = key.split("\u0000") as [string, string, SummaryStep, string];
    const r = this.selectBucket.get(deviceId, metric, step, Number(start));
    return r && { count: r.count, min: r.min, max: r.max, sum: r.sum, last: r.last, lastT: r.last_t, lastSeq: r.last_seq };
  }

  /** Writes the changed buckets and how far they reach, in one transaction. Safe to call any time. */
  flush(): void {
    if (!this.db.open) return;
    if (this.stale) {
      this.recover();
      return;
    }
    if (this.dirty.size === 0 && this.appliedThrough === this.flushedThrough) return;
    const dirty = this.dirty;
    this.db.transaction(() => {
      for (const key of dirty) this.write(key, this.cache.get(key)!);
      this.setThrough.run(this.appliedThrough);
    })();
    this.dirty = new Set();
    this.flushedThrough = this.appliedThrough;
    if (this.cache.size > MAX_CACHED) this.cache.clear(); // all clean now: the next readings load what they need
  }

  private write(key: Key, b: Bucket): void {
    const [deviceId, metric, step, start] = key.split("\u0000") as [string, string, SummaryStep, string];
    this.writeBucket.run(deviceId, metric, step, Number(start), b.count, b.min, b.max, b.sum, b.last, b.lastT, b.lastSeq);
  }

  /**
   * Brings the buckets up to the event log: the readings after `summaries_through` (all of them in a database
   * from before summaries, whose stale buckets, if any, go first) are applied again in id order, then written.
   * At start (transport.ts) and after a rolled-back reading.
   */
  recover(): { readings: number } {
    this.cache.clear();
    this.dirty = new Set();
    this.stale = false;
    const through = this.db.prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'summaries_through'").get()?.value;
    if (through === undefined) this.db.prepare("DELETE FROM summaries").run();
    const events = this.db
      .prepare<[number], { id: number; device_id: string; data: string }>("SELECT id, device_id, data FROM events WHERE kind = 'telemetry' AND id > ? ORDER BY id")
      .all(through ?? 0);
    const since = this.db.prepare<[], { id: number | null }>("SELECT max(id) AS id FROM events").get()?.id ?? 0;
    for (const e of events) this.merge(e.device_id, JSON.parse(e.data) as TelemetryData, this.cache, (key) => this.load(key), true);
    this.changed = new Map(); // old news: not for summary events
    this.appliedThrough = Math.max(through ?? 0, since);
    this.flushedThrough = -1;
    this.flush();
    return { readings: events.length };
  }

  close(): void {
    clearInterval(this.flushTimer);
    this.flush();
  }

  private noteChanged(deviceId: string, metric: string, step: SummaryStep, start: number, b: Bucket): void {
    let buckets = this.changed.get(deviceId);
    if (!buckets) this.changed.set(deviceId, (buckets = new Map()));
    buckets.set(`${metric}/${step}/${start}`, toBucket(metric, step, { start, ...b }));
  }

  /** The buckets changed since the last call, by device (each bucket once, as it is now). */
  takeChanged(): Map<string, SummaryBucket[]> {
    const out = new Map<string, SummaryBucket[]>();
    for (const [deviceId, buckets] of this.changed) out.set(deviceId, [...buckets.values()]);
    this.changed = new Map();
    return out;
  }

  buckets(deviceId: string, metric: string, step: SummaryStep, from: number, to: number): BucketPoint[] {
    this.flush();
    return this.bucketsIn.all(deviceId, metric, step, bucketStart(from, step), to).map((r) => {
      const b = toBucket(metric, step, r);
      return { t: b.start, count: b.count, min: b.min, max: b.max, mean: b.mean, last: b.last };
    });
  }

  bucketCountIn(deviceId: string, metric: string, step: SummaryStep, from: number, to: number, cap = Number.MAX_SAFE_INTEGER - 1): number {
    this.flush();
    return this.bucketCount.get(deviceId, metric, step, bucketStart(from, step), to, cap + 1)!.n;
  }

  raw(deviceId: string, metric: string, from: number, to: number, limit: number): RawPoint[] {
    const points: RawPoint[] = [];
    for (const r of this.rawIn.iterate(deviceId, from, to, limit)) {
      const value = valueOf(JSON.parse(r.data) as TelemetryData, metric);
      if (value !== undefined) points.push({ t: r.t, value, seq: r.seq });
    }
    return points;
  }

  rawCompleteFrom(): number {
    const evicted = this.evictedMaxT.get()?.value;
    return evicted === undefined ? 0 : evicted + 1;
  }

  /** Readings in the range (each may or may not carry the metric: an upper bound of raw points). */
  rawCountIn(deviceId: string, from: number, to: number, cap = Number.MAX_SAFE_INTEGER - 1): number {
    return this.rawCount.get(deviceId, from, to, cap + 1)!.n;
  }

  /**
   * Every value of a device in the range, page by page (for a streamed CSV export): each page is one finished
   * query, so no statement stays open between pages (better-sqlite3 refuses writes while one is) and a client
   * that stops reading holds nothing. Buckets come metric by metric, each in time order.
   */
  *exportRows(deviceId: string, step: "raw" | SummaryStep, from: number, to: number, metric?: string): Generator<ExportRow> {
    if (step === "raw") {
      let after = { t: -1, seq: -1 };
      for (;;) {
        const page = this.rawMetricsIn.all(deviceId, from, to, after.t, after.t, after.seq);
        for (const r of page) {
          for (const [m, value] of summaryValues(JSON.parse(r.data) as TelemetryData)) {
            if (metric === undefined || m === metric) yield { kind: "raw", deviceId, t: r.t, seq: r.seq, metric: m, value };
          }
        }
        if (page.length < EXPORT_PAGE) return;
        after = { t: page[page.length - 1]!.t, seq: page[page.length - 1]!.seq };
      }
    }
    this.flush();
    const metrics = metric === undefined ? this.metricsOf.all(deviceId, step).map((r) => r.metric) : [metric];
    for (const m of metrics) {
      for (let after = bucketStart(from, step) - 1; ; ) {
        const page = this.bucketPage.all(deviceId, m, step, after, to);
        for (const r of page) {
          const b = toBucket(m, step, r);
          yield { kind: "bucket", deviceId, step, t: b.start, metric: m, count: b.count, min: b.min, max: b.max, mean: b.mean, last: b.last };
        }
        if (page.length < EXPORT_PAGE) break;
        after = page[page.length - 1]!.start;
      }
    }
  }

  /**
   * Recomputes from the raw events every bucket of the whole UTC days that raw history still covers: all of them
   * while retention has deleted no reading, else the days after the latest reading time retention deleted
   * (event-log.ts keeps it). One transaction per device and day, with a turn of the event loop between them,
   * so a big database does not stall MQTT and HTTP; a day is rebuilt in event-id order, as apply() saw it.
   */
  async rebuild(): Promise<{ from: number; days: number; buckets: number }> {
    const evictedMaxT = this.evictedMaxT.get()?.value;
    const from = evictedMaxT === undefined ? 0 : Math.floor(evictedMaxT / STEP_MS["1d"]) * STEP_MS["1d"] + STEP_MS["1d"];
    const slices = this.db
      .prepare<[number], { device_id: string; day: number }>(
        // a literal divisor: a bound JS number is a REAL, and the division would not be an integer one
        `SELECT DISTINCT device_id, (t / ${STEP_MS["1d"]}) AS day FROM events WHERE kind = 'telemetry' AND t >= ? ORDER BY device_id, day`,
      )
      .all(from);
    const del = this.db.prepare<[string, number, number], void>("DELETE FROM summaries WHERE device_id = ? AND start >= ? AND start < ?");
    const events = this.db.prepare<[string, number, number], { data: string }>(
      "SELECT data FROM events WHERE kind = 'telemetry' AND device_id = ? AND t >= ? AND t < ? ORDER BY id",
    );
    const rebuildDay = this.db.transaction((deviceId: string, start: number) => {
      this.flush();
      del.run(deviceId, start, start + STEP_MS["1d"]);
      const day = new Map<Key, Bucket>();
      for (const e of events.all(deviceId, start, start + STEP_MS["1d"])) this.merge(deviceId, JSON.parse(e.data) as TelemetryData, day, () => undefined, false);
      for (const [key, b] of day) {
        this.write(key, b);
        this.cache.delete(key); // the next reading of that day loads the rebuilt bucket
      }
      return day.size;
    });
    let buckets = 0;
    for (const { device_id, day } of slices) {
      buckets += rebuildDay(device_id, day * STEP_MS["1d"]);
      await new Promise((resolve) => setImmediate(resolve));
    }
    return { from, days: slices.length, buckets };
  }

  /** Drops buckets older than their retention. */
  prune(now: number): void {
    this.flush();
    for (const step of SUMMARY_STEPS) {
      const keep = this.retention[step];
      if (keep > 0) this.pruneStep.run(step, now - keep);
    }
  }
}

function toBucket(metric: string, step: SummaryStep, r: BucketRow): SummaryBucket {
  return { metric, step, start: r.start, count: r.count, min: r.min, max: r.max, mean: r.sum / r.count, last: r.last };
}

function valueOf(data: TelemetryData, metric: string): number | undefined {
  for (const [m, v] of summaryValues(data)) if (m === metric) return v;
  return undefined;
}
