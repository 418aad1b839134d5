/**
 * Series benchmark: `npm run bench:series [-- --devices 10 --days 30 --rounds 20 --page-runs 5]`.
 *
 * 1. Seeds `days` × 1,440 readings per device (one per minute of reading time, ending now) through the gateway's
 *    own storage path: openDatabase + SqliteTransport.dispatch, each reading in its own transaction with its
 *    buckets (1m, 1h, 1d × temperature, humidity, battery), as the MQTT handler stores them. Seeding throughput.
 * 2. Starts the real gateway process (server.ts) on that data dir, with history retention that keeps the seed.
 * 3. Series API answer times (p50/p95/max): 30 days step=auto (→ 1h), 1 day step=1m, 7 days step=auto, the
 *    largest explicit step=1m answer (10,000 points: 7 days of 1m buckets are 10,080, over the API's limit), and
 *    the dashboard's own load pattern (every device × temperature and humidity, 30 days, all at once).
 * 4. First chart draw in Chromium (playwright-core, /usr/bin/chromium): the dashboard opened with `?range=30d`;
 *    from navigation start to each `.chart[data-device-id]` reporting its 30-day load drawn
 *    (`data-load-state="ready"`, `data-drawn-points` = `data-points`; gateway/web/README.md "For tests and tools"),
 *    the first page load of a fresh browser (cold) apart from the following ones (warm), each in a new tab.
 * Prints the figures and writes bench-results/series.json.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { parseConfig } from "../src/config.ts";
import { createLogger } from "../src/ops/log.ts";
import { createMetrics } from "../src/ops/metrics.ts";
import type { TelemetryData } from "../src/protocol/events.ts";
import { deviceTopic } from "../src/protocol/topics.ts";
import { openDatabase } from "../src/transport/sqlite/db.ts";
import { SqliteTransport } from "../src/transport/sqlite/transport.ts";
import { CHROMIUM_FLAGS } from "../../test/browser/chromium.ts";
import { spawnGateway } from "../../test/helpers/gateway.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const TARGET_MS = 300;

const { values: args } = parseArgs({
  options: {
    devices: { type: "string", default: "10" },
    days: { type: "string", default: "30" },
    /** Sequential rounds over every device per API case. */
    rounds: { type: "string", default: "20" },
    /** Page loads in Chromium (each a new tab). */
    "page-runs": { type: "string", default: "8" },
    /** Keep the seeded data dir (its path is printed); reuse it with --data-dir. */
    keep: { type: "boolean", default: false },
    /** A data dir a run with --keep seeded: skip the seed. */
    "data-dir": { type: "string" },
  },
});
const DEVICES = Number(args.devices);
const DAYS = Number(args.days);
const ROUNDS = Number(args.rounds);
const PAGE_RUNS = Number(args["page-runs"]);
const ids = Array.from({ length: DEVICES }, (_, i) => `bench-${String(i).padStart(2, "0")}`);

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const round1 = (n: number) => Math.round(n * 10) / 10;
function stats(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: round1(percentile(s, 0.5)), p95: round1(percentile(s, 0.95)), max: round1(s.at(-1)!) };
}

/** The seeded environment: a slow daily wave per device, noise from the minute index. */
function values(device: number, t: number) {
  const wave = Math.sin((2 * Math.PI * t) / DAY + device);
  const noise = ((Math.imul(Math.floor(t / MINUTE), 2654435761) >>> 0) / 2 ** 32 - 0.5) * 0.4;
  return {
    readings: { temperature: Math.round((20 + device * 0.5 + 3 * wave + noise) * 100) / 100, humidity: Math.round((45 - 8 * wave) * 100) / 100 },
    battery: Math.round((4.1 - (0.5 * (t % (30 * DAY))) / (30 * DAY)) * 1000) / 1000,
  };
}

/** Step 1: the seed, through the transport (each reading one transaction with its buckets). */
async function seed(dataDir: string, end: number, days = DAYS, summaries = true) {
  const config = parseConfig({ dataDir, history: { maxEvents: 1_000_000, maxAgeMs: (days + 2) * DAY } });
  const db = openDatabase(dataDir, config.history.synchronous);
  const transport = new SqliteTransport(
    db,
    {
      retention: { maxEvents: config.history.maxEvents, maxAgeMs: config.history.maxAgeMs },
      summaryRetention: config.summaries.retention,
      summaries,
      sse: config.sse,
    },
    createMetrics(),
    createLogger("silent"),
  );
  const perDevice = days * 1440;
  const first = end - perDevice * MINUTE;
  const seqs = new Array<number>(DEVICES).fill(0);
  const started = performance.now();
  let stored = 0;
  // minute by minute, every device: the order a live fleet's readings arrive in
  for (let m = 0; m < perDevice; m++) {
    const t = first + m * MINUTE;
    for (let d = 0; d < DEVICES; d++) {
      const deviceId = ids[d]!;
      const topic = deviceTopic(deviceId, "telemetry");
      const seq = ++seqs[d]!;
      const receivedAt = t + 800;
      const v = values(d, t);
      const data: TelemetryData = {
        deviceId,
        topic,
        seq,
        boot: 1 + Math.floor(seq / 1000),
        t,
        age: null,
        timeSource: "device",
        receivedAt,
        readings: v.readings,
        battery: v.battery,
        dropped: 0,
        corrupt: 0,
      };
      if (await transport.dispatch({ kind: "telemetry", topic, deviceId, receivedAt, seq, t, data })) stored++;
    }
    if (m % 100 === 0) {
      // the gateway's SummaryPublisher takes the changed buckets every 5 s; here they are only drained
      transport.summaries.takeChanged();
      // and the transport's own timers (retention, summaries' write-behind) get their turns, as in the gateway
      await new Promise((r) => setImmediate(r));
    }
  }
  const seconds = (performance.now() - started) / 1000;
  transport.summaries.takeChanged();
  await transport.close(); // (writes what summaries still hold: write-behind)
  db.close();
  return { readings: stored, seconds: round1(seconds), readingsPerSec: Math.round(stored / seconds), first, end };
}

async function startGateway(dataDir: string) {
  const started = performance.now();
  // retention at start must not delete the seed (defaults: 100,000 events, 7 days)
  const env = { HISTORY_MAX_EVENTS: "1000000", HISTORY_MAX_AGE_MS: String((DAYS + 2) * DAY) };
  const gw = await spawnGateway({ dataDir, env, startTimeoutMs: 120_000 });
  return { ...gw, startMs: Math.round(performance.now() - started) };
}

interface SeriesAnswer {
  step: string;
  points: Array<{ count?: number }>;
}

async function timedSeries(url: string): Promise<{ ms: number; answer: SeriesAnswer }> {
  const t0 = performance.now();
  const res = await fetch(url);
  const body = await res.text();
  const ms = performance.now() - t0;
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${body}`);
  return { ms, answer: JSON.parse(body) as SeriesAnswer };
}

/** Step 3: the series API. */
async function seriesApi(base: string, end: number) {
  const q = (id: string, metric: string, from: number, to: number, step: string) =>
    `${base}/api/devices/${id}/series?metric=${metric}&from=${from}&to=${to}&step=${step}`;
  const cases = [
    { name: "30 d, step=auto", from: end - 30 * DAY, step: "auto", expectStep: "1h" },
    { name: "1 d, step=1m", from: end - DAY, step: "1m", expectStep: "1m" },
    { name: "7 d, step=auto", from: end - 7 * DAY, step: "auto", expectStep: "1h" },
    // 7 days of 1m buckets are 10,080 points: over the explicit-step limit (10,000), the API answers 400
    { name: "10,000 × 1m (6 d 22 h 40 min)", from: end - 10_000 * MINUTE + 1, step: "1m", expectStep: "1m" },
  ];
  const out: Record<string, unknown> = {};
  const sevenDays1m = await fetch(q(ids[0]!, "temperature", end - 7 * DAY, end, "1m"));
  out["7 d, step=1m"] = { status: sevenDays1m.status, error: ((await sevenDays1m.json()) as { error?: { code: string } }).error?.code };
  for (const c of cases) {
    const first = await timedSeries(q(ids[0]!, "temperature", c.from, end, c.step)); // cold: the first request of this case
    if (first.answer.step !== c.expectStep) throw new Error(`${c.name}: step ${first.answer.step}, expected ${c.expectStep}`);
    const samples: number[] = [];
    let points = 0;
    let readings = 0;
    for (let r = 0; r < ROUNDS; r++) {
      for (const id of ids) {
        const { ms, answer } = await timedSeries(q(id, "temperature", c.from, end, c.step));
        samples.push(ms);
        points = answer.points.length;
        readings = answer.points.reduce((n, p) => n + (p.count ?? 1), 0);
      }
    }
    out[c.name] = { step: first.answer.step, points, readings, firstMs: round1(first.ms), ...stats(samples) };
  }
  // what the dashboard does for 30 d: every device's temperature and humidity at once
  const together: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    await Promise.all(ids.flatMap((id) => ["temperature", "humidity"].map((m) => timedSeries(q(id, m, end - 30 * DAY, end, "auto")))));
    together.push(performance.now() - t0);
  }
  out[`30 d, ${DEVICES} devices × 2 metrics in parallel (all answered)`] = stats(together);
  return out;
}

/** The commit, and a hash of uncommitted changes to gateway/src and gateway/web/src (what was measured). */
function codeVersion() {
  if (process.env.BENCH_CODE) return { commit: process.env.BENCH_CODE, uncommitted: null }; // a snapshot outside git
  const git = (...a: string[]) => execFileSync("git", a, { cwd: ROOT }).toString();
  const diff = git("diff", "HEAD", "--", "gateway/src", "gateway/web/src");
  return { commit: git("rev-parse", "--short", "HEAD").trim(), uncommitted: diff ? createHash("sha256").update(diff).digest("hex").slice(0, 12) : null };
}
const CODE_AT_START = codeVersion();


/** Step 4: the dashboard in Chromium, 30-day range, every chart. */
async function pageLoad(base: string) {
  const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
  if (!existsSync(executablePath)) return { skipped: `no Chromium at ${executablePath}` };
  if (!existsSync(join(ROOT, "gateway/web/dist/index.html"))) return { skipped: "no dashboard build: npm run build:web" };
  const userDataDir = mkdtempSync(join(tmpdir(), "bench-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 900 },
  });
  // Records, in page time (ms since navigation start), when each chart first shows a drawn 30-day load.
  // (a string, not a function: tsx would wrap the function's inner names in a helper the page does not have)
  await context.addInitScript(`
    window.__drawn = {};
    new MutationObserver((records) => {
      for (const r of records) {
        const el = r.target;
        if (!el.classList || !el.classList.contains("chart")) continue;
        const d = el.dataset;
        if (!d.deviceId || window.__drawn[d.deviceId] || d.range !== "30d" || d.loadState !== "ready") continue;
        if (!d.points || d.points === "0" || d.drawnPoints !== d.points) continue;
        window.__drawn[d.deviceId] = { at: performance.now(), step: d.step || "", points: Number(d.points) };
      }
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-drawn-points", "data-load-state", "data-points", "data-range"] });
  `);
  const runs: Array<{
    firstChartMs: number;
    allChartsMs: number;
    domContentLoadedMs: number;
    /** Resource timing of the page's series requests (ms since navigation start): where the time goes. */
    seriesRequests: { n: number; firstStart: number; firstEnd: number; lastEnd: number };
    steps: string[];
  }> = [];
  try {
    for (let run = 0; run < PAGE_RUNS; run++) {
      const page = await context.newPage();
      page.on("pageerror", (err) => console.error("page error:", err));
      await page.goto(`${base}/?range=30d`);
      const drawn = await page.waitForFunction(`Object.keys(window.__drawn).length >= ${DEVICES} ? window.__drawn : null`, undefined, {
        timeout: 60_000,
        polling: 50,
      });
      const d = (await drawn.jsonValue()) as Record<string, { at: number; step: string; points: number }>;
      const dcl = (await page.evaluate(`performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd`)) as number;
      const ats = Object.values(d).map((x) => x.at);
      const series = (await page.evaluate(
          `performance.getEntriesByType("resource").filter((e) => e.name.includes("/series?")).map((e) => [e.startTime, e.responseEnd])`,
      )) as Array<[number, number]>;
      runs.push({
        firstChartMs: round1(Math.min(...ats)),
        allChartsMs: round1(Math.max(...ats)),
        domContentLoadedMs: round1(dcl),
        seriesRequests: {
          n: series.length,
          firstStart: round1(Math.min(...series.map((x) => x[0]))),
          firstEnd: round1(Math.min(...series.map((x) => x[1]))),
          lastEnd: round1(Math.max(...series.map((x) => x[1]))),
        },
        steps: [...new Set(Object.values(d).map((x) => `${x.step}:${x.points}`))],
      });
      await page.close();
    }
  } finally {
    await context.close().catch(() => undefined);
    rmSync(userDataDir, { recursive: true, force: true });
  }
  // the first load of a fresh browser (nothing cached, no warmed-up renderer) apart from the loads that follow
  const [cold, ...warm] = runs;
  return {
    runs,
    cold: { firstChartMs: cold!.firstChartMs, allChartsMs: cold!.allChartsMs, lastSeriesAnswerMs: cold!.seriesRequests.lastEnd },
    warm: {
      firstChart: stats(warm.map((r) => r.firstChartMs)),
      allCharts: stats(warm.map((r) => r.allChartsMs)),
      domContentLoaded: stats(warm.map((r) => r.domContentLoadedMs)),
      firstSeriesAnswer: stats(warm.map((r) => r.seriesRequests.firstEnd)),
      lastSeriesAnswer: stats(warm.map((r) => r.seriesRequests.lastEnd)),
      seriesRequests: warm[0]?.seriesRequests.n,
    },
  };
}

/** The cost of summaries on the store path: the same 3-day seed (10 devices) with and without them, fresh files. */
async function seedComparison() {
  const out: Record<string, unknown> = {};
  for (const summaries of [false, true]) {
    const dir = mkdtempSync(join(tmpdir(), "gw-bench-seed-"));
    try {
      out[summaries ? "withSummaries" : "withoutSummaries"] = await seed(dir, Date.now(), 3, summaries);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return out;
}

const reuse = args["data-dir"];
const dataDir = reuse ?? mkdtempSync(join(tmpdir(), "gw-bench-series-"));
let seeded: Awaited<ReturnType<typeof seed>>;
if (reuse) {
  seeded = JSON.parse(readFileSync(join(reuse, "bench-seed.json"), "utf8")) as typeof seeded;
  console.log(`reusing the seed in ${reuse} (${seeded.readings} readings up to ${new Date(seeded.end).toISOString()})`);
} else {
  const end = Math.floor(Date.now() / MINUTE) * MINUTE - MINUTE;
  console.log(`seeding ${DEVICES} devices × ${DAYS} days × 1,440 readings into ${dataDir} …`);
  seeded = await seed(dataDir, end);
  writeFileSync(join(dataDir, "bench-seed.json"), JSON.stringify(seeded));
  console.log(`seed: ${seeded.readings} readings in ${seeded.seconds} s = ${seeded.readingsPerSec} readings/s (one transaction each; buckets of 3 metrics × 3 steps kept by the transport)`);
}
const end = seeded.end;
const comparison = await seedComparison();
console.log(`store path, 3-day seed of ${DEVICES} devices: ${JSON.stringify(comparison)}`);
const gw = await startGateway(dataDir);
let result: Record<string, unknown>;
try {
  console.log(`gateway up in ${gw.startMs} ms on the seeded data dir`);
  const api = await seriesApi(gw.url, end);
  for (const [name, r] of Object.entries(api)) console.log(`series ${name}: ${JSON.stringify(r)}`);
  const page = await pageLoad(gw.url);
  console.log(`page (?range=30d, ${DEVICES} charts): ${JSON.stringify({ ...page, runs: undefined })}`);
  result = { seed: seeded, seedComparison3Days: comparison, gatewayStartMs: gw.startMs, seriesApi: api, page };
} finally {
  await gw.stop();
  if (args.keep || reuse) console.log(`kept ${dataDir}`);
  else rmSync(dataDir, { recursive: true, force: true });
}
const out = {
  date: new Date().toISOString(),
  code: { ...CODE_AT_START, changedDuringRun: JSON.stringify(codeVersion()) !== JSON.stringify(CODE_AT_START) },
  node: process.version,
  cpus: cpus().length,
  devices: DEVICES,
  days: DAYS,
  rounds: ROUNDS,
  targets: { seriesP95Ms: TARGET_MS, firstChartMs: TARGET_MS },
  ...result,
};
mkdirSync(join(ROOT, "bench-results"), { recursive: true });
writeFileSync(join(ROOT, "bench-results/series.json"), `${JSON.stringify(out, null, 2)}\n`);
console.log("wrote bench-results/series.json");
process.exit(0);
