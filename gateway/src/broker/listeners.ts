/**
 * The broker's listeners: MQTT on TCP (always), MQTT over TLS (mqtts), MQTT over WebSockets (ws) and over
 * secure WebSockets (wss). Every listener hands its connections to the same `accept` (embedded.ts): one aedes
 * instance, so device auth, the ACL and the packet size limit are the same whichever way a client comes in.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createServer as createTcpServer, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import { WebSocketServer, createWebSocketStream } from "ws";
import { closed, listen } from "../net/listen.ts";
import type { TlsCredentials } from "../tls/credentials.ts";
import type { BrokerLogger } from "./logger.ts";

/** The WebSocket path and subprotocol MQTT.js, Paho and Mosquitto's websockets listener use. */
export const MQTT_WS_PATH = "/mqtt";
const MQTT_WS_PROTOCOLS = ["mqtt", "mqttv3.1"];
/** The largest MQTT fixed header (1 byte type + 4 bytes remaining length). */
const MAX_FIXED_HEADER_BYTES = 5;

export interface ListenerOptions {
  host: string;
  /** Plain TCP (mqtt://); 0 = a free port. */
  port: number;
  /** The certificate for mqtts and wss; required by `tlsPort` and `wssPort`. */
  tls?: TlsCredentials;
  tlsPort?: number;
  wsPort?: number;
  wssPort?: number;
}

export type ListenerKind = "mqtt" | "mqtts" | "ws" | "wss";

export interface ListenerHooks {
  accept(stream: Duplex): void;
  /** Largest MQTT packet: also the largest WebSocket message (ws would otherwise buffer 100 MiB first). */
  maxPacketBytes: number;
  /** A TLS handshake failed (wrong CA on the client, a scanner, plain MQTT on the TLS port). */
  handshakeFailed(kind: ListenerKind, err: Error): void;
  logger: BrokerLogger;
}

export interface Listeners {
  /** URL per listener that is on, e.g. { mqtt: "mqtt://127.0.0.1:1883", mqtts: "mqtts://127.0.0.1:8883" }. */
  readonly urls: Partial<Record<ListenerKind, string>>;
  readonly ports: Partial<Record<ListenerKind, number>>;
  /** New handshakes on mqtts and wss use this pair; open connections keep theirs. */
  setCertificate(credentials: TlsCredentials): void;
  /** Stops accepting; resolves when every listener's connections have ended (aedes closes the clients). */
  close(): Promise<void>;
  /**
   * Cuts the connections aedes never saw (a TLS handshake or WebSocket upgrade in progress, an idle HTTP request
   * on a WebSocket port): without it `close()` would wait for the handshake timeout (2 min). Call after aedes closed.
   */
  dropRemaining(): void;
}

/** Answers plain HTTP on a WebSocket port: only the upgrade on /mqtt speaks MQTT. */
function notWebSocket(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(426, { "Content-Type": "text/plain", Upgrade: "websocket" }).end(`MQTT over WebSocket: connect to ${MQTT_WS_PATH}\n`);
}

export async function startListeners(opts: ListenerOptions, hooks: ListenerHooks): Promise<Listeners> {
  if ((opts.tlsPort !== undefined || opts.wssPort !== undefined) && opts.tls === undefined) {
    throw new Error("mqtts and wss listeners need a certificate (tls)");
  }
  const servers = new Map<ListenerKind, Server>();
  const secure: TlsServer[] = [];
  const webSocketServers: WebSocketServer[] = [];

  const webSockets = (server: Server): void => {
    const wss = new WebSocketServer({
      server: server as import("node:http").Server,
      path: MQTT_WS_PATH,
      maxPayload: hooks.maxPacketBytes + MAX_FIXED_HEADER_BYTES,
      handleProtocols: (offered) => MQTT_WS_PROTOCOLS.find((p) => offered.has(p)) ?? false,
    });
    wss.on("connection", (ws) => hooks.accept(createWebSocketStream(ws)));
    wss.on("error", (err) => hooks.logger.error({ err }, "mqtt websocket listener error"));
    webSocketServers.push(wss);
  };

  servers.set("mqtt", createTcpServer(hooks.accept));
  if (opts.tlsPort !== undefined) {
    const server = createTlsServer({ ...opts.tls }, hooks.accept);
    server.on("tlsClientError", (err) => hooks.handshakeFailed("mqtts", err));
    secure.push(server);
    servers.set("mqtts", server);
  }
  if (opts.wsPort !== undefined) {
    const server = createHttpServer(notWebSocket);
    webSockets(server);
    servers.set("ws", server);
  }
  if (opts.wssPort !== undefined) {
    const server = createHttpsServer({ ...opts.tls }, notWebSocket);
    server.on("tlsClientError", (err) => hooks.handshakeFailed("wss", err));
    webSockets(server);
    secure.push(server);
    servers.set("wss", server);
  }

  // Every raw socket of every listener, for dropRemaining.
  const sockets = new Set<Socket>();
  for (const server of servers.values()) {
    server.on("connection", (socket: Socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    });
  }

  const portOf: Record<ListenerKind, number | undefined> = { mqtt: opts.port, mqtts: opts.tlsPort, ws: opts.wsPort, wss: opts.wssPort };
  const listening: Server[] = [];
  const closeAll = async () => {
    for (const wss of webSocketServers) wss.close();
    await Promise.all(listening.map(closed));
  };
  const urls: Partial<Record<ListenerKind, string>> = {};
  const ports: Partial<Record<ListenerKind, number>> = {};
  const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  try {
    for (const [kind, server] of servers) {
      await listen(server, portOf[kind] ?? 0, opts.host, (err) => hooks.logger.error({ err, listener: kind }, "mqtt listener error"));
      listening.push(server);
      const address = server.address();
      if (address === null || typeof address === "string") throw new Error(`${kind} listener has no TCP address`);
      ports[kind] = address.port;
      const path = kind === "ws" || kind === "wss" ? MQTT_WS_PATH : "";
      urls[kind] = `${kind}://${host}:${address.port}${path}`;
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  return {
    urls,
    ports,
    setCertificate(credentials) {
      for (const server of secure) server.setSecureContext({ ...credentials });
    },
    close: closeAll,
    dropRemaining() {
      for (const socket of sockets) socket.destroy();
    },
  };
}
