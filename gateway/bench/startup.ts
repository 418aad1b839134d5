/**
 * `npm run bench:startup [-- --runs 5]`: start-up time and idle memory of one gateway process, compiled
 * (node gateway/dist/server.js, what production runs) against tsx (node --import tsx gateway/src/server.ts),
 * each with the embedded broker and as a `--workers` worker connects (external broker: aedes not loaded).
 * - start-up: spawn → first 200 from /healthz (polled every 10 ms);
 * - RSS at healthy, and idle RSS: sampled from /proc/<pid>/status every 250 ms until it has moved less than
 *   1 % over 3 s (the first GCs after start-up have run), at most 20 s.
 * Prints medians (and min–max) and writes every run to bench-results/startup.json.
 * Needs `npm run build:gateway` first (npm ci does it).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startEmbeddedBroker } from "../src/broker/index.ts";
import { freePort } from "../../test/helpers/ports.ts";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const COMPILED = join(ROOT, "gateway/dist/server.js");
const { values: args } = parseArgs({ options: { runs: { type: "string", default: "5" } } });
const RUNS = Number(args.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error("--runs must be a positive integer");
if (!existsSync(COMPILED)) throw new Error(`${COMPILED} is missing: run npm run build:gateway first`);

// The production node flags live in one place, package.json's "gateway" script (the systemd units repeat them).
const GATEWAY_SCRIPT: string = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.gateway;
const PROD_FLAGS = GATEWAY_SCRIPT.split(/\s+/).filter((w) => w.startsWith("--"));
const TSX = ["--import", "tsx", join(ROOT, "gateway/src/server.ts")];

const VARIANTS = [
  { name: `compiled ${PROD_FLAGS.join(" ")}, embedded broker`, argv: [...PROD_FLAGS, COMPILED], external: false },
  { name: `compiled ${PROD_FLAGS.join(" ")}, external broker (a worker)`, argv: [...PROD_FLAGS, COMPILED], external: true },
  { name: "compiled, no flags, embedded broker", argv: [COMPILED], external: false },
  { name: "compiled, no flags, external broker", argv: [COMPILED], external: true },
  { name: "tsx, embedded broker", argv: TSX, external: false },
  { name: "tsx, external broker", argv: TSX, external: true },
];

const rssMb = (pid: number): number => {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
  return kb / 1024;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  startupMs: number;
  rssAtHealthyMb: number;
  idleRssMb: number;
}

async function oneRun(argv: string[], brokerUrl: string | undefined): Promise<Run> {
  const dataDir = mkdtempSync(join(tmpdir(), "bench-startup-"));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, HOST: "127.0.0.1", PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: "warn" };
  if (brokerUrl) Object.assign(env, { MQTT_URL: brokerUrl, MQTT_CLIENT_ID: `bench-${port}` });
  else Object.assign(env, { MQTT_HOST: "127.0.0.1", MQTT_PORT: String(await freePort()) });
  const started = performance.now();
  const child = spawn(process.execPath, argv, { env, stdio: ["ignore", "ignore", "inherit"] });
  const exited = new Promise((r) => child.once("exit", r));
  try {
    let startupMs: number | undefined;
    while (startupMs === undefined) {
      if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode}`);
      if (performance.now() - started > 30_000) throw new Error("no /healthz 200 within 30 s");
      try {
        if ((await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200) startupMs = performance.now() - started;
      } catch {
        await sleep(10);
      }
    }
    const rssAtHealthyMb = rssMb(child.pid!);
    const samples: number[] = [rssAtHealthyMb];
    const settleDeadline = Date.now() + 20_000;
    for (;;) {
      await sleep(250);
      samples.push(rssMb(child.pid!));
      const window = samples.slice(-13); // 3 s
      if (window.length === 13 && (Math.max(...window) - Math.min(...window)) / Math.max(...window) < 0.01) break;
      if (Date.now() > settleDeadline) break;
    }
    return { startupMs, rssAtHealthyMb, idleRssMb: samples.at(-1)! };
  } finally {
    child.kill("SIGTERM");
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs: number[], digits = 1) =>
  `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

const broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0, auth: { mode: "open" } });
const results = [];
try {
  for (const v of VARIANTS) {
    const runs: Run[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await oneRun(v.argv, v.external ? `mqtt://127.0.0.1:${broker.port}` : undefined));
    const row = {
      variant: v.name,
      startupMs: median(runs.map((r) => r.startupMs)),
      rssAtHealthyMb: median(runs.map((r) => r.rssAtHealthyMb)),
      idleRssMb: median(runs.map((r) => r.idleRssMb)),
      runs,
    };
    results.push(row);
    console.log(
      `${v.name.padEnd(72)} start-up ${fmt(runs.map((r) => r.startupMs), 0)} ms   RSS at healthy ${fmt(runs.map((r) => r.rssAtHealthyMb))} MB` +
        `   idle RSS ${fmt(runs.map((r) => r.idleRssMb))} MB`,
    );
  }
} finally {
  await broker.close();
}
mkdirSync(join(ROOT, "bench-results"), { recursive: true });
writeFileSync(
  join(ROOT, "bench-results/startup.json"),
  JSON.stringify({ date: new Date().toISOString(), node: process.version, runs: RUNS, results }, null, 2) + "\n",
);
console.log("wrote bench-results/startup.json");
