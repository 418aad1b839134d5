/**
 * Composition root: wires config → transport (SQLite, or Redis with a SQLite replica; with summaries) → alerts → broker → bridge → commands →
 * HTTP app, listens, and
 * closes everything in the right order. It only wires: each part owns its behaviour. server.ts and the tests
 * both start here.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Hono } from "hono";
import { Alerts } from "./alerts/alerts.ts";
import { MqttAlerts } from "./alerts/mqtt-alerts.ts";
import { SharedRuleStore, SqliteRuleStore } from "./alerts/rule-store.ts";
import { Webhooks } from "./alerts/webhooks.ts";
import { createHandlers } from "./bridge/handlers.ts";
import { MqttBridge } from "./bridge/mqtt-client.ts";
import type { BrokerTarget } from "./bridge/broker-connection.ts";
import type { EmbeddedBroker } from "./broker/index.ts";
import { Commands } from "./commands/commands.ts";
import { deviceForgetter } from "./devices/forget-device.ts";
import { createApp } from "./http/app.ts";
import { replaceAdminToken, resolveAuth, type AdminToken } from "./http/auth.ts";
import { baseUrl, loopbackFor, startHttpListener } from "./http/listener.ts";
import type { SupervisorChannel } from "./supervisor/handoff.ts";
import type { AppEnv } from "./http/env.ts";
import { HomeAssistant } from "./homeassistant/home-assistant.ts";
import { createLogger, type Logger } from "./ops/log.ts";
import { createMetrics, exportBrokerCounters, type Metrics } from "./ops/metrics.ts";
import { RetainedPublisher } from "./outbound/retained-publisher.ts";
import { openDatabase } from "./transport/sqlite/db.ts";
import { SummaryPublisher } from "./summaries/publisher.ts";
import { RedisTransport } from "./transport/redis/transport.ts";
import { SqliteTransport } from "./transport/sqlite/transport.ts";
import { ErrBadCertificate, describeCertificate, loadTlsCredentials, type TlsCredentials } from "./tls/credentials.ts";
import { CertificateReloader } from "./tls/reloader.ts";
import { ErrBadConfig, type GatewayConfig } from "./config.ts";

/** The `origin` of Home Assistant discovery configurations: this package and its version. */
const PACKAGE = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { name: string; version: string };
const ORIGIN = { name: `${PACKAGE.name} gateway`, sw: PACKAGE.version };

export interface Gateway {
  /**
   * Base URL of the HTTP server, e.g. http://127.0.0.1:8080, https://… with `tls` (loopback when bound to
   * all interfaces).
   */
  readonly url: string;
  readonly port: number;
  /** The HTTP→HTTPS redirect listener's port (config httpRedirectPort). */
  readonly redirectPort: number | undefined;
  /** Broker URL for devices and tests: the embedded broker's, or the first of config.mqtt.url. */
  readonly mqttUrl: string;
  /** The embedded broker, undefined with an external one. */
  readonly broker: EmbeddedBroker | undefined;
  readonly app: Hono<AppEnv>;
  readonly metrics: Metrics;
  readonly log: Logger;
  /**
   * Token auth with the admin token on (the default): the token and its file (`<dataDir>/admin-token`).
   * A secret: server.ts prints the login URL on the console, never into the log.
   */
  readonly adminToken: AdminToken | undefined;
  /** Graceful shutdown (stop accepting, end streams, close MQTT, broker, DB); safe to call twice. */
  close(): Promise<void>;
}

/** The MQTT client for other tools and what publishes through it (one at a time per service: see startGateway). */
interface Outward {
  out: RetainedPublisher;
  homeAssistant: HomeAssistant | undefined;
  mqttAlerts: MqttAlerts | undefined;
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** Collect Node process metrics (CPU, memory...) in /metrics; on in server.ts. */
  processMetrics?: boolean;
  /** A --workers worker's IPC channel: the HTTP listener also serves the connections it hands over (handoff.ts). */
  supervisor?: SupervisorChannel;
}

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
    // First: a bad admin-token file or certificate is a configuration error, before any socket exists.
    let auth = resolveAuth(config.auth, config.dataDir);
    let tls: TlsCredentials | undefined;
    if (config.tls) {
      try {
        tls = loadTlsCredentials(config.tls);
      } catch (e) {
        throw e instanceof ErrBadCertificate ? new ErrBadConfig([e.message]) : e;
      }
      const certificate = describeCertificate(tls.cert);
      if (!certificate.valid) log.error({ certificate }, "tls: the certificate is outside its validity period (expired or not yet valid); clients will refuse it");
      else log.info({ certificate }, "tls: certificate loaded");
      metrics.tlsCertificateExpiry.set(certificate.expiresAtMs / 1000);
    }
    if (auth.admin) {
      const { file, created, madePrivate } = auth.admin;
      if (madePrivate) log.warn({ file }, "the admin token file was readable by others: its mode is now 0600");
      log.info({ file, created }, created ? "admin token created" : "admin token loaded");
    }
    const db = openDatabase(config.dataDir, config.history.synchronous);
    cleanups.push(() => db.close());
    const { maxEvents, maxAgeMs } = config.history;
    const projection = { retention: { maxEvents, maxAgeMs }, summaryRetention: config.summaries.retention, summaries: config.summaries.enabled };
    // Redis mode: the shared log in Redis, this dataDir its local replica (docs/architecture.md); else one process.
    const redisTransport = config.redis
      ? await RedisTransport.open(db, { ...projection, ...config.redis, sse: config.sse, mqttClientId: config.mqtt.clientId }, metrics, log.child({ part: "redis" }))
      : undefined;
    const sqliteTransport = redisTransport ? undefined : new SqliteTransport(db, { ...projection, sse: config.sse }, metrics, log);
    const transport = (redisTransport ?? sqliteTransport)!;
    cleanups.push(() => transport.close());
    if (redisTransport && auth.admin) {
      // One owner: Redis holds the admin token of every gateway on it (the first one's); the file this gateway
      // reads (auth.admin.file: <dataDir>/admin-token, or ADMIN_TOKEN_FILE, which --workers shares) is its copy.
      const shared = await redisTransport.sharedAdminToken(auth.admin.token);
      if (shared !== auth.admin.token) {
        replaceAdminToken(auth.admin.file, shared);
        auth = resolveAuth(config.auth, config.dataDir);
        log.info({ file: auth.admin!.file }, "admin token taken from the other gateways (Redis)");
      }
    }
    const webhooks = new Webhooks(
      config.alerts.webhooks,
      { delivered: metrics.webhookDeliveries, retried: metrics.webhookRetries, deadLetters: metrics.webhookDeadLetters },
      log.child({ part: "webhooks" }),
    );

    // Every replica keeps the buckets; in Redis mode only the leader turns their changes into events (once, not
    // once per gateway), as only the leader runs the alert engine.
    const summaryEvents = new SummaryPublisher(
      transport.summaries,
      sqliteTransport
        ? (e) => sqliteTransport.dispatchNow(e)
        : (e) => {
            if (!redisTransport!.isLeader()) return;
            // the message only: an ioredis error carries its command's arguments
            redisTransport!.dispatch(e).catch((err: unknown) => log.warn({ err: (err as Error).message, deviceId: e.deviceId }, "summary event not stored"));
          },
      config.summaries.coalesceMs,
      log,
    );
    cleanups.push(() => summaryEvents.close());

    let broker: EmbeddedBroker | undefined;
    let brokerTarget: BrokerTarget;
    if (config.mqtt.url) {
      brokerTarget = { urls: config.mqtt.url, username: config.mqtt.username, password: config.mqtt.password };
    } else {
      // Loaded only here: a gateway on an external broker (every --workers worker) does not pay for aedes.
      const { startEmbeddedBroker, brokerNodeOptions } = await import("./broker/index.ts");
      broker = await startEmbeddedBroker({
        host: config.mqtt.host,
        port: config.mqtt.port,
        tls,
        tlsPort: tls ? config.mqtt.tlsPort : undefined,
        wsPort: config.mqtt.wsPort,
        wssPort: config.mqtt.wssPort,
        dataDir: config.dataDir,
        auth: config.broker.auth,
        ...brokerNodeOptions(config),
        logger: log.child({ part: "broker" }),
      });
      const b = broker;
      cleanups.push(() => b.close());
      exportBrokerCounters(metrics, broker.counters);
      brokerTarget = { urls: [`mqtt://${loopbackFor(config.mqtt.host)}:${broker.port}`], ...broker.serviceCredentials };
    }

    const bridge = new MqttBridge(
      { broker: brokerTarget, clientId: config.mqtt.clientId, storeReady: () => transport.healthy() },
      metrics,
      log.child({ part: "bridge" }),
    );
    // a Redis-mode instance that must not go on (transport/redis: lost data, lost its client id) leaves the broker
    // session alone: with a client id another gateway now holds, reconnecting would take that session from it
    redisTransport?.onFatal(() => {
      bridge.close().catch((err: unknown) => log.warn({ err: (err as Error).message }, "closing the MQTT bridge failed"));
    });
    const alerts = new Alerts(
      {
        transport,
        ruleStore: redisTransport ? new SharedRuleStore(redisTransport.sharedHash("alert-rules")) : new SqliteRuleStore(db),
        isLeader: () => redisTransport?.isLeader() ?? true,
        intakeSince: () => bridge.connectedSince,
        sinks: [webhooks],
        metrics,
        log: log.child({ part: "alerts" }),
      },
      { configRules: config.alerts.rules, checkIntervalMs: config.alerts.checkIntervalMs },
    );
    cleanups.push(() => alerts.close());
    // What the gateway publishes for other tools (Home Assistant, MQTT alerts, sleepy/gateway/status) has its own
    // client: see outbound/retained-publisher.ts. In Redis mode only the leader runs it (transport/redis lease): N
    // gateways would publish everything N times, and any one stopping would mark the service offline while the
    // others run.
    const startOutward = (): Outward => {
      const out = new RetainedPublisher({ broker: brokerTarget, clientId: `${config.mqtt.clientId}-out` }, { failed: metrics.publishFailed }, log.child({ part: "publisher" }));
      const mqttAlerts = config.alerts.mqtt
        ? new MqttAlerts(out, (deviceId) => alerts.latestPerRule(deviceId), (deviceId) => transport.device(deviceId) !== undefined)
        : undefined;
      if (mqttAlerts) alerts.addSink(mqttAlerts);
      const homeAssistant = config.homeAssistant.enabled
        ? new HomeAssistant(
            { out, transport, db, alertsFiring: (deviceId) => alerts.firingCount(deviceId), log: log.child({ part: "homeassistant" }) },
            { prefix: config.homeAssistant.discoveryPrefix, origin: ORIGIN },
          )
        : undefined;
      out.start(); // no wait: everything is published on connect, whenever that is
      return {
        out,
        homeAssistant,
        mqttAlerts,
        close: async () => {
          if (mqttAlerts) alerts.removeSink(mqttAlerts);
          homeAssistant?.close();
          await out.close(); // publishes sleepy/gateway/status offline
        },
      };
    };
    let outward: Outward | undefined;
    /** Set by close(): a leadership gained while shutting down starts no outward client. */
    let shuttingDown = false;
    if (config.homeAssistant.enabled || config.alerts.mqtt) {
      if (redisTransport) {
        redisTransport.onLeadership((leader) => {
          if (leader) {
            if (!shuttingDown) outward ??= startOutward();
          } else {
            // the next leader publishes sleepy/gateway/status online when it takes the lease
            outward?.close().catch((err: unknown) => log.warn({ err: (err as Error).message }, "closing the outward MQTT client failed"));
            outward = undefined;
          }
        });
        if (redisTransport.isLeader()) outward = startOutward();
      } else outward = startOutward();
      cleanups.push(() => outward?.close());
    }
    // The device's row goes in every replica (transport.forgetDevice: an event); its Home Assistant entities and
    // MQTT alerts are cleared by the gateway that runs the outward client. In Redis mode that is the leader only:
    // a follower refuses (503) rather than leave them retained on the broker, and the client retries.
    const outwardConfigured = config.homeAssistant.enabled || config.alerts.mqtt;
    const forgetDevice = async (deviceId: string): Promise<boolean> => {
      if (outwardConfigured && outward === undefined) {
        throw new Error("this gateway does not publish Home Assistant entities or MQTT alerts (in Redis mode the leader does): try again, it may be the leader then");
      }
      return deviceForgetter({ transport, bridge, alerts, out: outward?.out, homeAssistant: outward?.homeAssistant, mqttAlerts: outward?.mqttAlerts })(deviceId);
    };
    const commands = new Commands(transport, (t, p) => bridge.publishQos1(t, p), metrics, log.child({ part: "commands" }));
    const handlers = createHandlers({ transport, commands, metrics, log: log.child({ part: "bridge" }) });
    broker?.on("delivered", handlers.delivered);
    // Stops the intake before the transport closes: a message that arrives later stays in the broker.
    const stopIntake = async () => {
      broker?.off("delivered", handlers.delivered);
      await bridge.close();
    };
    cleanups.push(stopIntake);
    await bridge.start(handlers.message);

    let instance: string | undefined;
    const app = createApp({
      instance: () => instance,
      auth: auth.http,
      transport,
      commands,
      summaries: transport.summaries,
      coverage: { retention: config.summaries.retention, summaries: config.summaries.enabled },
      alerts,
      forgetDevice,
      metrics,
      deviceMetrics: config.metrics,
      log: log.child({ part: "http" }),
      health: {
        broker: () => bridge.connected && !(broker?.closed ?? false),
        db: () => (redisTransport ? redisTransport.replicaHealthy() : transport.healthy()),
        ...(redisTransport && { redis: () => redisTransport.healthy() }),
        // a follower in Redis mode runs no outward client: nothing of it can be down there
        ...(config.homeAssistant.enabled || config.alerts.mqtt ? { publisher: () => outward === undefined || outward.out.connected } : {}),
      },
    });

    const http = await startHttpListener(app, {
      host: config.host,
      port: config.port,
      tls,
      supervisor: opts.supervisor,
      redirectPort: config.httpRedirectPort,
      idleTimeoutMs: 2 * config.sse.heartbeatMs, // a connection with an SSE stream has traffic every heartbeat
      handshakeFailed: (err) => {
        metrics.tlsHandshakeErrors.inc({ listener: "https" });
        log.debug({ listener: "https", err: err.message }, "tls handshake failed");
      },
      log: log.child({ part: "http" }),
    });
    cleanups.push(() => http.finish(0));
    const url = baseUrl(http, config.host);
    instance = `${hostname()}:${http.port}`;
    if (config.tls && tls) {
      const reloader = new CertificateReloader({
        files: config.tls,
        current: tls,
        apply(credentials, certificate) {
          http.setCertificate(credentials);
          broker?.setCertificate(credentials);
          metrics.tlsCertificateExpiry.set(certificate.expiresAtMs / 1000);
        },
        counted: (result) => metrics.tlsReloads.inc({ result }),
        log: log.child({ part: "tls" }),
      });
      cleanups.push(() => reloader.close());
    }
    if (config.auth.mode === "open") {
      log.warn(
        { host: config.host },
        config.auth.allowNetwork
          ? "HTTP auth is in OPEN mode (allowNetwork): anyone on the network may read and send commands"
          : "HTTP auth is in OPEN mode on loopback: any local user or program may read and send commands",
      );
    }
    log.info({ url, redirectPort: http.redirectPort, mqtt: broker?.urls ?? brokerTarget.urls }, "gateway listening");

    let closing: Promise<void> | undefined;
    const close = (): Promise<void> =>
      (closing ??= (async () => {
        log.info("gateway shutting down");
        shuttingDown = true;
        http.stopAccepting();
        await stopIntake(); // the broker keeps for the next start whatever this gateway did not acknowledge
        summaryEvents.close();
        await alerts.close(); // webhooks: deliveries in flight finish (bounded), the rest are counted
        const stopping = outward;
        outward = undefined;
        await stopping?.close(); // publishes sleepy/gateway/status offline
        await transport.close(); // ends every SSE stream; clients reconnect to the next instance with their last id
        await http.finish(2_000);
        await runCleanups(cleanups, log);
      })());

    return { url, port: http.port, redirectPort: http.redirectPort, mqttUrl: brokerTarget.urls[0]!, broker, app, metrics, log, adminToken: auth.admin, close };
  } catch (err) {
    await runCleanups(cleanups, log);
    throw err;
  }
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
