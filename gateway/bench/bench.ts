/**
 * Gateway load benchmark (issue 4): `npm run bench:gateway [-- --clients 1000 --rate 1000 ...]`.
 * Runs the gateway (server.ts) in its own process for an honest RSS, then from this process:
 *  1. live: P MQTT publishers at R msg/s in total, S SSE subscribers; delivered events/s,
 *     p50/p99 latency from MQTT publish to SSE receipt, gateway RSS;
 *  2. idle: N idle SSE connections; gateway RSS per connection.
 * Prints a table and writes bench-results/gateway.json.
 */
import { deviceTopic, GATEWAY_SUBSCRIPTIONS } from "../src/protocol/topics.ts";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { freePort } from "../../test/helpers/ports.ts";
import { waitUntil } from "../../test/helpers/wait.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const { values: args } = parseArgs({
  options: {
    clients: { type: "string", default: "1000" },
    rate: { type: "string", default: "1000" },
    publishers: { type: "string", default: "10" },
    devices: { type: "string", default: "100" },
    seconds: { type: "string", default: "15" },
    /** device: each client follows one device (fan-out clients/devices); all: every client gets everything. */
    filter: { type: "string", default: "device" },
    idle: { type: "string", default: "10000" },
  },
});
const CLIENTS = Number(args.clients);
const RATE = Number(args.rate);
const PUBLISHERS = Number(args.publishers);
const DEVICES = Number(args.devices);
const SECONDS = Number(args.seconds);
const IDLE = Number(args.idle);

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

async function startGateway(dataDir: string) {
  const port = await freePort();
  const mqttPort = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "gateway/src/server.ts")], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(port),
      MQTT_HOST: "127.0.0.1",
      MQTT_PORT: String(mqttPort),
      DATA_DIR: dataDir,
      MQTT_AUTH: "open",
      AUTH_MODE: "open",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(async () => (await fetch(`${url}/healthz`)).ok, { timeoutMs: 20_000, message: "gateway start" });
  return { child, url, mqttUrl: `mqtt://127.0.0.1:${mqttPort}` };
}

/** A lean SSE reader on node:http (one agent-less socket each), calling onData per event line. */
function openStream(url: string, onData: ((data: string) => void) | undefined): Promise<http.ClientRequest> {
  return new Promise((resolvePromise, reject) => {
    const req = http.get(url, { agent: false, headers: { Accept: "text/event-stream" } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
      resolvePromise(req);
      if (!onData) {
        res.on("data", () => {});
        return;
      }
      let buffer = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const line = block.split("\n").find((l) => l.startsWith("data: "));
          if (line) onData(line.slice(6));
        }
      });
    });
    req.on("error", reject);
  });
}

async function openMany(n: number, url: (i: number) => string, onData?: (data: string) => void) {
  const reqs: http.ClientRequest[] = [];
  for (let i = 0; i < n; i += 200) {
    reqs.push(...(await Promise.all(Array.from({ length: Math.min(200, n - i) }, (_, j) => openStream(url(i + j), onData)))));
  }
  return reqs;
}

async function liveScenario() {
  const dataDir = mkdtempSync(join(tmpdir(), "gw-bench-"));
  const gw = await startGateway(dataDir);
  try {
    const latencies: number[] = [];
    let delivered = 0;
    let measuring = false;
    const onData = (data: string) => {
      if (!measuring) return;
      delivered++;
      const t = Number(/"t":(\d+)/.exec(data)?.[1]);
      latencies.push(Date.now() - t);
    };
    const filter = (i: number) => (args.filter === "all" ? encodeURIComponent(GATEWAY_SUBSCRIPTIONS[0]) : deviceTopic(`dev${i % DEVICES}`, "telemetry"));
    const streams = await openMany(CLIENTS, (i) => `${gw.url}/events?topic=${filter(i)}`, onData);
    const pubs = await Promise.all(
      Array.from({ length: PUBLISHERS }, (_, i) => mqtt.connectAsync(gw.mqttUrl, { clientId: `bench-pub-${i}`, reconnectPeriod: 0 })),
    );
    const seqs = new Array<number>(DEVICES).fill(0);
    const tickMs = 10;
    const perTick = RATE / (1000 / tickMs);
    let carry = 0;
    let published = 0;
    const publishTick = () => {
      carry += perTick;
      for (; carry >= 1; carry--) {
        const device = published % DEVICES;
        const payload = JSON.stringify({ v: 1, seq: ++seqs[device], boot: 1, t: Date.now(), readings: { temperature: 21.5, humidity: 40.1 }, battery: 3.7 });
        pubs[published % PUBLISHERS].publish(deviceTopic(`dev${device}`, "telemetry"), payload, { qos: 1 });
        published++;
      }
    };
    // Warm up 2 s, then measure.
    const timer = setInterval(publishTick, tickMs);
    await new Promise((r) => setTimeout(r, 2000));
    measuring = true;
    const start = Date.now();
    const publishedAtStart = published;
    let rssPeak = 0;
    while (Date.now() - start < SECONDS * 1000) {
      await new Promise((r) => setTimeout(r, 500));
      rssPeak = Math.max(rssPeak, rssKb(gw.child.pid!));
    }
    const elapsed = (Date.now() - start) / 1000;
    const publishedRate = (published - publishedAtStart) / elapsed;
    measuring = false;
    clearInterval(timer);
    latencies.sort((a, b) => a - b);
    const result = {
      clients: CLIENTS,
      filter: args.filter,
      devices: DEVICES,
      publishers: PUBLISHERS,
      msgInPerSec: Math.round(publishedRate),
      deliveredEventsPerSec: Math.round(delivered / elapsed),
      latencyMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.at(-1) },
      gatewayRssMb: Math.round(rssPeak / 1024),
    };
    for (const s of streams) s.destroy();
    await Promise.all(pubs.map((p) => p.endAsync(true)));
    return result;
  } finally {
    gw.child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function idleScenario() {
  const dataDir = mkdtempSync(join(tmpdir(), "gw-bench-"));
  const gw = await startGateway(dataDir);
  try {
    await openMany(50, () => `${gw.url}/events`); // warm the code paths before the baseline
    await new Promise((r) => setTimeout(r, 1000));
    const before = rssKb(gw.child.pid!);
    const streams = await openMany(IDLE, () => `${gw.url}/events?topic=${encodeURIComponent(GATEWAY_SUBSCRIPTIONS[1])}`);
    await new Promise((r) => setTimeout(r, 2000));
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    const open = Number(/^gateway_sse_clients (\d+)/m.exec(metrics)?.[1]);
    const after = rssKb(gw.child.pid!);
    for (const s of streams) s.destroy();
    return {
      connections: IDLE,
      openStreamsSeenByGateway: open,
      gatewayRssMbBefore: Math.round(before / 1024),
      gatewayRssMbAfter: Math.round(after / 1024),
      kbPerConnection: Math.round(((after - before) / IDLE) * 10) / 10,
    };
  } finally {
    gw.child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const live = await liveScenario();
console.log("live:", JSON.stringify(live));
const idle = await idleScenario();
console.log("idle:", JSON.stringify(idle));
const out = { date: new Date().toISOString(), node: process.version, cpus: 2, live, idle, targets: { p99Ms: 100, kbPerIdleConnection: 10 } };
mkdirSync(join(ROOT, "bench-results"), { recursive: true });
writeFileSync(join(ROOT, "bench-results/gateway.json"), `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote bench-results/gateway.json`);
process.exit(0);
