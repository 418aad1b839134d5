/**
 * The real stack for the issue 3 acceptance suites: a broker the devices reach over TCP and the gateway
 * (a child process) that stores their readings. Two broker kinds:
 * - embedded: the gateway's own aedes broker. Restarting "the broker" = restarting the gateway process on
 *   the same data dir and ports (SIGTERM, or SIGKILL: no shutdown code runs).
 * - mosquitto: Debian Mosquitto (persistence on unless asked otherwise); the gateway reaches it via MQTT_URL
 *   and keeps running while Mosquitto restarts (graceful only: Mosquitto writes its persistence file on
 *   shutdown, so a kill -9 loses by design what it acknowledged since its last autosave).
 *
 * @example
 * const stack = await startStack("embedded");
 * await startFleet({ brokerUrl: stack.brokerUrl, ... });
 * await stack.restartBroker("kill9");
 * const dups = await stack.duplicateReadings();
 * await stack.close();
 */
import { rmSync } from "node:fs";
import { spawnGateway, tempDir, type GatewayProcess } from "../helpers/gateway.ts";
import { defaultMosquittoConfig, mosquittoAvailable, startMosquitto, type RunningMosquitto } from "../helpers/mosquitto.ts";
import { freePort } from "../helpers/ports.ts";
import { metricValue } from "./gateway-api.ts";

export type BrokerKindName = "embedded" | "mosquitto";
export type RestartHow = "graceful" | "kill9";

export interface StackOptions {
  /** false: the broker keeps nothing across a restart (Mosquitto without persistence; embedded: see restartBroker). */
  persistence?: boolean;
}

export interface SoakStack {
  readonly kind: BrokerKindName;
  /** Where the devices connect (stable across restarts). */
  readonly brokerUrl: string;
  /** The gateway's HTTP base URL (stable across restarts). */
  readonly gatewayUrl: string;
  readonly restarts: Record<RestartHow, number>;
  /**
   * Restarts the broker on the same port. Embedded: the gateway process, on the same data dir unless
   * `emptyDataDir` (a broker that lost every session). Mosquitto: only "graceful" is meaningful.
   */
  restartBroker(how: RestartHow, opts?: { emptyDataDir?: boolean }): Promise<void>;
  /**
   * gateway_duplicate_readings_total summed over every gateway process of this stack (readings the gateway
   * dropped because (device, seq) was already stored). The count of a process is scraped just before it is
   * stopped, so a kill -9 can only miss what arrived in the last few milliseconds.
   */
  duplicateReadings(): Promise<number>;
  /** Gateway output (pino lines) of the current process, for failure messages. */
  gatewayOutput(): string;
  close(): Promise<void>;
}

/** The broker kinds available here; Mosquitto skips visibly when missing (fails when CI=true). */
export function soakBrokerKinds(): BrokerKindName[] {
  return mosquittoAvailable() ? ["embedded", "mosquitto"] : ["embedded"];
}

export async function startStack(kind: BrokerKindName, opts: StackOptions = {}): Promise<SoakStack> {
  return kind === "embedded" ? startEmbeddedStack() : startMosquittoStack(opts.persistence ?? true);
}

/** Scraped count of every finished gateway process plus a live scrape of the current one. */
class DuplicateTally {
  private finished = 0;
  constructor(private readonly url: string) {}
  async beforeStop(): Promise<void> {
    this.finished += await this.scrape().catch(() => 0);
  }
  async total(): Promise<number> {
    return this.finished + (await this.scrape());
  }
  private async scrape(): Promise<number> {
    return metricValue(this.url, "gateway_duplicate_readings_total");
  }
}

async function startEmbeddedStack(): Promise<SoakStack> {
  const dataDirs = [tempDir("soak-gw-")];
  const port = await freePort();
  const mqttPort = await freePort();
  const spawn = () => spawnGateway({ dataDir: dataDirs[dataDirs.length - 1]!, port, mqttPort, startTimeoutMs: 30_000 });
  let gateway: GatewayProcess | undefined = await spawn();
  const tally = new DuplicateTally(gateway.url);
  const restarts = { graceful: 0, kill9: 0 };
  return {
    kind: "embedded",
    brokerUrl: gateway.mqttUrl,
    gatewayUrl: gateway.url,
    restarts,
    async restartBroker(how, o = {}) {
      await tally.beforeStop();
      const old = gateway!;
      gateway = undefined;
      if (how === "graceful") await old.stop();
      else await old.kill9();
      restarts[how]++;
      if (o.emptyDataDir) dataDirs.push(tempDir("soak-gw-"));
      gateway = await spawn();
    },
    duplicateReadings: () => tally.total(),
    gatewayOutput: () => gateway?.output() ?? "(no gateway process running)",
    async close() {
      await gateway?.stop();
      for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Mosquitto's test defaults, with persistence switched off: a restart forgets every session. */
function volatileMosquittoConfig(paths: Parameters<typeof defaultMosquittoConfig>[0]): string {
  return defaultMosquittoConfig(paths)
    .split("\n")
    .filter((line) => !line.startsWith("persistence"))
    .concat("persistence false", "")
    .join("\n");
}

async function startMosquittoStack(persistence: boolean): Promise<SoakStack> {
  const mosquitto: RunningMosquitto = await startMosquitto(persistence ? {} : { config: volatileMosquittoConfig });
  const dataDir = tempDir("soak-gw-");
  let gateway: GatewayProcess;
  try {
    gateway = await spawnGateway({ dataDir, env: { MQTT_URL: mosquitto.url }, startTimeoutMs: 30_000 });
  } catch (e) {
    await mosquitto.close();
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  const tally = new DuplicateTally(gateway.url);
  const restarts = { graceful: 0, kill9: 0 };
  return {
    kind: "mosquitto",
    brokerUrl: mosquitto.url,
    gatewayUrl: gateway.url,
    restarts,
    async restartBroker(how) {
      if (how === "kill9") throw new Error("kill -9 of Mosquitto is not part of its persistence guarantee; restart it gracefully");
      await mosquitto.restart();
      restarts.graceful++;
    },
    duplicateReadings: () => tally.total(),
    gatewayOutput: () => `${gateway.output()}\n--- mosquitto ---\n${mosquitto.log().slice(-5000)}`,
    async close() {
      await gateway.stop();
      await mosquitto.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
