/**
 * The HTTP side's sockets: plain HTTP, or with a certificate HTTPS with HTTP/2 (ALPN: browsers get h2, so every
 * tab's SSE stream and API call share one connection instead of HTTP/1.1's six per host; curl and other
 * HTTP/1.1 clients still get HTTP/1.1 on the same port). Optionally a plain HTTP port that only redirects to
 * HTTPS. Owns graceful shutdown of the connections, which differs between the two servers.
 */
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createSecureServer, type Http2SecureServer, type Http2Session } from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import { serve } from "@hono/node-server";
import type { Hono } from "hono";
import type { TlsCredentials } from "../tls/credentials.ts";
import type { AppEnv } from "./env.ts";

export interface HttpListenerOptions {
  host: string;
  port: number;
  /** HTTPS + HTTP/2 with this pair; plain HTTP without. */
  tls?: TlsCredentials;
  /** With `tls`: plain HTTP on this port answering every request with a redirect to the HTTPS URL. */
  redirectPort?: number;
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
  /** Closes idle connections at once, every connection after `graceMs`; resolves when all are closed. */
  finish(graceMs: number): Promise<void>;
}

/** The address a local client uses for a server bound to `host` (all interfaces → 127.0.0.1), bracketed if IPv6. */
export const loopbackFor = (host: string): string =>
  host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;

export function baseUrl(listener: Pick<HttpListener, "secure" | "port">, host: string): string {
  return `${listener.secure ? "https" : "http"}://${loopbackFor(host)}:${listener.port}`;
}

function listening<S extends HttpServer | Http2SecureServer>(server: S, host: string, port: number): Promise<S> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

const closed = (server: HttpServer | Http2SecureServer): Promise<void> =>
  new Promise((resolve) => server.close(() => resolve()));

export async function startHttpListener(app: Hono<AppEnv>, opts: HttpListenerOptions): Promise<HttpListener> {
  if (opts.tls === undefined) return plainListener(app, opts);
  return secureListener(app, opts, opts.tls);
}

async function plainListener(app: Hono<AppEnv>, opts: HttpListenerOptions): Promise<HttpListener> {
  const server = await new Promise<HttpServer>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: opts.host, port: opts.port }, () => {
      s.off("error", reject);
      resolve(s as HttpServer);
    });
    s.once("error", reject);
  });
  let serverClosed: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    redirectPort: undefined,
    secure: false,
    setCertificate() {
      throw new Error("plain HTTP listener has no certificate");
    },
    stopAccepting() {
      serverClosed ??= closed(server);
    },
    async finish(graceMs) {
      serverClosed ??= closed(server);
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), graceMs);
      await serverClosed;
      clearTimeout(force);
    },
  };
}

async function secureListener(app: Hono<AppEnv>, opts: HttpListenerOptions, tls: TlsCredentials): Promise<HttpListener> {
  const server = serve({
    fetch: app.fetch,
    createServer: createSecureServer,
    serverOptions: { ...tls, allowHTTP1: true },
    hostname: opts.host,
    port: opts.port,
  }) as Http2SecureServer;
  // Http2SecureServer has no closeIdleConnections/closeAllConnections: its connections are tracked here, from
  // the raw socket on ('connection'), so a handshake that never finishes cannot hold the shutdown either.
  const sockets = new Set<Socket>();
  const sessions = new Set<Http2Session>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    if (server.listening) return resolve();
    server.once("error", reject);
    server.once("listening", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let redirect: HttpServer | undefined;
  if (opts.redirectPort !== undefined) {
    const suffix = port === 443 ? "" : `:${port}`;
    redirect = createHttpServer((req, res) => {
      // The Host header names the address the client used; only its port changes (and the scheme).
      const hostname = (req.headers.host ?? loopbackFor(opts.host)).replace(/:\d+$/, "");
      res.writeHead(308, { Location: `https://${hostname}${suffix}${req.url ?? "/"}` }).end();
    });
    try {
      await listening(redirect, opts.host, opts.redirectPort);
    } catch (err) {
      await closed(server);
      throw err;
    }
  }

  let serverClosed: Promise<void> | undefined;
  const stopAccepting = () => {
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
