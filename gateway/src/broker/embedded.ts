import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { Aedes, type Client, type PublishPacket, type PubrelPacket } from "aedes";
import { writeToStream } from "mqtt-packet";
import { createAuthHooks, type AuthCounters, type DeviceAuthOptions, type ServiceCredential } from "./device-auth.ts";
import { forwardAtGrantedQos } from "./granted-qos.ts";
import { DEFAULT_MAX_PACKET_BYTES, limitPacketSize } from "./packet-size-limit.ts";
import { startListeners, type ListenerKind, type Listeners } from "./listeners.ts";
import { silentLogger, type BrokerLogger } from "./logger.ts";
import type { TlsCredentials } from "../tls/credentials.ts";
import { SqlitePersistence } from "./persistence/sqlite.ts";
import { RedisPersistence } from "./persistence/redis.ts";
import { redisMessageBus } from "./nodes.ts";
import { decoratedPersistence } from "./persistence/stack.ts";
import type { BrokerStore } from "./persistence/store.ts";

export interface EmbeddedBrokerOptions {
  /** Interface every listener binds, e.g. "127.0.0.1" or "0.0.0.0" for the LAN. */
  host: string;
  /** Plain TCP port; 0 picks a free one (read it back from `port`). */
  port: number;
  /** Certificate for `tlsPort` (mqtts) and `wssPort` (wss); swap it later with `setCertificate`. */
  tls?: TlsCredentials;
  /** MQTT over TLS; 0 = a free port. Needs `tls`. */
  tlsPort?: number;
  /** MQTT over WebSockets on path /mqtt; 0 = a free port. */
  wsPort?: number;
  /** MQTT over secure WebSockets on path /mqtt; 0 = a free port. Needs `tls`. */
  wssPort?: number;
  /**
   * Directory for `broker.sqlite` (sessions, queued QoS 1/2 messages, retained messages, subscriptions, wills)
   * and, by default, `mqtt-credentials.json`. Without it everything is in memory and lost on restart.
   */
  dataDir?: string;
  /** Default `{ mode: "devices" }`: open mode must be asked for explicitly. Invalid `deny` rules throw ErrInvalidDenyRule. */
  auth?: DeviceAuthOptions;
  logger?: BrokerLogger;
  /**
   * The store under the broker's rules (persistence/stack.ts); default a SqlitePersistence on dataDir (in memory
   * without one). Tests pass their own to inject faults.
   */
  persistence?: BrokerStore;
  /**
   * Run as one node of several sharing this Redis (nodes.ts): sessions, queues, retained messages and wills in
   * a RedisPersistence, publishes carried between nodes by mqemitter-redis. `dataDir` then only holds the
   * device credentials file.
   */
  redis?: { url: string; prefix?: string };
  /**
   * How often a node tells the others it is alive (aedes' heartbeat); the wills of a node silent for 3
   * intervals are published by a survivor within 4 more. Default aedes' 60 s.
   */
  heartbeatIntervalMs?: number;
  /** Largest MQTT packet a client may send, bytes (packet-size-limit.ts); default 256 KiB. */
  maxPacketBytes?: number;
}

export interface DeliveredEvent {
  clientId: string;
  topic: string;
  payload: Buffer;
  qos: 1 | 2;
  messageId: number;
}

export interface ClientEvent {
  clientId: string;
}

export interface BrokerCounters extends AuthCounters {
  /** Connections closed because of a protocol or socket error (each dropped its in-flight packets). */
  clientErrors: number;
  /** TLS handshakes that failed on mqtts or wss (client does not trust the certificate, plain MQTT on a TLS port...). */
  tlsHandshakeErrors: number;
}

interface EmbeddedBrokerEvents {
  delivered: [DeliveredEvent];
  clientConnected: [ClientEvent];
  clientDisconnected: [ClientEvent];
}

export class ErrBrokerClosed extends Error {
  override name = "ErrBrokerClosed";
}

/** A running aedes broker on TCP (and TLS, WebSockets). Create it with {@link startEmbeddedBroker}. */
export class EmbeddedBroker extends EventEmitter<EmbeddedBrokerEvents> {
  private closing: Promise<void> | undefined;

  /** @internal use startEmbeddedBroker */
  constructor(
    /** The plain TCP listener's URL and port. */
    readonly url: string,
    readonly port: number,
    /** Every listener that is on, by kind: `urls.mqtts`, `urls.wss`... */
    readonly urls: Readonly<Partial<Record<ListenerKind, string>>>,
    readonly ports: Readonly<Partial<Record<ListenerKind, number>>>,
    /** Full-rights login for the gateway's own MQTT client (also valid in open mode). */
    readonly serviceCredentials: ServiceCredential,
    readonly counters: Readonly<BrokerCounters>,
    /** The aedes instance inside, for observers (tests watch its `publish` / `subscribe` events). */
    readonly aedes: Aedes,
    private readonly sockets: Listeners,
    private readonly persistence: { destroy(): Promise<void> },
  ) {
    super();
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Clients with a live connection. */
  get connectedClients(): number {
    if (this.closed) throw new ErrBrokerClosed("broker closed");
    return this.aedes.connectedClients;
  }

  /** New TLS handshakes (mqtts, wss) present this certificate; connected clients keep their connection. */
  setCertificate(credentials: TlsCredentials): void {
    this.sockets.setCertificate(credentials);
  }

  /** Stops listening, disconnects every client, flushes and closes the store. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const listenersClosed = this.sockets.close();
      await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
      this.sockets.dropRemaining();
      await listenersClosed;
      await this.persistence.destroy();
    })();
    return this.closing;
  }
}

/**
 * Starts the embedded MQTT broker (aedes) on TCP, and on TLS and WebSockets when asked (listeners.ts).
 *
 * @example
 * const broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 1883, dataDir: "data" });
 * const client = mqtt.connect(broker.url, { ...broker.serviceCredentials, clientId: "gateway", clean: false });
 * broker.on("delivered", ({ clientId, topic }) => console.log(`${topic} reached ${clientId}`));
 * await broker.close();
 */
export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  // aedes writes through mqtt-packet, whose number cache is 65,536 pre-built Buffers (about 6 MB of heap,
  // 10 MB of RSS) built on the first write: not worth it at sensor rates (docs/benchmarks.md "Start-up and
  // idle memory"). A module-wide switch; the bridge's MQTT client turns it off too (writeCache: false).
  writeToStream.cacheNumbers = false;
  const logger = opts.logger ?? silentLogger;
  const auth = opts.auth ?? { mode: "devices" };
  const serviceCredentials: ServiceCredential = {
    username: "$gateway", // "$" is not allowed in device ids, so no device can take this name
    password: randomBytes(18).toString("base64url"),
  };
  const counters: BrokerCounters = {
    connectRefused: 0,
    publishDenied: 0,
    subscribeDenied: 0,
    forwardDenied: 0,
    clientErrors: 0,
    tlsHandshakeErrors: 0,
  };
  // First: a bad deny rule fails the start before any file or socket exists.
  const hooks = createAuthHooks({ auth, dataDir: opts.dataDir, gateway: serviceCredentials, counters, logger });

  if (opts.dataDir !== undefined) mkdirSync(opts.dataDir, { recursive: true });
  // Without a data dir the same store runs on an in-memory database: one implementation, one behaviour.
  const { store: persistence, early, qos2 } = decoratedPersistence(
    opts.persistence ??
      (opts.redis !== undefined
        ? new RedisPersistence({ ...opts.redis, logger })
        : new SqlitePersistence(opts.dataDir === undefined ? { file: ":memory:" } : { dataDir: opts.dataDir })),
    hooks.subscriptionGranted,
  );

  const aedes = await Aedes.createBroker({
    persistence,
    ...(opts.redis !== undefined && { mq: redisMessageBus(opts.redis, logger) }),
    ...(opts.heartbeatIntervalMs !== undefined && { heartbeatInterval: opts.heartbeatIntervalMs }),
    preConnect: hooks.preConnect,
    authenticate: hooks.authenticate,
    authorizeSubscribe: hooks.authorizeSubscribe,
    authorizePublish(client, packet, callback) {
      hooks.authorizePublish(client, packet, (err) => {
        // client === null: a will re-published by the broker itself; no PUBACK is involved.
        if (err || client === null) return callback(err);
        early.queue(packet).then(
          () => callback(null),
          (error: Error) => {
            // No PUBACK then: aedes closes the connection and the publisher sends the message again.
            logger.error({ err: error, clientId: client.id, topic: packet.topic }, "cannot queue message; connection closed");
            callback(error);
          },
        );
      });
    },
    authorizeForward(client, packet) {
      const allowed = hooks.authorizeForward(client, packet);
      return allowed === null ? null : forwardAtGrantedQos(client, allowed);
    },
    // docs/protocol.md allows 64-character device ids as client ids (aedes defaults to 23, the MQTT 3.1 limit).
    maxClientsIdLength: 64,
    // A subscriber whose socket stays full blocks aedes' read batch of every publisher with a message for it
    // (test/hostile "keeps serving a device while another subscriber stops reading"); aedes' 60 s default let
    // devices time out meanwhile. After 2 s the stalled subscriber is dropped; a persistent session resumes
    // with its queued messages.
    drainTimeout: 2_000,
  });

  const maxPacketBytes = opts.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  const accept = (stream: Duplex): void =>
    limitPacketSize(aedes.handle(stream), maxPacketBytes, (client, declared) => {
      counters.clientErrors++;
      logger.warn({ clientId: client.id ?? null, declared, maxPacketBytes }, "mqtt packet over the size limit, connection closed");
    });
  let listeners: Listeners;
  try {
    listeners = await startListeners(opts, {
      accept,
      maxPacketBytes,
      handshakeFailed(listener, err) {
        counters.tlsHandshakeErrors++;
        logger.debug({ listener, err: err.message }, "tls handshake failed");
      },
      logger,
    });
  } catch (err) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await persistence.destroy();
    throw err;
  }

  const broker = new EmbeddedBroker(
    listeners.urls.mqtt!,
    listeners.ports.mqtt!,
    listeners.urls,
    listeners.ports,
    serviceCredentials,
    counters,
    aedes,
    listeners,
    persistence,
  );

  aedes.on("ack", (packet: PublishPacket | PubrelPacket | undefined, client: Client) => {
    const delivered = qos2.acked(client.id, packet);
    if (delivered !== undefined) broker.emit("delivered", { clientId: client.id, ...delivered });
  });
  aedes.on("clientReady", (client: Client) => {
    logger.debug({ clientId: client.id }, "mqtt client connected");
    broker.emit("clientConnected", { clientId: client.id });
  });
  aedes.on("clientDisconnect", (client: Client) => {
    logger.debug({ clientId: client.id }, "mqtt client disconnected");
    broker.emit("clientDisconnected", { clientId: client.id });
  });
  aedes.on("clientError", (client: Client, err: Error) => {
    counters.clientErrors++;
    logger.warn({ clientId: client.id, err: err.message }, "mqtt client error, connection closed");
  });
  // aedes emits 'error' for store failures (e.g. a full disk); an unhandled 'error' event would end the process.
  (aedes as EventEmitter).on("error", (err: Error) => logger.error({ err }, "mqtt broker error"));
  aedes.on("connectionError", (_client: Client, err: Error) => {
    counters.clientErrors++;
    logger.warn({ err: err.message }, "mqtt connection error before CONNECT");
  });
  logger.info(
    { urls: broker.urls, dataDir: opts.dataDir ?? null, auth: auth.mode, store: opts.redis === undefined ? "sqlite" : "redis", brokerId: aedes.id },
    "embedded mqtt broker listening",
  );
  return broker;
}
