/**
 * Redis mode benchmark: `npx tsx gateway/bench/redis.ts [-- --readings 5000 --concurrency 16]`.
 *
 * The cost of the shared log against the one-process mode, on the storage path the MQTT handler uses
 * (transport.dispatch of a reading, resolved when stored and applied locally): SqliteTransport, one
 * RedisTransport, and two RedisTransports on one Redis (two gateways, each reading sent to both as the broker
 * does). Redis is Debian's redis-server started here with the shipped durability (AOF, appendfsync always).
 * Per case: readings per second, and dispatch latency p50/p99 with `concurrency` dispatches in flight (the bridge
 * has one in flight per MQTT session; several devices' sessions run side by side). Prints the figures and
 * writes bench-results/redis.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { createMetrics } from "../src/ops/metrics.ts";
import { telemetry } from "../src/transport/contract.ts";
import { RedisTransport } from "../src/transport/redis/transport.ts";
import { openDatabase } from "../src/transport/sqlite/db.ts";
import { SqliteTransport } from "../src/transport/sqlite/transport.ts";
import type { Transport } from "../src/transport/transport.ts";
import { startRedis } from "../../test/helpers/redis.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const { values: args } = parseArgs({
  options: { readings: { type: "string", default: "5000" }, concurrency: { type: "string", default: "16" } },
});
const READINGS = Number(args.readings);
const CONCURRENCY = Number(args.concurrency);
const SSE = { heartbeatMs: 60_000, retryMs: 1_000, maxQueueEvents: 1_000, maxQueueBytes: 1 << 20, replayPageSize: 500 };
const PROJECTION = { retention: { maxEvents: 1_000_000, maxAgeMs: Number.MAX_SAFE_INTEGER }, summaryRetention: { "1m": 0, "1h": 0, "1d": 0 } };
const silent = pino({ level: "silent" });

interface Result {
  case: string;
  readings: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** Sends every reading to each of `targets` (the copies a broker gives each gateway), `CONCURRENCY` devices at a time. */
async function run(name: string, targets: Transport[]): Promise<Result> {
  const latencies: number[] = [];
  const perDevice = Math.ceil(READINGS / CONCURRENCY);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, d) => {
      for (let seq = 1; seq <= perDevice; seq++) {
        const event = telemetry(`bench-${d}`, seq, Date.now());
        const t0 = performance.now();
        await Promise.all(targets.map((t) => t.dispatch(event)));
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => Number(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!.toFixed(2));
  const result = { case: name, readings: latencies.length, perSecond: Math.round(latencies.length / seconds), p50Ms: at(0.5), p99Ms: at(0.99) };
  console.log(`${name.padEnd(34)} ${String(result.perSecond).padStart(7)} readings/s   p50 ${result.p50Ms} ms   p99 ${result.p99Ms} ms`);
  return result;
}

const dirs: string[] = [];
const dir = () => {
  const d = mkdtempSync(join(tmpdir(), "bench-redis-"));
  dirs.push(d);
  return d;
};
const redis = await startRedis();
const results: Result[] = [];
try {
  const sqliteDb = openDatabase(dir());
  const sqlite = new SqliteTransport(sqliteDb, { ...PROJECTION, sse: SSE }, createMetrics(), silent);
  results.push(await run("sqlite (one process)", [sqlite]));
  await sqlite.close();
  sqliteDb.close();

  const open = async (prefix: string) => {
    const db = openDatabase(dir());
    const t = await RedisTransport.open(db, { ...PROJECTION, url: redis.url, keyPrefix: prefix, sse: SSE }, createMetrics(), silent);
    return { t, close: async () => (await t.close(), db.close()) };
  };
  const one = await open("one:");
  results.push(await run("redis, one gateway", [one.t]));
  await one.close();
  const [a, b] = [await open("two:"), await open("two:")];
  results.push(await run("redis, two gateways (every copy)", [a.t, b.t]));
  await a.close();
  await b.close();
} finally {
  await redis.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
mkdirSync(join(ROOT, "bench-results"), { recursive: true });
const out = { date: new Date().toISOString(), cpus: cpus().length, cpu: cpus()[0]?.model, concurrency: CONCURRENCY, results };
writeFileSync(join(ROOT, "bench-results/redis.json"), JSON.stringify(out, null, 2));
console.log("wrote bench-results/redis.json");
