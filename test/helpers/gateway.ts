/**
 * Gateways for tests, on 127.0.0.1 and free ports.
 * - startTestGateway: in this process (fast; access to metrics and the app).
 * - spawnGateway: `node --import tsx gateway/src/server.ts` as a child process, for restart and
 *   kill -9 tests (one process, so SIGKILL really kills the gateway, not only a wrapper).
 *
 * @example
 * const gw = await startTestGateway();                    // embedded broker, open auth, temp data dir
 * const client = await mqtt.connectAsync(gw.mqttUrl);
 * await gw.close();                                         // also removes the temp data dir
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseConfig, type GatewayConfigInput } from "../../gateway/src/config.ts";
import { startGateway, type Gateway } from "../../gateway/src/gateway.ts";
import { freePort } from "./ports.ts";
import { waitUntil } from "./wait.ts";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));

export const tempDir = (prefix = "gw-test-"): string => mkdtempSync(join(tmpdir(), prefix));

export interface TestGatewayOptions {
  /** Config overrides, merged over the test defaults below. */
  config?: GatewayConfigInput;
  /** Reuse a data dir (restart tests); default a fresh temp dir, removed by close(). */
  dataDir?: string;
  /** Use an external broker (e.g. Mosquitto) instead of the embedded one. */
  brokerUrl?: string;
}

export type TestGateway = Gateway & { dataDir: string };

/**
 * Test defaults: host 127.0.0.1, HTTP and MQTT port 0 (the OS picks), logs silent (LOG_LEVEL
 * env to see them), HTTP auth open (explicitly: the gateway's default is token auth; open is allowed on
 * loopback), embedded broker auth open. A per-test clientId avoids
 * sessions clashing when tests share an external broker.
 */
export async function startTestGateway(opts: TestGatewayOptions = {}): Promise<TestGateway> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? tempDir();
  const c = opts.config ?? {};
  const config = parseConfig({
    host: "127.0.0.1",
    port: 0,
    logLevel: process.env.LOG_LEVEL ?? "silent",
    auth: { mode: "open" },
    broker: { auth: { mode: "open" } },
    ...c,
    dataDir,
    mqtt: {
      host: "127.0.0.1",
      port: 0,
      clientId: `gw-test-${process.pid}`,
      ...c.mqtt,
      ...(opts.brokerUrl ? { url: opts.brokerUrl } : {}),
    },
  });
  let gw: Gateway;
  try {
    gw = await startGateway(config);
  } catch (e) {
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  let closed: Promise<void> | undefined;
  return {
    ...gw,
    dataDir,
    close: () =>
      (closed ??= gw.close().finally(() => {
        if (ownDir) rmSync(dataDir, { recursive: true, force: true });
      })),
  };
}

export interface SpawnOptions {
  dataDir: string;
  /** Fixed ports let a restarted gateway keep its URLs; default free ports. */
  port?: number;
  mqttPort?: number;
  /** Extra environment (e.g. MQTT_URL, GATEWAY_CONFIG, HEARTBEAT_MS). */
  env?: Record<string, string>;
  /** How long to wait for /healthz; default 20 s. */
  startTimeoutMs?: number;
}

export interface GatewayProcess {
  readonly url: string;
  readonly port: number;
  readonly mqttPort: number;
  readonly mqttUrl: string;
  readonly child: ChildProcess;
  /** stdout + stderr so far (pino JSON lines, and the console lines server.ts prints). */
  output(): string;
  /** stdout alone / stderr alone, so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** SIGTERM and wait for exit (graceful shutdown). */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit (no shutdown code runs). */
  kill9(): Promise<number | null>;
}

/**
 * Starts `gateway/src/server.ts` in a child process and waits until /healthz says ok. HTTP auth is open on
 * 127.0.0.1 unless `env` says otherwise (`AUTH_MODE: ""` gives the gateway's default, token auth).
 */
export async function spawnGateway(opts: SpawnOptions): Promise<GatewayProcess> {
  const port = opts.port ?? (await freePort());
  const mqttPort = opts.mqttPort ?? (await freePort());
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "gateway/src/server.ts")], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(port),
      MQTT_HOST: "127.0.0.1",
      MQTT_PORT: String(mqttPort),
      DATA_DIR: opts.dataDir,
      MQTT_AUTH: "open",
      AUTH_MODE: "open",
      LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => ((out += d.toString()), (stdout += d.toString())));
  child.stderr!.on("data", (d: Buffer) => ((out += d.toString()), (stderr += d.toString())));
  const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const url = `http://127.0.0.1:${port}`;
  const stopWith = async (signal: NodeJS.Signals) => {
    if (!hasExited) child.kill(signal);
    return exited;
  };
  try {
    await waitUntil(
      async () => {
        if (hasExited) throw new Error(`gateway exited during start:\n${out}`);
        const r = await fetch(`${url}/healthz`);
        return r.status === 200;
      },
      { timeoutMs: opts.startTimeoutMs ?? 20_000, message: "the spawned gateway's /healthz", intervalMs: 50 },
    );
  } catch (e) {
    await stopWith("SIGKILL");
    throw new Error(`${(e as Error).message}\n--- gateway output ---\n${out}`);
  }
  const mqttUrl = opts.env?.MQTT_URL ?? `mqtt://127.0.0.1:${mqttPort}`;
  return {
    url,
    port,
    mqttPort,
    mqttUrl,
    child,
    output: () => out,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    stop: () => stopWith("SIGTERM"),
    kill9: () => stopWith("SIGKILL"),
  };
}

/** The sum over every /metrics line matching `pattern` (multiline; its first group is the value). */
export async function metric(gw: { url: string }, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  return [...text.matchAll(new RegExp(pattern.source, "gm"))].reduce((sum, m) => sum + Number(m[1]), 0);
}
