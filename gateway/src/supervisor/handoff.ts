/**
 * `--workers N` on one address: the supervisor listens on PORT and hands each accepted connection to a worker
 * over the IPC channel (the socket's file descriptor travels, not its bytes). Browsers and the bench then reach
 * every core without nginx, and no proxy copies the SSE bytes a second time; nginx (per-worker ports) stays for
 * TLS and for gateways on several machines.
 *
 * Node's cluster module does the same (its round-robin scheduler), but it forks the workers itself, in the
 * supervisor's process group and without per-worker environments; the supervisor keeps its own spawn (restart
 * policy, plans, detached groups) and does this one part here. Node 20 has no SO_REUSEPORT (`reusePort`).
 *
 * The contract, both ends in this file:
 * - a worker says READY once its HTTP server takes connections, LOAD (its open handed connections) at most
 *   once a second while that changes, DRAINING when it stops ({@link acceptHandedConnections});
 * - the supervisor keeps accepted connections paused in one bounded queue and hands the oldest to the ready
 *   worker with the fewest connections that has no hand-off in flight ({@link SharedPort}). One in flight per
 *   worker: a worker that stalls holds one connection, not a share of every new one, and one that dies loses
 *   only that one (closed, counted).
 */
import { createServer, Socket, type Server } from "node:net";
import type { ChildProcess } from "node:child_process";
import { closed, listen } from "../net/listen.ts";
import type { Logger } from "../ops/log.ts";

const READY = "sleepy:ready";
const LOAD = "sleepy:load";
const DRAINING = "sleepy:draining";
/** Supervisor → worker, with the socket as the message's handle. */
const CONNECTION = "sleepy:connection";

type Message = { type: typeof READY | typeof DRAINING | typeof CONNECTION } | { type: typeof LOAD; open: number };

function asMessage(msg: unknown): Message | undefined {
  if (typeof msg !== "object" || msg === null) return undefined;
  const m = msg as { type?: unknown; open?: unknown };
  if (m.type === READY || m.type === DRAINING || m.type === CONNECTION) return { type: m.type };
  if (m.type === LOAD && typeof m.open === "number") return { type: LOAD, open: m.open };
  return undefined;
}

export interface SharedPortOptions {
  host: string;
  port: number;
  log: Logger;
  /** Connections waiting for a worker at most; past it a new one is closed (default 4,096). */
  maxQueued?: number;
  /** How long a connection may wait for a worker (all restarting, say) before it is closed (default 10 s). */
  maxWaitMs?: number;
}

export interface SharedPortStats {
  handed: number;
  /** Closed unserved: the queue was full, no worker became ready in time, or the worker died during the hand-off. */
  refused: number;
}

interface WorkerSlot {
  child: ChildProcess;
  ready: boolean;
  /** The connection being handed to it (its send callback has not run yet). */
  inFlight: Socket | undefined;
  /** Open handed connections it last reported, plus those handed since. */
  open: number;
}

export class SharedPort {
  readonly stats: SharedPortStats = { handed: 0, refused: 0 };
  private readonly queue: Array<{ socket: Socket; at: number }> = [];
  private readonly workers = new Set<WorkerSlot>();
  private readonly maxQueued: number;
  private readonly maxWaitMs: number;
  private readonly sweep: NodeJS.Timeout;
  private refusedUnlogged: Record<string, number> = {};
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    private readonly opts: SharedPortOptions,
  ) {
    this.maxQueued = opts.maxQueued ?? 4096;
    this.maxWaitMs = opts.maxWaitMs ?? 10_000;
    // Once a second: close connections that waited too long, and log what was refused since the last line.
    this.sweep = setInterval(() => {
      this.dropExpired();
      this.logRefusals();
    }, 1000).unref();
  }

  /** Listens on host:port (rejects with EADDRINUSE and the like); connections wait unread until handed on. */
  static async open(opts: SharedPortOptions): Promise<SharedPort> {
    const server = createServer({ pauseOnConnect: true });
    const shared = new SharedPort(server, opts);
    server.on("connection", (socket) => shared.enqueue(socket));
    try {
      await listen(server, opts.port, opts.host, (err) => opts.log.error({ err }, "shared port: accept failed; it keeps listening"));
    } catch (err) {
      clearInterval(shared.sweep);
      throw err;
    }
    return shared;
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === "object" && address ? address.port : this.opts.port;
  }

  /** A worker process just spawned: it takes connections once it says READY, until DRAINING or its exit. */
  adopt(child: ChildProcess): void {
    const slot: WorkerSlot = { child, ready: false, inFlight: undefined, open: 0 };
    this.workers.add(slot);
    child.on("message", (msg) => {
      const m = asMessage(msg);
      if (m?.type === READY) slot.ready = true;
      else if (m?.type === DRAINING) slot.ready = false;
      else if (m?.type === LOAD) slot.open = m.open;
      else return;
      this.dispatch();
    });
    child.once("exit", () => {
      this.workers.delete(slot);
      // Node never completes a hand-off to a dead worker: its copy of the descriptor would stay open, unserved.
      if (slot.inFlight) this.refuse(slot.inFlight, "worker exited during the hand-off");
      slot.inFlight = undefined;
    });
  }

  /** Stops accepting and closes the connections still waiting; those handed on belong to their workers. Safe twice. */
  close(): Promise<void> {
    if (!this.closing) {
      clearInterval(this.sweep);
      this.closing = closed(this.server).then(() => {
        this.logRefusals();
        this.opts.log.info({ ...this.stats }, "shared port closed");
      });
      for (const { socket } of this.queue.splice(0)) this.refuse(socket, "shutting down");
    }
    return this.closing;
  }

  private enqueue(socket: Socket): void {
    if (this.closing) return this.refuse(socket, "shutting down");
    if (this.queue.length >= this.maxQueued) return this.refuse(socket, "queue full");
    this.queue.push({ socket, at: Date.now() });
    this.dispatch();
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const slot = this.leastLoadedIdleWorker();
      if (!slot) return;
      const { socket } = this.queue.shift()!;
      if (socket.destroyed) continue;
      this.handTo(slot, socket);
    }
  }

  private leastLoadedIdleWorker(): WorkerSlot | undefined {
    let best: WorkerSlot | undefined;
    for (const w of this.workers) {
      if (w.ready && !w.inFlight && w.child.connected && (!best || w.open < best.open)) best = w;
    }
    return best;
  }

  private handTo(slot: WorkerSlot, socket: Socket): void {
    slot.inFlight = socket;
    slot.open++;
    // keepOpen: the supervisor closes its copy itself once the descriptor is written to the channel (the
    // worker holds its own from then on), and can still close it if the worker dies before that.
    slot.child.send({ type: CONNECTION }, socket, { keepOpen: true }, (err) => {
      if (slot.inFlight !== socket) return; // the worker exited first: refused there
      slot.inFlight = undefined;
      if (err) {
        slot.open--;
        this.refuse(socket, "hand-off failed");
      } else {
        this.stats.handed++;
        socket.destroy();
      }
      this.dispatch();
    });
  }

  private dropExpired(): void {
    const oldest = Date.now() - this.maxWaitMs;
    while (this.queue.length > 0 && this.queue[0]!.at < oldest) this.refuse(this.queue.shift()!.socket, "no worker ready in time");
  }

  /** The client sees its connection close and retries (EventSource does by itself). */
  private refuse(socket: Socket, why: string): void {
    socket.destroy();
    this.stats.refused++;
    this.refusedUnlogged[why] = (this.refusedUnlogged[why] ?? 0) + 1;
  }

  private logRefusals(): void {
    if (Object.keys(this.refusedUnlogged).length === 0) return;
    this.opts.log.warn({ closed: this.refusedUnlogged, refusedTotal: this.stats.refused }, "shared port: connections closed unserved");
    this.refusedUnlogged = {};
  }
}

/** The worker's end of the IPC channel: `process` in a child started with an "ipc" stdio entry. */
export type SupervisorChannel = Pick<NodeJS.Process, "on" | "send" | "connected">;

/** A closed channel means the supervisor is gone (server.ts stops the worker then): nothing to tell it. */
function tell(channel: SupervisorChannel, msg: Message): void {
  if (channel.connected) channel.send?.(msg, undefined, {}, () => {});
}

export interface HandedConnections {
  /** Says DRAINING; connections handed over after this are closed (logged). */
  stop(): void;
  /** Resolves once every handed connection has closed (http.Server's close() does not wait for them). */
  drained(): Promise<void>;
}

/**
 * In a worker: connections the supervisor hands over join `server` as if it had accepted them itself (Node's
 * documented way to inject a connection: 'connection'), so its closeIdleConnections/closeAllConnections cover
 * them. Says READY now.
 */
export function acceptHandedConnections(server: Server, channel: SupervisorChannel, log: Logger): HandedConnections {
  let accepting = true;
  const open = new Set<Socket>();
  let reported = 0;
  let onDrained: (() => void) | undefined;
  const onMessage = (msg: unknown, handle: unknown) => {
    if (asMessage(msg)?.type !== CONNECTION || !(handle instanceof Socket)) return;
    if (!accepting) {
      // sent before the supervisor read DRAINING
      log.warn("closed a connection handed over after this worker stopped accepting");
      handle.destroy();
      return;
    }
    open.add(handle);
    handle.once("close", () => {
      open.delete(handle);
      if (open.size === 0) onDrained?.();
    });
    server.emit("connection", handle);
  };
  channel.on("message", onMessage);
  tell(channel, { type: READY });
  const load = setInterval(() => {
    if (open.size === reported) return;
    reported = open.size;
    tell(channel, { type: LOAD, open: reported });
  }, 1000).unref();
  return {
    stop() {
      if (!accepting) return;
      accepting = false;
      clearInterval(load);
      tell(channel, { type: DRAINING });
      // the listener stays: a connection already on its way is closed, not leaked
    },
    drained: () => (open.size === 0 ? Promise.resolve() : new Promise((resolve) => (onDrained = resolve))),
  };
}
