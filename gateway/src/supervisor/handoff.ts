/**
 * `--workers N` on one address: the supervisor listens on PORT and hands each accepted connection to a worker
 * over the IPC channel (the socket's file descriptor travels, not its bytes), round-robin over the workers that
 * said they are ready. Browsers and the bench then reach every core without nginx, and no proxy copies the SSE
 * bytes a second time; nginx (per-worker ports) stays for TLS and for gateways on several machines.
 *
 * Node's cluster module does the same (its round-robin scheduler), but it forks workers itself, in the
 * supervisor's process group and without per-worker environments; the supervisor keeps its own spawn (restart
 * policy, plans, detached groups) and does this one part by hand. Node 20 has no SO_REUSEPORT (`reusePort`).
 *
 * Both sides of the contract live here: {@link SharedPort} in the supervisor, {@link acceptHandedConnections} in
 * a worker.
 */
import { createServer, Socket, type Server } from "node:net";
import type { ChildProcess } from "node:child_process";
import { closed, listen } from "../net/listen.ts";
import type { Logger } from "../ops/log.ts";

/** Worker → supervisor: the worker's HTTP server takes handed connections from now on / no longer does. */
export const READY = "sleepy:ready";
export const DRAINING = "sleepy:draining";
/** Supervisor → worker, with the socket as the message's handle. */
const CONNECTION = "sleepy:connection";

type Kind = typeof READY | typeof DRAINING | typeof CONNECTION;
const kindOf = (msg: unknown): Kind | undefined =>
  typeof msg === "object" && msg !== null && typeof (msg as { type?: unknown }).type === "string" ? ((msg as { type: string }).type as Kind) : undefined;

/** Whether `msg` from a worker is one of the hand-off messages, and which. */
export const workerSaid = (msg: unknown): typeof READY | typeof DRAINING | undefined => {
  const kind = kindOf(msg);
  return kind === READY || kind === DRAINING ? kind : undefined;
};

export interface SharedPortOptions {
  host: string;
  port: number;
  /** The next worker to take a connection (round-robin over the ready ones), or none. */
  nextWorker(): ChildProcess | undefined;
  log: Logger;
}

export interface SharedPortStats {
  handed: number;
  /** Closed at once: no worker was ready, or the hand-off failed (the worker died meanwhile). */
  refused: number;
}

export class SharedPort {
  readonly stats: SharedPortStats = { handed: 0, refused: 0 };
  private lastRefusalLog = 0;

  private constructor(
    private readonly server: Server,
    private readonly opts: SharedPortOptions,
  ) {}

  /** Listens on host:port (rejects with EADDRINUSE and the like); connections wait unread until handed on. */
  static async open(opts: SharedPortOptions): Promise<SharedPort> {
    const server = createServer({ pauseOnConnect: true });
    const shared = new SharedPort(server, opts);
    server.on("connection", (socket) => shared.handOff(socket));
    await listen(server, opts.port, opts.host, (err) => opts.log.error({ err }, "shared port: accept failed; it keeps listening"));
    return shared;
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === "object" && address ? address.port : this.opts.port;
  }

  /** Stops accepting; connections already handed on belong to their workers. */
  close(): Promise<void> {
    return closed(this.server);
  }

  private handOff(socket: Socket): void {
    const worker = this.opts.nextWorker();
    if (!worker) return this.refuse(socket, "no worker ready");
    // keepOpen false (the default): the supervisor's copy of the descriptor is closed once it is sent
    worker.send({ type: CONNECTION }, socket, (err) => {
      if (err) this.refuse(socket, `hand-off to worker pid ${worker.pid} failed: ${err.message}`);
      else this.stats.handed++;
    });
  }

  /** The client sees its connection close and retries (EventSource does by itself); logged at most once a second. */
  private refuse(socket: Socket, why: string): void {
    socket.destroy();
    this.stats.refused++;
    const now = Date.now();
    if (now - this.lastRefusalLog >= 1000) {
      this.lastRefusalLog = now;
      this.opts.log.warn({ why, refused: this.stats.refused }, "shared port: connection closed");
    }
  }
}

/** The worker's end of the IPC channel (the `process` of a child started with an "ipc" stdio entry). */
export interface SupervisorChannel {
  on(event: "message", listener: (msg: unknown, handle: unknown) => void): unknown;
  readonly connected?: boolean;
  send?(msg: unknown, handle: undefined, options: object, callback: (err: Error | null) => void): boolean;
}

/** A closed channel means the supervisor is gone (server.ts stops the worker then): nothing to tell it. */
function tell(channel: SupervisorChannel, type: typeof READY | typeof DRAINING): void {
  if (channel.connected) channel.send?.({ type }, undefined, {}, () => {});
}

/**
 * In a worker: connections the supervisor hands over join `server` as if it had accepted them itself (Node's
 * documented way to inject a connection). Says READY now; `stop()` says DRAINING and closes any connection still
 * handed over after it (the supervisor is told, but one may be on its way).
 */
export function acceptHandedConnections(server: Server, channel: SupervisorChannel): { stop(): void } {
  let accepting = true;
  const onMessage = (msg: unknown, handle: unknown) => {
    if (kindOf(msg) !== CONNECTION || !(handle instanceof Socket)) return;
    if (accepting) server.emit("connection", handle);
    else handle.destroy();
  };
  channel.on("message", onMessage);
  tell(channel, READY);
  return {
    stop() {
      if (!accepting) return;
      accepting = false;
      tell(channel, DRAINING);
      // stays registered: a connection sent before the supervisor read DRAINING is closed, not leaked
    },
  };
}
