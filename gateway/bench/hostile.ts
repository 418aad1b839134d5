/**
 * Hostile-input benchmark (issue 10): `npm run bench:hostile [-- --seed N --mqtt 10000 --http 10000 ...]`.
 * The long run of the seeded generator in test/hostile (the CI test runs a short one): the gateway runs in
 * its own process (`node --expose-gc`, embedded broker in open auth, HTTP in tokens mode), so its memory
 * is measured alone, after a forced GC, and a crash shows as an exit. Between batches a normal client must
 * still get through (mqtt.js publishes telemetry, it arrives over MQTT and SSE). After the random run, the
 * two findings are measured on their own: the broker's buffering of an oversized first packet (up to the
 * broker's maximum, 268,435,455 bytes) and a publisher frozen by a subscriber that stopped reading.
 * Prints the figures and writes bench-results/hostile.json.
 *
 * Replay one case of a run: `npm run bench:hostile -- --seed <seed> --only mqtt:<index>` (or http:<index>).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../src/config.ts";
import { startGateway, type Gateway } from "../src/gateway.ts";
import { stalledBySlowSubscriber, oversizedBeforeConnect } from "../../test/hostile/mqtt.ts";
import { randomSeed, seedFrom } from "../../test/hostile/prng.ts";
import { formatReport, hostileConfig, runHostile, type Memory, type Target } from "../../test/hostile/run.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const SELF = join(ROOT, "gateway/bench/hostile.ts");

// ---------------------------------------------------------------------------------------------
// Child mode: the gateway under attack, answering memory questions over IPC.

interface ChildReady {
  type: "ready";
  url: string;
  mqttUrl: string;
}
interface ChildMemory extends Memory {
  type: "memory";
  id: number;
  brokerClients: number;
}

async function child(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("the gateway child needs node --expose-gc");
  const dataDir = process.env.HOSTILE_DATA_DIR!;
  const config = parseConfig({
    host: "127.0.0.1",
    port: 0,
    dataDir,
    logLevel: process.env.LOG_LEVEL ?? "error",
    mqtt: { host: "127.0.0.1", port: 0 },
    ...hostileConfig,
  });
  const gw: Gateway = await startGateway(config, { processMetrics: true });
  process.on("message", async (m: { type: string; id?: number }) => {
    if (m.type === "memory") {
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((r) => setImmediate(r));
      }
      const u = process.memoryUsage();
      const reply: ChildMemory = { type: "memory", id: m.id!, heapUsed: u.heapUsed, rss: u.rss, external: u.external, brokerClients: gw.broker?.connectedClients ?? -1 };
      process.send!(reply);
    } else if (m.type === "close") {
      await gw.close();
      process.exit(0);
    }
  });
  const ready: ChildReady = { type: "ready", url: gw.url, mqttUrl: gw.mqttUrl };
  process.send!(ready);
}

// ---------------------------------------------------------------------------------------------
// Parent mode: the attacker and the measurements.

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function spawnChild(dataDir: string): Promise<{ proc: ChildProcess; ready: ChildReady; log: () => string }> {
  const proc = spawn(process.execPath, ["--expose-gc", "--import", "tsx", SELF], {
    cwd: ROOT,
    env: { ...process.env, HOSTILE_GATEWAY_CHILD: "1", HOSTILE_DATA_DIR: dataDir },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const ready = await new Promise<ChildReady>((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway child did not start in 30 s:\n${out}`)), 30_000);
    proc.on("message", (m: { type: string }) => {
      if (m.type === "ready") {
        clearTimeout(timer);
        resolvePromise(m as ChildReady);
      }
    });
    proc.once("exit", (code) => reject(new Error(`gateway child exited (${code}) during start:\n${out}`)));
  });
  return { proc, ready, log: () => out };
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      seed: { type: "string" },
      mqtt: { type: "string", default: "10000" },
      http: { type: "string", default: "10000" },
      batches: { type: "string", default: "5" },
      warmup: { type: "string", default: "500" },
      concurrency: { type: "string", default: "32" },
      only: { type: "string" },
      "skip-findings": { type: "boolean", default: false },
    },
  });
  const seed = args.seed !== undefined ? seedFrom(args.seed, 0) : seedFrom(process.env.HOSTILE_SEED, randomSeed());
  console.log(`hostile benchmark, seed ${seed} (replay: npm run bench:hostile -- --seed ${seed})`);

  const dataDir = mkdtempSync(join(tmpdir(), "gw-hostile-"));
  const { proc, ready, log } = await spawnChild(dataDir);
  const pid = proc.pid!;
  let exited: number | null | undefined;
  proc.once("exit", (code, signal) => (exited = code ?? (signal ? -1 : null)));

  let nextId = 0;
  const ask = (): Promise<ChildMemory> =>
    new Promise((resolvePromise, reject) => {
      const id = ++nextId;
      const onMessage = (m: ChildMemory) => {
        if (m.type === "memory" && m.id === id) {
          proc.off("message", onMessage);
          resolvePromise(m);
        }
      };
      proc.on("message", onMessage);
      if (exited !== undefined || !proc.connected) return reject(new Error(`the gateway process exited (${exited})`));
      proc.send({ type: "memory", id });
    });

  let peakRss = rssOf(pid);
  const sampler = setInterval(() => {
    const r = rssOf(pid);
    if (r > peakRss) peakRss = r;
  }, 100);

  const u = new URL(ready.url);
  const m = new URL(ready.mqttUrl);
  const target: Target = {
    url: ready.url,
    mqttUrl: ready.mqttUrl,
    http: { host: u.hostname, port: Number(u.port) },
    mqtt: { host: m.hostname, port: Number(m.port) },
    memory: async () => {
      const r = await ask();
      return { heapUsed: r.heapUsed, rss: r.rss, external: r.external };
    },
    brokerClients: async () => (await ask()).brokerClients,
    assertAlive: () => {
      if (exited !== undefined) throw new Error(`the gateway process exited (${exited}):\n${log().slice(-4000)}`);
    },
  };

  const report = await runHostile(target, {
    seed,
    mqttCases: Number(args.mqtt),
    httpCases: Number(args.http),
    batches: Number(args.batches),
    warmup: Number(args.warmup),
    mqttConcurrency: Number(args.concurrency),
    httpConcurrency: Number(args.concurrency),
    long: true,
    answerMs: 10_000,
    holdMs: 2_000,
    distDir: join(ROOT, "gateway/web/dist"),
    root: ROOT,
    only: args.only,
    log: (line) => console.log(line),
  });
  const runPeakRss = peakRss;
  report.memory.peakRss = runPeakRss;
  console.log(formatReport(report));

  // The two findings, measured on their own (after the random run, on the same gateway).
  const findings: Record<string, unknown> = {};
  if (!args.only && !args["skip-findings"]) {
    const before = await target.memory();
    peakRss = rssOf(pid);
    // 256 MB and 3 bytes: the whole declared packet (the broker's maximum), so the broker finally parses it.
    const big = await oversizedBeforeConnect(target.mqtt, 256, async () => undefined, 10_000);
    const peakDuring = peakRss;
    const after = await target.memory();
    findings.oversizedFirstPacket = {
      declaredBytes: 268_435_455,
      acceptedMb: big.acceptedMb,
      brokerClosed: big.closed,
      seconds: Math.round(big.ms) / 1000,
      rssBeforeMb: mb(before.rss),
      rssPeakMb: mb(peakDuring),
      rssAfterMb: mb(after.rss),
    };
    console.log(
      `\noversized first packet (PUBLISH declaring 268,435,455 bytes, no CONNECT): the broker took ${big.acceptedMb} MB in ` +
        `${(big.ms / 1000).toFixed(1)} s, ${big.closed ? "then closed the connection (a PUBLISH before CONNECT)" : "and kept the connection 10 s after the last byte"}; gateway RSS ${mb(before.rss).toFixed(0)} MB -> peak ${mb(peakDuring).toFixed(0)} MB -> ${mb(after.rss).toFixed(0)} MB after (GC)`,
    );
    const stall = await stalledBySlowSubscriber(target.mqtt, { fillMb: 4, keepalive: 30, waitMs: 70_000 });
    findings.slowSubscriberStall = { ...stall, pingMs: typeof stall.pingMs === "number" ? Math.round(stall.pingMs) : stall.pingMs, waitedMs: Math.round(stall.waitedMs) };
    console.log(
      `slow subscriber (sensors/#, socket full): a device's PINGREQ after two QoS 1 readings in one write: ` +
        `${typeof stall.pingMs === "number" ? `answered after ${(stall.pingMs / 1000).toFixed(1)} s` : stall.pingMs === "closed" ? `never answered; the broker closed the device's connection after ${(stall.waitedMs / 1000).toFixed(1)} s (keepalive 30 s)` : "no answer in 70 s"}`,
    );
  }

  clearInterval(sampler);
  const errorLines = log()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => {
      try {
        return (JSON.parse(l) as { msg?: string; err?: { message?: string } }).msg ?? "?";
      } catch {
        return "?";
      }
    });
  const gatewayErrorLogs: Record<string, number> = {};
  for (const msg of errorLines) gatewayErrorLogs[msg] = (gatewayErrorLogs[msg] ?? 0) + 1;
  console.log(`gateway error-level log lines: ${JSON.stringify(gatewayErrorLogs)}`);

  if (proc.connected) proc.send({ type: "close" });
  await new Promise((r) => (exited !== undefined ? r(undefined) : proc.once("exit", r)));
  rmSync(dataDir, { recursive: true, force: true });

  mkdirSync(join(ROOT, "bench-results"), { recursive: true });
  const out = {
    date: new Date().toISOString(),
    node: process.version,
    ...report,
    memoryMb: {
      start: { heap: mb(report.memory.start.heapUsed), rss: mb(report.memory.start.rss) },
      afterWarmup: { heap: mb(report.memory.baseline.heapUsed), rss: mb(report.memory.baseline.rss) },
      end: { heap: mb(report.memory.end.heapUsed), rss: mb(report.memory.end.rss) },
      peakRss: mb(runPeakRss),
    },
    findings,
    gatewayErrorLogs,
  };
  writeFileSync(join(ROOT, "bench-results/hostile.json"), `${JSON.stringify(out, null, 2)}\n`);
  console.log("wrote bench-results/hostile.json");
  process.exitCode = report.failures.length ? 1 : 0;
}

const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

if (process.env.HOSTILE_GATEWAY_CHILD === "1") {
  child().catch((err: unknown) => {
    process.stderr.write(`gateway child failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
