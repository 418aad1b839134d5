// The real product for browser tests: the gateway as a child process (so a test can kill and restart it on
// the same ports and data dir) and a simulator fleet running the compiled firmware against its broker.
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFleet, type Fleet } from "../../simulator/src/index.ts";
import { assertFleetHealthy } from "../helpers/fleet-health.ts";
import { spawnGateway, type GatewayProcess } from "../helpers/gateway.ts";

export interface StackOptions {
  devices: number;
  /** Deep sleep lasts ms/timeScale. */
  timeScale: number;
  /** Device settings on top of devs/.env.defaults, e.g. { INTERVAL_S: 10 }. */
  settings?: Record<string, unknown>;
  /** Extra gateway environment, e.g. GATEWAY_CONFIG for HTTP auth. */
  env?: Record<string, string>;
}

export interface Stack {
  /** Dashboard URL, ending in "/". */
  url: string;
  /** The gateway's embedded broker. */
  mqttUrl: string;
  fleet: Fleet;
  deviceIds(): string[];
  /**
   * Stops the gateway (SIGKILL when `hard`) and starts it again on the same ports and data dir
   * (emptied first when `wipeData`: a gateway that lost its database).
   */
  restartGateway(opts?: { hard?: boolean; wipeData?: boolean; beforeStart?: () => Promise<void> }): Promise<void>;
  /** GET a JSON API path of the gateway (relative, e.g. "api/devices"). */
  api<T>(path: string): Promise<T>;
  /** What the gateway process printed so far (stdout: JSON log lines and the console lines, e.g. the login URL). */
  gatewayStdout(): string;
  /** The value of a Prometheus sample without labels, from /metrics. */
  metric(name: string): Promise<number>;
  close(): Promise<void>;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const dataDir = await mkdtemp(join(tmpdir(), "sensors-web-gw-"));
  const flashDir = await mkdtemp(join(tmpdir(), "sensors-web-flash-"));
  let gateway: GatewayProcess = await spawnGateway({ dataDir, env: opts.env });
  const base = `${gateway.url}/`;
  let fleet: Fleet;
  try {
    fleet = await startFleet({
      devices: opts.devices,
      brokerUrl: gateway.mqttUrl,
      seed: 7,
      timeScale: opts.timeScale,
      flashDir,
      eraseFlash: true,
      settings: opts.settings,
    });
  } catch (err) {
    await gateway.kill9();
    throw err;
  }

  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(new URL(path, base));
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };

  return {
    url: base,
    mqttUrl: gateway.mqttUrl,
    fleet,
    deviceIds: () => fleet.devices.map((d) => d.id),
    async restartGateway({ hard = false, wipeData = false, beforeStart } = {}) {
      await (hard ? gateway.kill9() : gateway.stop());
      if (wipeData) {
        await rm(dataDir, { recursive: true, force: true });
        await mkdir(dataDir);
      }
      await beforeStart?.();
      gateway = await spawnGateway({ dataDir, port: gateway.port, mqttPort: gateway.mqttPort, env: opts.env });
    },
    api,
    gatewayStdout: () => gateway.stdout(),
    async metric(name) {
      const text = await (await fetch(`${base}metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(`${name} `));
      if (line === undefined) throw new Error(`metric ${name} not in /metrics`);
      return Number(line.split(" ")[1]);
    },
    async close() {
      await fleet.stop();
      assertFleetHealthy(fleet);
      await gateway.stop();
      await rm(dataDir, { recursive: true, force: true });
      await rm(flashDir, { recursive: true, force: true });
    },
  };
}
