/**
 * The HTTP side's sockets: plain HTTP, or with a certificate HTTPS with HTTP/2 (ALPN: browsers get h2, so every
 * tab's SSE stream and API call share one connection instead of HTTP/1.1's six per host; curl and other
 * HTTP/1.1 clients still get HTTP/1.1 on the same port). Optionally a plain HTTP port that only redirects to
 * HTTPS. Owns graceful shutdown of the connections, which differs between the two servers.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { createAdaptorServer } from "@hono/node-server";
import type { Hono } from "hono";
import { closed, listen } from "../net/listen.ts";
import type { Logger } from "../ops/log.ts";
import type { TlsCredentials } from "../tls/credentials.ts";
import { acceptHandedConnections, type SupervisorChannel } from "../supervisor/handoff.ts";
import type { AppEnv } from "./env.ts";

export interface HttpListenerOptions {
  host: string;
  port: number;
  /** HTTPS + HTTP/2 with this pair; plain HTTP without. */
  tls?: TlsCredentials;
  /** With `tls`: plain HTTP on this port answering every request with a redirect to the HTTPS URL. */
  redirectPort?: number;
  /**
   * With `tls`: an HTTP/2 session or HTTPS connection with no traffic this long is closed. Longer than the SSE
   * heartbeat, so a connection carrying a stream is never idle.
   */
  idleTimeoutMs: number;
  /** Plain HTTP only: also serve the connections a --workers supervisor hands over on its shared port. */
  supervisor?: SupervisorChannel;
  /** With `tls`: a TLS handshake failed (client does not trust the certificate, a scanner, plain HTTP). */
  handshakeFailed(err: Error): void;
  log: Logger;
}

export interface HttpListener {
  readonly port: number;
  /** The redirect listener's port, when there is one. */
  readonly redirectPort: number | undefined;
  readonly secure: boolean;
  /** New TLS handshakes present this certificate; open connections (and their SSE streams) keep theirs. */
  setCertificate(credentials: TlsCredentials): void;
  /** Stops accepting connections now; `finish` ends the open ones. */
  stopAccepting(): void;
  /**
   * Closes idle connections at once (HTTP/1.1 between requests, or once its response ends; HTTP/2 sessions get
   * GOAWAY and close after their last stream), every connection after `graceMs`; resolves when all are closed.
   */
  finish(graceMs: number): Promise<void>;
}

/** Idle HTTP/1.1 keep-alive connections close after this, on HTTP and HTTPS alike (Node's default for HTTP). */
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** HTTP/2 streams one connection may have open at once (each SSE stream holds a queue of up to sse.maxQueueBytes). */
export const MAX_CONCURRENT_STREAMS = 100;
/** A client that connects but does not finish the TLS handshake (Node's default is 2 minutes). */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/** The address a local client uses for a server bound to `host` (all interfaces → 127.0.0.1), bracketed if IPv6. */
export const loopbackFor = (host: string): string =>
  host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;

export function baseUrl(listener: Pick<HttpListener, "secure" | "port">, host: string): string {
  return `${listener.secure ? "https" : "http"}://${loopbackFor(host)}:${listener.port}`;
}

export async function startHttpListener(app: Hono<AppEnv>, opts: HttpListenerOptions): Promise<HttpListener> {
  if (opts.tls === undefined) return plainListener(app, opts);
  if (opts.supervisor) throw new Error("handed connections are plain HTTP: a --workers worker has no certificate (run-workers.ts refuses TLS)");
  return secureListener(app, opts, opts.tls);
}

const serverError = (opts: HttpListenerOptions, listener: string) => (err: Error) =>
  opts.log.error({ err, listener }, "http listener error; it keeps serving");

async function plainListener(app: Hono<AppEnv>, opts: HttpListenerOptions): Promise<HttpListener> {
  const server = await listen(createAdaptorServer({ fetch: app.fetch }) as HttpServer, opts.port, opts.host, serverError(opts, "http"));
  const handed = opts.supervisor && acceptHandedConnections(server, opts.supervisor, opts.log);
  let serverClosed: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    redirectPort: undefined,
    secure: false,
    setCertificate() {
      throw new Error("plain HTTP listener has no certificate");
    },
    stopAccepting() {
      handed?.stop();
      serverClosed ??= closed(server);
    },
    async finish(graceMs) {
      handed?.stop();
      serverClosed ??= closed(server);
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), graceMs);
      await Promise.all([serverClosed, handed?.drained()]);
      clearTimeout(force);
    },
  };
}

/** A Host header we may echo in a redirect: a DNS name, IPv4 or [IPv6], optionally a port. Nothing else (no userinfo). */
const HOST_HEADER = /^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:\d{1,5})?$/i;

/** The plain-HTTP port's answer to everything: the same path and query on HTTPS. */
function redirectToHttps(configuredHost: string, httpsPort: number) {
  const suffix = httpsPort === 443 ? "" : `:${httpsPort}`;
  return (req: IncomingMessage, res: ServerResponse): void => {
    // The Host header names the address the client used; only a well-formed one is echoed, and only its port changes.
    const host = req.headers.host !== undefined && HOST_HEADER.test(req.headers.host) ? req.headers.host : loopbackFor(configuredHost);
    const hostname = host.replace(/:\d+$/, "");
    // path and query only, also from an absolute-form request line (GET http://host/path)
    const target = new URL(req.url ?? "/", "http://placeholder");
    // no-store: a 308 is cacheable by default, and a cached one would outlive a change of port or host
    res.writeHead(308, { Location: `https://${hostname}${suffix}${target.pathname}${target.search}`, "Cache-Control": "no-store" }).end();
  };
}

async function secureListener(app: Hono<AppEnv>, opts: HttpListenerOptions, tls: TlsCredentials): Promise<HttpListener> {
  const server = createAdaptorServer({
    fetch: app.fetch,
    createServer: createSecureServer,
    serverOptions: { ...tls, allowHTTP1: true, handshakeTimeout: HANDSHAKE_TIMEOUT_MS, settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS } },
  }) as Http2SecureServer & { keepAliveTimeout?: number };
  // Http2SecureServer has none of HttpServer's defaults: without these an idle connection stays open forever.
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS; // HTTP/1.1 between requests (read by Node's HTTP/1 fallback)
  server.setTimeout(opts.idleTimeoutMs); // HTTP/2 sessions and HTTP/1.1 sockets with no traffic at all
  server.on("tlsClientError", (err) => opts.handshakeFailed(err));

  // Http2SecureServer has no closeIdleConnections/closeAllConnections: its connections are tracked here. Raw
  // sockets from 'connection', so a handshake that never finishes cannot hold the shutdown either. Its close()
  // closes the HTTP/1.1 connections idle at that moment; one answering a request is closed after the response.
  const sockets = new Set<Socket>();
  const sessions = new Set<Http2Session>();
  /** HTTP/1.1 connections that have had a request, with how many requests each is answering now. */
  const http1 = new Map<TLSSocket, number>();
  let closing = false;
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  server.on("request", (req: Http2ServerRequest, res: Http2ServerResponse) => {
    if (req.httpVersionMajor !== 1) return;
    const socket = req.socket as unknown as TLSSocket;
    if (!http1.has(socket)) socket.once("close", () => http1.delete(socket));
    http1.set(socket, (http1.get(socket) ?? 0) + 1);
    res.once("close", () => {
      if (!http1.has(socket)) return; // the connection is gone already
      const busy = http1.get(socket)! - 1;
      http1.set(socket, busy);
      if (closing && busy === 0) socket.destroy(); // shutting down: no next request on it
    });
  });
  await listen(server, opts.port, opts.host, serverError(opts, "https"));
  const port = (server.address() as AddressInfo).port;

  let redirect: HttpServer | undefined;
  if (opts.redirectPort !== undefined) {
    redirect = createHttpServer(redirectToHttps(opts.host, port));
    try {
      await listen(redirect, opts.redirectPort, opts.host, serverError(opts, "http-redirect"));
    } catch (err) {
      await closed(server);
      throw err;
    }
  }

  let serverClosed: Promise<void> | undefined;
  const stopAccepting = () => {
    closing = true;
    serverClosed ??= Promise.all([closed(server), redirect && closed(redirect)]).then(() => undefined);
  };
  return {
    port,
    redirectPort: redirect ? (redirect.address() as AddressInfo).port : undefined,
    secure: true,
    setCertificate(credentials) {
      server.setSecureContext({ ...credentials });
    },
    stopAccepting,
    async finish(graceMs) {
      stopAccepting();
      redirect?.closeAllConnections();
      for (const session of sessions) session.close(); // GOAWAY: streams in flight finish, no new ones
      const force = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      await serverClosed;
      clearTimeout(force);
    },
  };
}
