/**
 * CPU cost of summaries and alert rules: `npm run bench:alerts [-- --runs 2 --seconds 20 --clients 0,1000]`.
 *
 * The ingestion load of `npm run bench:gateway` (gateway/bench/bench.ts): 10 MQTT publishers, 1,000 msg/s in
 * total, 100 devices, QoS 1, readings {temperature, humidity} + battery (3 summarised metrics). The gateway runs as
 * its own process (server.ts, embedded broker) and its CPU time is read from /proc/<pid>/stat (utime + stime,
 * every thread) over the measured window, in three configurations (GATEWAY_CONFIG):
 *   base       summaries.enabled false, the default rules disabled: nothing but storing and relaying
 *   summaries  summaries on (9 bucket upserts per reading), the default rules disabled
 *   full       summaries on and 100 threshold rules of mixed scope (devices glob, topic filter, one device);
 *              5 of them breach on every reading (they fire once and stay firing), the rest never do
 * once with no SSE clients (ingestion alone: the worst case for the relative figure) and once with bench.ts's
 * 1,000 SSE clients, each following one device. Configurations alternate (base, summaries, full, base, …) so
 * drift hits all alike. Prints each run and the extra CPU against base; writes bench-results/alerts-cpu.json.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { deviceTopic } from "../src/protocol/topics.ts";
import { spawnGateway } from "../../test/helpers/gateway.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "2" },
    seconds: { type: "string", default: "20" },
    warmup: { type: "string", default: "3" },
    rate: { type: "string", default: "1000" },
    publishers: { type: "string", default: "10" },
    devices: { type: "string", default: "100" },
    /** Comma-separated SSE client counts, one variant each. */
    clients: { type: "string", default: "0,1000" },
    rules: { type: "string", default: "100" },
  },
});
const RUNS = Number(args.runs);
const SECONDS = Number(args.seconds);
const WARMUP_S = Number(args.warmup);
const RATE = Number(args.rate);
const PUBLISHERS = Number(args.publishers);
const DEVICES = Number(args.devices);
const CLIENT_VARIANTS = args.clients.split(",").map(Number);
const RULES = Number(args.rules);
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

/** The commit, and a hash of uncommitted changes to gateway/src (what was measured). */
function codeVersion() {
  if (process.env.BENCH_CODE) return { commit: process.env.BENCH_CODE, uncommitted: null }; // a snapshot outside git
  const git = (...a: string[]) => execFileSync("git", a, { cwd: ROOT }).toString();
  const diff = git("diff", "HEAD", "--", "gateway/src");
  return { commit: git("rev-parse", "--short", "HEAD").trim(), uncommitted: diff ? createHash("sha256").update(diff).digest("hex").slice(0, 12) : null };
}
const CODE_AT_START = codeVersion();

const OFF_DEFAULTS = ["overdue", "offline", "battery-low"].map((id) => ({ id, enabled: false }));

/** 100 threshold rules: a third each scoped by devices glob, topic filter and one device; every 20th breaches. */
function thresholdRules(n: number): object[] {
  const metrics = ["temperature", "humidity", "battery"];
  return Array.from({ length: n }, (_, i) => {
    const metric = metrics[i % 3]!;
    const breaches = i % 20 === 0; // temperature 21.5 > 20, humidity 40.1 > 20, battery 3.7 > 3
    const bound = breaches ? { above: metric === "battery" ? 3 : 20 } : i % 2 === 0 ? { above: 1000 } : { below: -1000 };
    const third = i % 3;
    const scope =
      third === 0
        ? { devices: [`dev${i % 10}*`, `dev?${i % 10}`, "dev*", `dev${i % 100}`][i % 4] }
        : third === 1
          ? { topic: ["sensors/+/telemetry", `sensors/dev${i % DEVICES}/telemetry`, "sensors/#"][i % 3] }
          : { device: `dev${i % DEVICES}` };
    return {
      id: `rule-${i}`,
      kind: "threshold",
      metric,
      ...bound,
      hysteresis: 0.5,
      ...(i % 7 === 0 ? { forReadings: 3 } : {}),
      ...(i % 11 === 0 ? { forS: 60 } : {}),
      severity: ["info", "warning", "critical"][i % 3],
      scope,
    };
  });
}

const CONFIGS = {
  base: { summaries: { enabled: false }, alerts: { rules: OFF_DEFAULTS } },
  summaries: { summaries: { enabled: true }, alerts: { rules: OFF_DEFAULTS } },
  full: { summaries: { enabled: true }, alerts: { rules: [...OFF_DEFAULTS, ...thresholdRules(RULES)] } },
} as const;
type ConfigName = keyof typeof CONFIGS;

/** utime + stime of every thread of the process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // fields 14 and 15 of proc(5)
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function metric(url: string, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

const startGateway = (dataDir: string, configFile: string) => spawnGateway({ dataDir, env: { GATEWAY_CONFIG: configFile } });

/** As bench.ts: one agent-less socket per SSE client, events counted, not parsed. */
function openStream(url: string, onEvent: () => void): Promise<http.ClientRequest> {
  return new Promise((resolvePromise, reject) => {
    const req = http.get(url, { agent: false, headers: { Accept: "text/event-stream" } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
      resolvePromise(req);
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        for (let i = chunk.indexOf("\n\n"); i >= 0; i = chunk.indexOf("\n\n", i + 2)) onEvent();
      });
    });
    req.on("error", reject);
  });
}

interface Run {
  config: ConfigName;
  clients: number;
  run: number;
  wallS: number;
  cpuS: number;
  /** Gateway CPU time / wall time, in % of one core. */
  cpuPct: number;
  msgInPerSec: number;
  storedPerSec: number;
  /** Gateway CPU ms per 1,000 readings stored. */
  cpuMsPer1000: number;
  sseEventsPerSec: number;
  alertsFiring: number;
  rssMb: number;
}

async function measure(config: ConfigName, clients: number, run: number, dir: string): Promise<Run> {
  const dataDir = mkdtempSync(join(dir, `data-${config}-`));
  const configFile = join(dir, `${config}.json`);
  writeFileSync(configFile, JSON.stringify(CONFIGS[config]));
  const gw = await startGateway(dataDir, configFile);
  const pid = gw.child.pid!;
  try {
    let events = 0;
    const streams: http.ClientRequest[] = [];
    for (let i = 0; i < clients; i += 200) {
      const batch = Array.from({ length: Math.min(200, clients - i) }, (_, j) =>
        openStream(`${gw.url}/events?topic=${deviceTopic(`dev${(i + j) % DEVICES}`, "telemetry")}`, () => events++),
      );
      streams.push(...(await Promise.all(batch)));
    }
    const pubs = await Promise.all(
      Array.from({ length: PUBLISHERS }, (_, i) => mqtt.connectAsync(gw.mqttUrl, { clientId: `bench-pub-${i}`, reconnectPeriod: 0 })),
    );
    const seqs = new Array<number>(DEVICES).fill(0);
    const tickMs = 10;
    const perTick = RATE / (1000 / tickMs);
    let carry = 0;
    let published = 0;
    const timer = setInterval(() => {
      carry += perTick;
      for (; carry >= 1; carry--) {
        const device = published % DEVICES;
        const payload = JSON.stringify({ v: 1, seq: ++seqs[device]!, boot: 1, t: Date.now(), readings: { temperature: 21.5, humidity: 40.1 }, battery: 3.7 });
        pubs[published % PUBLISHERS]!.publish(deviceTopic(`dev${device}`, "telemetry"), payload, { qos: 1 });
        published++;
      }
    }, tickMs);
    await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
    const stored0 = await metric(gw.url, "gateway_events_stored_total", '{kind="telemetry"}');
    const published0 = published;
    const events0 = events;
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const cpu1 = cpuSeconds(pid);
    const wallS = (performance.now() - t0) / 1000;
    const stored1 = await metric(gw.url, "gateway_events_stored_total", '{kind="telemetry"}');
    const published1 = published;
    const events1 = events;
    clearInterval(timer);
    const alertsFiring = await metric(gw.url, "gateway_alerts_firing");
    const rss = rssMb(pid);
    for (const s of streams) s.destroy();
    await Promise.all(pubs.map((p) => p.endAsync(true)));
    const cpuS = cpu1 - cpu0;
    const stored = stored1 - stored0;
    return {
      config,
      clients,
      run,
      wallS: Math.round(wallS * 10) / 10,
      cpuS: Math.round(cpuS * 100) / 100,
      cpuPct: Math.round((cpuS / wallS) * 1000) / 10,
      msgInPerSec: Math.round((published1 - published0) / wallS),
      storedPerSec: Math.round(stored / wallS),
      cpuMsPer1000: Math.round((cpuS * 1000 * 1000) / stored) / 1,
      sseEventsPerSec: Math.round((events1 - events0) / wallS),
      alertsFiring,
      rssMb: rss,
    };
  } finally {
    await gw.kill9();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const dir = mkdtempSync(join(tmpdir(), "gw-bench-alerts-"));
const runs: Run[] = [];
try {
  for (const clients of CLIENT_VARIANTS) {
    for (let run = 1; run <= RUNS; run++) {
      for (const config of Object.keys(CONFIGS) as ConfigName[]) {
        const r = await measure(config, clients, run, dir);
        runs.push(r);
        console.log(
          `${config.padEnd(9)} clients ${String(clients).padStart(4)} run ${run}: gateway CPU ${r.cpuPct} % of a core ` +
            `(${r.cpuMsPer1000} ms per 1,000 readings), ${r.storedPerSec} readings/s stored, ${r.sseEventsPerSec} SSE events/s, ` +
            `${r.alertsFiring} alerts firing, RSS ${r.rssMb} MB`,
        );
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const summary = CLIENT_VARIANTS.map((clients) => {
  const of = (config: ConfigName) => runs.filter((r) => r.clients === clients && r.config === config);
  const per = Object.fromEntries(
    (Object.keys(CONFIGS) as ConfigName[]).map((c) => {
      const rs = of(c);
      const v = rs.map((r) => r.cpuMsPer1000);
      return [c, { cpuMsPer1000: { mean: Math.round(mean(v)), min: Math.min(...v), max: Math.max(...v) }, cpuPct: rs.map((r) => r.cpuPct) }];
    }),
  ) as Record<ConfigName, { cpuMsPer1000: { mean: number; min: number; max: number }; cpuPct: number[] }>;
  const extra = (c: ConfigName) => Math.round((per[c].cpuMsPer1000.mean / per.base.cpuMsPer1000.mean - 1) * 1000) / 10;
  // the spread of the extra: worst and best pairing of runs
  const range = (c: ConfigName) => ({
    min: Math.round((per[c].cpuMsPer1000.min / per.base.cpuMsPer1000.max - 1) * 1000) / 10,
    max: Math.round((per[c].cpuMsPer1000.max / per.base.cpuMsPer1000.min - 1) * 1000) / 10,
  });
  return {
    clients,
    ...per,
    extraPct: { summaries: extra("summaries"), full: extra("full") },
    extraPctRange: { summaries: range("summaries"), full: range("full") },
  };
});
for (const s of summary) {
  console.log(
    `clients ${s.clients}: CPU per 1,000 readings base ${s.base.cpuMsPer1000.mean} ms, +summaries ${s.summaries.cpuMsPer1000.mean} ms ` +
      `(${s.extraPct.summaries >= 0 ? "+" : ""}${s.extraPct.summaries} %), +summaries +${RULES} rules ${s.full.cpuMsPer1000.mean} ms ` +
      `(${s.extraPct.full >= 0 ? "+" : ""}${s.extraPct.full} %, runs paired worst..best ${s.extraPctRange.full.min}..${s.extraPctRange.full.max} %)`,
  );
}
const out = {
  date: new Date().toISOString(),
  code: { ...CODE_AT_START, changedDuringRun: JSON.stringify(codeVersion()) !== JSON.stringify(CODE_AT_START) },
  node: process.version,
  cpus: cpus().length,
  load: { rate: RATE, publishers: PUBLISHERS, devices: DEVICES, seconds: SECONDS, warmupSeconds: WARMUP_S, rules: RULES },
  target: { extraCpuPct: 10 },
  summary,
  runs,
};
mkdirSync(join(ROOT, "bench-results"), { recursive: true });
writeFileSync(join(ROOT, "bench-results/alerts-cpu.json"), `${JSON.stringify(out, null, 2)}\n`);
console.log("wrote bench-results/alerts-cpu.json");
process.exit(0);
