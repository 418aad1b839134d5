/**
 * Summaries in SQLite: per device, metric and bucket (1m, 1h, 1d of reading time) the count, min, max, sum and
 * last value. apply() runs in the transaction that stores the reading (transport.ts), so a bucket never misses
 * or double-counts a stored reading; a late reading updates its old bucket. Changed buckets are collected for
 * the coalesced `summary` events (summaries/publisher.ts takes them with takeChanged()).
 *
 * rebuild() recomputes buckets from the raw events in event-id order, the order apply() saw them in, so even
 * the floating-point sums come out bit for bit the same.
 */
import { STEP_MS, SUMMARY_STEPS, type SummaryBucket, type SummaryStep, type TelemetryData } from "../../protocol/events.ts";
import { bucketStart, summaryValues, type BucketPoint, type RawPoint, type SummaryRetention } from "../../summaries/series.ts";
import type { NewEvent } from "../transport.ts";
import type Database from "better-sqlite3";
import type { Db } from "./db.ts";

type BucketRow = { start: number; count: number; min: number; max: number; sum: number; last: number };

/** One CSV row's worth of a bucket or a reading, for export. */
export type ExportRow =
  | { kind: "raw"; deviceId: string; t: number; seq: number; metric: string; value: number }
  | { kind: "bucket"; deviceId: string; step: SummaryStep; t: number; metric: string; count: number; min: number; max: number; mean: number; last: number };

const EXPORT_PAGE = 2000;

/**
 * In an UPDATE every expression reads the row as it was, so `last` and its (t, seq) move together. One
 * statement upserts all buckets of a reading (rows = values × widths): a third of the statement overhead of one
 * per bucket.
 */
const UPSERT_HEAD = "INSERT INTO summaries (device_id, metric, step, start, count, min, max, sum, last, last_t, last_seq) VALUES ";
const UPSERT_ROW = "(?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)";
const UPSERT_TAIL = `
  ON CONFLICT (device_id, metric, step, start) DO UPDATE SET
    count = count + 1, min = min(min, excluded.min), max = max(max, excluded.max), sum = sum + excluded.sum,
    last = CASE WHEN (excluded.last_t, excluded.last_seq) > (last_t, last_seq) THEN excluded.last ELSE last END,
    last_t = CASE WHEN (excluded.last_t, excluded.last_seq) > (last_t, last_seq) THEN excluded.last_t ELSE last_t END,
    last_seq = CASE WHEN (excluded.last_t, excluded.last_seq) > (last_t, last_seq) THEN excluded.last_seq ELSE last_seq END
  RETURNING metric, step, start, count, min, max, sum, last`;

export class SqliteSummaries {
  /** Upsert statements by number of rows. */
  private readonly upserts = new Map<number, Database.Statement<unknown[], BucketRow & { metric: string; step: SummaryStep }>>();
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
    this.bucketsIn = db.prepare<[string, string, string, number, number], BucketRow>(
      `SELECT start, count, min, max, sum, last FROM summaries
       WHERE device_id = ? AND metric = ? AND step = ? AND start >= ? AND start <= ? ORDER BY start`,
    );
    this.bucketCount = db.prepare<[string, string, string, number, number], { n: number }>(
      "SELECT COUNT(*) AS n FROM summaries WHERE device_id = ? AND metric = ? AND step = ? AND start >= ? AND start <= ?",
    );
    this.rawIn = db.prepare<[string, number, number, number], { t: number; seq: number; data: string }>(
      `SELECT t, seq, data FROM events WHERE kind = 'telemetry' AND device_id = ? AND t >= ? AND t <= ?
       ORDER BY t, seq LIMIT ?`,
    );
    this.rawCount = db.prepare<[string, number, number], { n: number }>(
      "SELECT COUNT(*) AS n FROM events WHERE kind = 'telemetry' AND device_id = ? AND t >= ? AND t <= ?",
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
  apply(event: NewEvent, _id: number): void {
    if (event.kind !== "telemetry") return;
    this.add(event.deviceId, event.data, SUMMARY_STEPS);
  }

  private add(deviceId: string, data: TelemetryData, steps: readonly SummaryStep[], collect = true): number {
    const args: unknown[] = [];
    for (const [metric, value] of summaryValues(data)) {
      if (!Number.isFinite(value)) {
        this.onSkippedValue();
        continue;
      }
      for (const step of steps) args.push(deviceId, metric, step, bucketStart(data.t, step), value, value, value, value, data.t, data.seq);
    }
    const rows = args.length / 10;
    if (rows === 0) return 0;
    const changed = this.upsert(rows).all(...args);
    if (collect) for (const row of changed) this.noteChanged(deviceId, row.metric, row.step, row);
    return rows;
  }

  private upsert(rows: number) {
    let statement = this.upserts.get(rows);
    if (!statement) {
      statement = this.db.prepare(UPSERT_HEAD + Array(rows).fill(UPSERT_ROW).join(", ") + UPSERT_TAIL);
      this.upserts.set(rows, statement);
    }
    return statement;
  }

  private noteChanged(deviceId: string, metric: string, step: SummaryStep, row: BucketRow): void {
    let buckets = this.changed.get(deviceId);
    if (!buckets) this.changed.set(deviceId, (buckets = new Map()));
    buckets.set(`${metric}/${step}/${row.start}`, toBucket(metric, step, row));
  }

  /** The buckets changed since the last call, by device (each bucket once, as it is now). */
  takeChanged(): Map<string, SummaryBucket[]> {
    const out = new Map<string, SummaryBucket[]>();
    for (const [deviceId, buckets] of this.changed) out.set(deviceId, [...buckets.values()]);
    this.changed = new Map();
    return out;
  }

  buckets(deviceId: string, metric: string, step: SummaryStep, from: number, to: number): BucketPoint[] {
    return this.bucketsIn.all(deviceId, metric, step, bucketStart(from, step), to).map((r) => {
      const b = toBucket(metric, step, r);
      return { t: b.start, count: b.count, min: b.min, max: b.max, mean: b.mean, last: b.last };
    });
  }

  bucketCountIn(deviceId: string, metric: string, step: SummaryStep, from: number, to: number): number {
    return this.bucketCount.get(deviceId, metric, step, bucketStart(from, step), to)!.n;
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

  /**
   * A database from before summaries existed has readings but no buckets: build them once, in the background
   * (rebuild() yields between slices). Resolves with what it did, or undefined when there was nothing to do.
   */
  async buildOnce(): Promise<{ from: number; days: number; buckets: number } | undefined> {
    const built = this.db.prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'summaries_built'");
    if (built.get()) return undefined;
    const any = this.db.prepare("SELECT 1 FROM events WHERE kind = 'telemetry' LIMIT 1").get();
    const result = any ? await this.rebuild() : undefined;
    this.db.prepare("INSERT INTO meta (key, value) VALUES ('summaries_built', 1) ON CONFLICT(key) DO NOTHING").run();
    return result;
  }

  /** Readings in the range (each may or may not carry the metric: an upper bound of raw points). */
  rawCountIn(deviceId: string, from: number, to: number): number {
    return this.rawCount.get(deviceId, from, to)!.n;
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
      del.run(deviceId, start, start + STEP_MS["1d"]);
      let rows = 0;
      for (const e of events.iterate(deviceId, start, start + STEP_MS["1d"])) rows += this.add(deviceId, JSON.parse(e.data) as TelemetryData, SUMMARY_STEPS, false);
      return rows;
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
