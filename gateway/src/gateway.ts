/**
 * Composition root: wires config → database → history → hub → broker → MQTT bridge → HTTP app,
 * listens, and closes everything in the right order. server.ts and the tests both start here.
 */
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import type { Hono } from "hono";
import { createApp } from "./app.ts";
import { createDispatcher } from "./bridge/handlers.ts";
import { MqttBridge } from "./bridge/mqtt-bridge.ts";
import { startEmbeddedBroker, type EmbeddedBroker } from "./broker/index.ts";
import { Commands } from "./commands.ts";
import type { GatewayConfig } from "./config.ts";
import { openDatabase } from "./db.ts";
import { DeviceRegistry } from "./devices.ts";
import { SqliteHistory } from "./history/sqlite.ts";
import type { AppEnv } from "./http/env.ts";
import { Hub } from "./hub/hub.ts";
import { createLogger, type Logger } from "./log.ts";
import { createMetrics, exportBrokerCounters, type Metrics } from "./metrics.ts";
import { Relay } from "./relay.ts";
import { parseDeviceTopic } from "./topics.ts";

const PRUNE_EVERY_MS = 10_000;

export interface Gateway {
  /** Base URL of the HTTP server, e.g. http://127.0.0.1:8080 (loopback when bound to all interfaces). */
  readonly url: string;
  readonly port: number;
  /** Broker URL for devices and tests: the embedded broker's, or config.mqtt.url. */
  readonly mqttUrl: string;
  /** The embedded broker, undefined with an external one. */
  readonly broker: EmbeddedBroker | undefined;
  readonly app: Hono<AppEnv>;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Graceful shutdown (stop accepting, end streams, close MQTT, broker, DB); safe to call twice. */
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** Collect Node process metrics (CPU, memory...) in /metrics; on in server.ts. */
  processMetrics?: boolean;
}

const loopbackFor = (host: string): string =>
  host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;

/**
 * Starts a whole gateway.
 * @example
 * const gw = await startGateway(parseConfig({ port: 0, mqtt: { port: 0 }, dataDir: "/tmp/gw" }));
 * await fetch(`${gw.url}/healthz`);
 * await gw.close();
 */
export async function startGateway(config: GatewayConfig, opts: StartOptions = {}): Promise<Gateway> {
  const log = opts.logger ?? createLogger(config.logLevel);
  const metrics = createMetrics({ processMetrics: opts.processMetrics });
  const cleanups: Array<() => unknown> = [];
  try {
    const db = openDatabase(config.dataDir, config.history.synchronous);
    cleanups.push(() => db.close());
    const history = new SqliteHistory(db, config.history);
    history.prune(Date.now());
    const pruneTimer = setInterval(() => {
      try {
        history.prune(Date.now());
      } catch (err) {
        log.error({ err }, "history retention failed");
      }
    }, PRUNE_EVERY_MS);
    pruneTimer.unref();
    cleanups.push(() => clearInterval(pruneTimer));

    const hub = new Hub(config.sse, history, metrics);
    const relay = new Relay(history, hub, metrics);
    const devices = new DeviceRegistry(db);

    let broker: EmbeddedBroker | undefined;
    let bridgeUrl: string;
    let credentials: { username?: string; password?: string } = {
      username: config.mqtt.username,
      password: config.mqtt.password,
    };
    if (config.mqtt.url) {
      bridgeUrl = config.mqtt.url;
    } else {
      broker = await startEmbeddedBroker({
        host: config.mqtt.host,
        port: config.mqtt.port,
        dataDir: config.dataDir,
        auth: config.broker.auth,
        logger: log.child({ part: "broker" }),
      });
      const b = broker;
      cleanups.push(() => b.close());
      exportBrokerCounters(metrics, broker.counters);
      bridgeUrl = `mqtt://${loopbackFor(config.mqtt.host)}:${broker.port}`;
      credentials = broker.serviceCredentials;
    }

    let dispatch: (topic: string, payload: Buffer) => void = () => {};
    const bridge = new MqttBridge(
      { url: bridgeUrl, clientId: config.mqtt.clientId, ...credentials },
      (topic, payload) => dispatch(topic, payload),
      metrics,
      log.child({ part: "bridge" }),
    );
    const commands = new Commands(db, relay, (t, p) => bridge.publishQos1(t, p), metrics, log.child({ part: "commands" }));
    dispatch = createDispatcher({ relay, devices, commands, metrics, log: log.child({ part: "relay" }) });
    broker?.on("delivered", ({ clientId, topic, payload }) => {
      const parsed = parseDeviceTopic(topic);
      if (parsed?.kind === "cmd" && parsed.deviceId === clientId) commands.markDelivered(parsed.deviceId, payload);
    });
    cleanups.push(() => bridge.close());
    await bridge.start();

    const app = createApp({
      auth: config.auth,
      hub,
      history,
      devices,
      commands,
      metrics,
      log: log.child({ part: "http" }),
      health: {
        broker: () => bridge.connected && !(broker?.closed ?? false),
        db: () => db.prepare("SELECT 1").get() !== undefined,
      },
    });

    const server = await listen(app, config.host, config.port);
    const port = (server.address() as AddressInfo).port;
    const url = `http://${loopbackFor(config.host)}:${port}`;
    if (config.auth.mode === "open") log.warn("HTTP auth is in OPEN mode: anyone on the network may read and send commands");
    log.info({ url, mqttUrl: bridgeUrl }, "gateway listening");

    let closing: Promise<void> | undefined;
    const close = (): Promise<void> =>
      (closing ??= (async () => {
        log.info("gateway shutting down");
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        hub.close(); // ends every SSE stream; clients reconnect to the next instance with their last id
        server.closeIdleConnections();
        const force = setTimeout(() => server.closeAllConnections(), 2_000);
        await serverClosed;
        clearTimeout(force);
        await runCleanups(cleanups, log);
      })());

    return { url, port, mqttUrl: bridgeUrl, broker, app, metrics, log, close };
  } catch (err) {
    await runCleanups(cleanups, log);
    throw err;
  }
}

function listen(app: Hono<AppEnv>, hostname: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname, port }, () => {
      server.off("error", reject);
      resolve(server as Server);
    });
    server.once("error", reject);
  });
}

/** Runs cleanups newest first (bridge before broker before DB); one failure does not stop the rest. */
async function runCleanups(cleanups: Array<() => unknown>, log: Logger): Promise<void> {
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch (err) {
      log.warn({ err }, "cleanup step failed");
    }
  }
}
