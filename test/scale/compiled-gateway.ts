/**
 * The production gateway for tests: `node <flags> gateway/dist/server.js`, the command and flags of
 * package.json's "gateway" script, as a child process on free loopback ports with token auth (the default) and
 * the embedded broker open on 127.0.0.1 (so tests publish without provisioning); also `server.js --workers N`
 * and broker nodes (`npm run broker`). The first start in a test process compiles gateway/src
 * (tsconfig.build.json), so the code under test is the current source.
 *
 * @example
 * const gw = await startCompiledGateway();
 * await fetch(`${gw.url}/api/devices`, { headers: { Authorization: `Bearer ${gw.adminToken}` } });
 * await gw.stop();
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freeConsecutivePorts, freePort } from "../helpers/ports.ts";
import { waitUntil } from "../helpers/wait.ts";

export const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
export const COMPILED_SERVER = join(ROOT, "gateway/dist/server.js");

let built = false;
/** tsc -p tsconfig.build.json, once per test process. */
export function buildGateway(): void {
  if (built) return;
  const r = spawnSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(ROOT, "tsconfig.build.json")], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`npm run build:gateway failed:\n${r.stdout}${r.stderr}`);
  built = true;
}

/** The node flags of `npm run gateway` (or of another script, e.g. "broker"; package.json is their one owner). */
export function productionNodeFlags(script = "gateway"): string[] {
  const command: string = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts[script];
  return command.split(/\s+/).filter((w) => w.startsWith("--"));
}

export interface CompiledGateway {
  url: string;
  port: number;
  mqttUrl: string;
  adminToken: string;
  dataDir: string;
  pid: number;
  /** stdout + stderr so far, for assertion messages. */
  output(): string;
  /** SIGTERM, wait for exit, remove the data dir; returns the exit code. Safe twice. */
  stop(): Promise<number | null>;
}

export async function startCompiledGateway(env: Record<string, string> = {}): Promise<CompiledGateway> {
  buildGateway();
  const dataDir = mkdtempSync(join(tmpdir(), "gw-compiled-"));
  const port = await freePort();
  const mqttPort = await freePort();
  const child = spawn(process.execPath, [...productionNodeFlags(), COMPILED_SERVER], {
    cwd: tmpdir(), // nothing may depend on being started from the repository
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(port),
      MQTT_HOST: "127.0.0.1",
      MQTT_PORT: String(mqttPort),
      MQTT_AUTH: "open",
      DATA_DIR: dataDir,
      LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const url = `http://127.0.0.1:${port}`;
  let stopped: Promise<number | null> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const code = await exited;
      rmSync(dataDir, { recursive: true, force: true });
      return code;
    })());
  try {
    await waitUntil(
      async () => {
        if (child.exitCode !== null) throw new Error(`the compiled gateway exited with ${child.exitCode}: ${output}`);
        return (await fetch(`${url}/healthz`)).status === 200;
      },
      { timeoutMs: 30_000, message: `${url}/healthz of the compiled gateway` },
    );
  } catch (e) {
    await stop();
    throw e;
  }
  const adminToken = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
  return { url, port, mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, adminToken, dataDir, pid: child.pid!, output: () => output, stop };
}

export interface CompiledWorkers {
  /** The workers' HTTP ports, base..base+N-1. */
  ports: number[];
  /** The supervisor's shared port (PORT), balanced over the workers. */
  sharedPort: number;
  /** The supervisor's embedded broker (open on 127.0.0.1). */
  mqttUrl: string;
  /** The admin token every worker accepts (the supervisor's file, shared through Redis). */
  adminToken: string;
  dataDir: string;
  output(): string;
  /** The supervisor's and workers' JSON log lines so far. */
  logLines(): Array<Record<string, unknown>>;
  /** pid of the process now serving `port` (the supervisor's last "worker started" line for it). */
  workerPid(port: number): number;
  /** SIGTERM to the supervisor, wait for it, remove the data dir; returns its exit code. Safe twice. */
  stop(): Promise<number | null>;
}

/**
 * `server.js --workers N` as `npm run gateway -- --workers N` runs it, on `redisUrl`, with the embedded broker
 * (in the supervisor) open on 127.0.0.1, or the brokers `env.MQTT_URL` names; resolves once every worker
 * answers /healthz.
 */
export async function startCompiledWorkers(workers: number, redisUrl: string, env: Record<string, string> = {}): Promise<CompiledWorkers> {
  buildGateway();
  const dataDir = mkdtempSync(join(tmpdir(), "gw-workers-"));
  const basePort = await freeConsecutivePorts(workers);
  const mqttPort = await freePort();
  const sharedPort = await freePort();
  const child = spawn(process.execPath, [...productionNodeFlags(), COMPILED_SERVER, "--workers", String(workers), "--base-port", String(basePort)], {
    cwd: tmpdir(),
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(sharedPort),
      MQTT_HOST: "127.0.0.1",
      MQTT_PORT: String(mqttPort),
      MQTT_AUTH: "open",
      DATA_DIR: dataDir,
      REDIS_URL: redisUrl,
      LOG_LEVEL: "info", // the supervisor's "worker started" lines name each worker's pid
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const ports = Array.from({ length: workers }, (_, i) => basePort + i);
  const logLines = () =>
    output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  let stopped: Promise<number | null> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const code = await exited;
      rmSync(dataDir, { recursive: true, force: true });
      return code;
    })());
  const healthy = async (port: number) => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200;
  try {
    await waitUntil(
      async () => {
        if (child.exitCode !== null) throw new Error(`the supervisor exited with ${child.exitCode}: ${output}`);
        return (await Promise.all(ports.map(healthy))).every(Boolean);
      },
      { timeoutMs: 60_000, message: `${workers} compiled workers healthy` },
    );
  } catch (e) {
    await stop();
    throw e;
  }
  const adminToken = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
  const workerPid = (port: number) => logLines().filter((l) => l.msg === "worker started" && l.port === port).at(-1)!.pid as number;
  return { ports, sharedPort, mqttUrl: env.MQTT_URL ?? `mqtt://127.0.0.1:${mqttPort}`, adminToken, dataDir, output: () => output, logLines, workerPid, stop };
}

export interface CompiledBrokerNode {
  /** aedes' broker id, as the node prints it */
  id: string;
  port: number;
  url: string;
  output(): string;
  /** kill -9; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM (if still running), wait, remove the data dir. Safe twice. */
  stop(): Promise<void>;
}

/**
 * One broker node as `npm run broker` runs it (gateway/dist/broker/server.js), with BROKER_STORE=redis on
 * `redisUrl`, open on 127.0.0.1 (the simulated devices have no passwords), on a free port.
 */
export async function startCompiledBrokerNode(redisUrl: string): Promise<CompiledBrokerNode> {
  buildGateway();
  const dataDir = mkdtempSync(join(tmpdir(), "broker-node-"));
  const port = await freePort();
  const child = spawn(process.execPath, [...productionNodeFlags("broker"), join(ROOT, "gateway/dist/broker/server.js")], {
    cwd: tmpdir(),
    env: { ...process.env, MQTT_HOST: "127.0.0.1", MQTT_PORT: String(port), MQTT_AUTH: "open", DATA_DIR: dataDir, REDIS_URL: redisUrl, BROKER_STORE: "redis", LOG_LEVEL: "warn", GATEWAY_CONFIG: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const running = () => child.exitCode === null && child.signalCode === null;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (running()) child.kill("SIGTERM");
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    })());
  try {
    await waitUntil(
      () => {
        if (!running()) throw new Error(`the broker node exited: ${output}`);
        return output.includes("Broker node ");
      },
      { timeoutMs: 20_000, message: "the compiled broker node listening" },
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    id: /Broker node (\S+) on/.exec(output)![1]!,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    output: () => output,
    async kill() {
      if (running()) child.kill("SIGKILL");
      await exited;
    },
    stop,
  };
}
