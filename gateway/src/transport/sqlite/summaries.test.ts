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

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function open(opts: { retention?: { "1m": number; "1h": number; "1d": number }; maxEvents?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "summaries-"));
  dirs.push(dir);
  const db = openDatabase(dir);
  const transport = new SqliteTransport(
    db,
    {
      retention: { maxEvents: opts.maxEvents ?? 1_000_000, maxAgeMs: 100 * 365 * DAY },
      summaryRetention: opts.retention ?? { "1m": 0, "1h": 0, "1d": 0 },
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

  it("rebuild after raw retention recomputes only the buckets raw history still covers, bit for bit", () => {
    const { reading, s, transport, db } = open({ maxEvents: 300 });
    // 500 readings a minute apart with values whose float sums depend on order; every 7th arrives late
    const t0 = 20_000 * DAY;
    const values = Array.from({ length: 500 }, (_, i) => Math.sin(i) * 1e3 + 0.1 * i);
    const order = Array.from({ length: 500 }, (_, i) => i).sort((a, b) => (a % 7 === 0 ? a + 20 : a) - (b % 7 === 0 ? b + 20 : b));
    // arrivals in dispatch order, each after its reading was taken (the late ones 20 minutes after)
    for (const [k, i] of order.entries()) reading(k + 1, t0 + i * MIN, values[i]!, t0 + (k + 21) * MIN);
    type Row = { step: "1m" | "1h" | "1d"; start: number };
    const snapshot = () => db.prepare("SELECT * FROM summaries ORDER BY device_id, metric, step, start").all() as Row[];
    transport["eventLog"].prune(Date.now()); // keeps the newest 300 rows: raw history now covers part of it
    const oldest = (db.prepare("SELECT MIN(received_at) AS at FROM events WHERE kind = 'telemetry'").get() as { at: number }).at;
    const before = snapshot();
    db.prepare("UPDATE summaries SET sum = sum + 1, count = count + 1").run(); // damage every bucket
    const { from } = s.rebuild();
    const after = snapshot();
    expect(from).toBe(Math.ceil(oldest / MIN) * MIN);
    // per width, every bucket raw history covers is as the readings made it; older ones stay as they were (damaged)
    const width = { "1m": MIN, "1h": HOUR, "1d": DAY };
    const covered = (r: Row) => r.start >= Math.ceil(oldest / width[r.step]) * width[r.step];
    expect(after.filter(covered)).toEqual(before.filter(covered));
    expect(after.filter(covered).length).toBeGreaterThan(200);
    const old = after.filter((r) => !covered(r));
    expect(old.length).toBeGreaterThan(0);
    expect(old).not.toEqual(before.filter((r) => !covered(r)));
    void transport.close();
  });
});
