/** Summary buckets in SQLite: `last` by reading time, retention per width, and the rebuild after raw retention. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createMetrics } from "../../ops/metrics.ts";
import { telemetry } from "../contract.ts";
import { openDatabase } from "./db.ts";
import { SqliteTransport } from "./transport.ts";
import { querySeries } from "../../summaries/series.ts";

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function open(opts: { retention?: { "1m": number; "1h": number; "1d": number }; maxEvents?: number; summaries?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "summaries-"));
  dirs.push(dir);
  const db = openDatabase(dir);
  const transport = new SqliteTransport(
    db,
    {
      retention: { maxEvents: opts.maxEvents ?? 1_000_000, maxAgeMs: 100 * 365 * DAY },
      summaryRetention: opts.retention ?? { "1m": 0, "1h": 0, "1d": 0 },
      summaries: opts.summaries,
      sse: { heartbeatMs: 15_000, retryMs: 2_000, maxQueueEvents: 1000, maxQueueBytes: 1 << 20, replayPageSize: 100 },
    },
    createMetrics(),
    pino({ level: "silent" }),
  );
  /** A reading taken at `t`, arriving at `arrival` (default: when it was taken). */
  const reading = (seq: number, t: number, temperature: number, arrival = t) =>
    transport.dispatchNow(telemetry("d", seq, arrival, { t, readings: { temperature }, battery: null }));
  return { db, transport, reading, s: transport.summaries };
}

describe("SqliteSummaries", () => {
  it("`last` is the value taken last (by t, then seq), whatever order the readings arrive in", () => {
    const { reading, s, transport } = open();
    const t0 = 1_000 * MIN;
    reading(1, t0 + 30_000, 10);
    reading(3, t0 + 10_000, 30); // arrives later, taken earlier: not the last
    reading(2, t0 + 50_000, 20);
    reading(4, t0 + 50_000, 40); // same time, higher seq: the last
    expect(s.buckets("d", "temperature", "1m", t0, t0)).toEqual([{ t: t0, count: 4, min: 10, max: 40, mean: 25, last: 40 }]);
    void transport.close();
  });

  it("drops buckets older than their width's retention, each width on its own", () => {
    const now = 100 * DAY;
    const { reading, s, transport } = open({ retention: { "1m": 2 * DAY, "1h": 10 * DAY, "1d": 0 } });
    reading(1, now - 20 * DAY, 1);
    reading(2, now - 5 * DAY, 2);
    reading(3, now - HOUR, 3);
    s.prune(now);
    const count = (step: "1m" | "1h" | "1d") => s.bucketCountIn("d", "temperature", step, 0, now);
    expect([count("1m"), count("1h"), count("1d")]).toEqual([1, 2, 3]);
    void transport.close();
  });

  it("rebuild after raw retention recomputes the whole days raw history still covers, bit for bit", async () => {
    const { reading, s, transport, db } = open({ maxEvents: 300 });
    // 500 readings 10 minutes apart (3.5 days) with values whose float sums depend on order; every 7th arrives
    // late, and one device clock runs an hour ahead: deleting by arrival does not delete by reading time
    const t0 = 20_000 * DAY;
    const values = Array.from({ length: 500 }, (_, i) => Math.sin(i) * 1e3 + 0.1 * i);
    const order = Array.from({ length: 500 }, (_, i) => i).sort((a, b) => (a % 7 === 0 ? a + 3 : a) - (b % 7 === 0 ? b + 3 : b));
    for (const [k, i] of order.entries()) reading(k + 1, t0 + i * 10 * MIN + (i === 150 ? HOUR : 0), values[i]!, t0 + (k + 3) * 10 * MIN);
    type Row = { step: "1m" | "1h" | "1d"; start: number };
    const snapshot = () => db.prepare("SELECT * FROM summaries ORDER BY device_id, metric, step, start").all() as Row[];
    s.flush();
    transport["projection"].eventLog.prune(Date.now()); // keeps the newest 300 rows
    const evictedMaxT = (db.prepare("SELECT value FROM meta WHERE key = 'evicted_max_t'").get() as { value: number }).value;
    const before = snapshot();
    db.prepare("UPDATE summaries SET sum = sum + 1, count = count + 1").run(); // damage every bucket
    const { from, days } = await s.rebuild();
    const after = snapshot();
    expect(from).toBe(Math.floor(evictedMaxT / DAY) * DAY + DAY);
    expect(days).toBeGreaterThan(0);
    // every bucket of a day raw history covers is as the readings made it; the others stay damaged
    const covered = (r: Row) => r.start >= from;
    expect(after.filter(covered)).toEqual(before.filter(covered));
    expect(after.filter(covered).length).toBeGreaterThan(100);
    const old = after.filter((r) => !covered(r));
    expect(old.length).toBeGreaterThan(0);
    expect(old).not.toEqual(before.filter((r) => !covered(r)));
    void transport.close();
  });

  it("step=auto leaves raw for buckets once retention deleted readings of the range", () => {
    const { reading, s, transport } = open({ maxEvents: 50 });
    const now = Date.now();
    for (let i = 0; i < 100; i++) reading(i + 1, now - (100 - i) * MIN, i);
    const coverage = { retention: { "1m": 0, "1h": 0, "1d": 0 }, summaries: true };
    const q = { deviceId: "d", metric: "temperature", from: now - 200 * MIN, to: now, step: "auto" as const };
    expect(querySeries(s, q, coverage, now).step).toBe("raw");
    transport["projection"].eventLog.prune(now); // the oldest 50 readings go
    expect(s.rawCompleteFrom()).toBe(now - 51 * MIN + 1);
    const auto = querySeries(s, q, coverage, now);
    expect(auto.step).toBe("1m");
    expect(auto.points).toHaveLength(100);
    expect(querySeries(s, { ...q, from: now - 30 * MIN }, coverage, now).step).toBe("raw");
    expect(querySeries(s, q, { ...coverage, summaries: false }, now).step).toBe("raw");
    void transport.close();
  });

  it("buckets not yet written when the process dies are recovered from the event log at the next start", () => {
    const a = open();
    const reference = open();
    for (let i = 0; i < 300; i++) {
      for (const x of [a, reference]) x.reading(i + 1, 5_000 * DAY + i * 7 * MIN, Math.cos(i) * 100);
    }
    reference.s.flush();
    // the process dies: a's last second of buckets is in its memory only, its readings are in the log
    const dir = a.db.name.replace(/\/gateway\.sqlite$/, "");
    const again = openDatabase(dir);
    const b = new SqliteTransport(
      again,
      { retention: { maxEvents: 1e6, maxAgeMs: 100 * 365 * DAY }, summaryRetention: { "1m": 0, "1h": 0, "1d": 0 }, sse: { heartbeatMs: 15_000, retryMs: 2_000, maxQueueEvents: 1000, maxQueueBytes: 1 << 20, replayPageSize: 100 } },
      createMetrics(),
      pino({ level: "silent" }),
    );
    a.db.close();
    const all = (db: typeof again) => db.prepare("SELECT * FROM summaries ORDER BY metric, step, start").all();
    expect(all(again).length).toBeGreaterThan(0);
    expect(all(again)).toEqual(all(reference.db));
    void b.close();
    void reference.transport.close();
  });

  it("a database with readings from before summaries gets them all at its first start with summaries", () => {
    const old = open({ summaries: false }); // an older gateway's readings: no buckets, no mark
    const fresh = open();
    for (let i = 0; i < 300; i++) {
      for (const x of [old, fresh]) x.reading(i + 1, 5_000 * DAY + i * 7 * MIN, Math.sin(i) * 100);
    }
    fresh.s.flush();
    const all = (x: typeof old) => x.db.prepare("SELECT * FROM summaries ORDER BY metric, step, start").all();
    expect(all(old)).toEqual([]);
    expect(old.s.recover()).toEqual({ readings: 300 });
    expect(all(old)).toEqual(all(fresh));
    expect(old.s.recover()).toEqual({ readings: 0 }); // once: the mark says how far
    void old.transport.close();
    void fresh.transport.close();
  });
});
