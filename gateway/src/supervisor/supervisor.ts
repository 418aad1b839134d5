/**
 * Keeps N gateway processes running: starts each from a {@link WorkerPlan}, restarts one that dies with a
 * growing delay (logged), passes SIGTERM/SIGINT on and resolves when every worker has exited. A worker that
 * exits with 2 (bad configuration) is not restarted: the same config would fail again, so the supervisor
 * stops the others and reports it.
 *
 * @example
 * const sup = new Supervisor({ command: process.execPath, args: ["gateway/dist/server.js"], plans, log });
 * sup.start();
 * process.on("SIGTERM", () => sup.stop("SIGTERM"));
 * const { code } = await sup.exited;
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { Logger } from "../ops/log.ts";
import type { WorkerPlan } from "./worker-plan.ts";

export const BAD_CONFIG_EXIT = 2;

export interface RestartPolicy {
  /** Delay before the first restart; doubled after each crash in a row, up to maxDelayMs. */
  initialDelayMs: number;
  maxDelayMs: number;
  /** A worker that stayed up this long starts again from initialDelayMs after its next crash. */
  resetAfterMs: number;
  /**
   * This many crashes in a row (none after resetAfterMs up) and the supervisor stops every worker and exits 1:
   * a worker that never starts (its port taken, Redis refusing its password) would otherwise restart forever.
   */
  maxCrashesInARow: number;
  /** After a stop signal, how long workers get to shut down before SIGKILL. */
  stopTimeoutMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  resetAfterMs: 60_000,
  maxCrashesInARow: 6,
  // below the units' TimeoutStopSec (25 s), so the supervisor, not systemd, kills a worker that hangs
  stopTimeoutMs: 15_000,
};

export interface SupervisorOptions {
  command: string;
  args: string[];
  plans: WorkerPlan[];
  log: Logger;
  policy?: Partial<RestartPolicy>;
  /** Each worker process as it is spawned (the shared port adopts it). */
  onSpawn?(child: ChildProcess): void;
  /** Once, when the supervisor starts stopping: by a signal, or by itself (a bad config, a crash loop). */
  onStopping?(): void;
}

interface Worker {
  plan: WorkerPlan;
  child: ChildProcess | undefined;
  startedAt: number;
  crashesInARow: number;
  restartTimer: NodeJS.Timeout | undefined;
  restarts: number;
}

export class Supervisor {
  readonly exited: Promise<{ code: number }>;
  private readonly policy: RestartPolicy;
  private readonly workers: Worker[];
  private stopping = false;
  private exitCode = 0;
  private resolveExited!: (r: { code: number }) => void;

  constructor(private readonly opts: SupervisorOptions) {
    this.policy = { ...DEFAULT_RESTART_POLICY, ...opts.policy };
    this.workers = opts.plans.map((plan) => ({ plan, child: undefined, startedAt: 0, crashesInARow: 0, restartTimer: undefined, restarts: 0 }));
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
  }

  start(): void {
    for (const w of this.workers) this.spawn(w);
  }

  /** SIGKILLs every worker now (a second Ctrl-C: the user wants out); `exited` resolves with 1. */
  kill(): void {
    if (!this.stopping) this.opts.onStopping?.();
    this.stopping = true;
    if (this.exitCode === 0) this.exitCode = 1;
    for (const w of this.workers) {
      clearTimeout(w.restartTimer);
      w.restartTimer = undefined;
      w.child?.kill("SIGKILL");
    }
    this.finishIfAllExited();
  }

  /** Sends `signal` to every worker (no restarts from now on); `exited` resolves when all are gone. Safe twice. */
  stop(signal: NodeJS.Signals = "SIGTERM"): void {
    if (!this.stopping) {
      this.opts.log.info({ signal, workers: this.workers.length }, "stopping workers");
      this.opts.onStopping?.();
    }
    this.stopping = true;
    for (const w of this.workers) {
      clearTimeout(w.restartTimer);
      w.restartTimer = undefined;
      w.child?.kill(signal);
    }
    const force = setTimeout(() => {
      for (const w of this.workers) {
        if (w.child) {
          this.opts.log.warn({ worker: w.plan.index, pid: w.child.pid }, "worker did not stop in time: SIGKILL");
          w.child.kill("SIGKILL");
          if (this.exitCode === 0) this.exitCode = 1; // its shutdown did not finish: say so to systemd
        }
      }
    }, this.policy.stopTimeoutMs);
    force.unref();
    this.finishIfAllExited();
  }

  private spawn(w: Worker): void {
    const child = spawn(this.opts.command, this.opts.args, {
      env: { ...process.env, ...w.plan.env },
      // Workers write their JSON log lines straight to the supervisor's stdout/stderr. The IPC channel carries
      // the shared port's connections (handoff.ts) and tells a worker that the supervisor is gone (server.ts). Their own process group: a
      // terminal's Ctrl-C goes to the supervisor alone, which passes it on once (a second signal would make a
      // gateway exit at once instead of shutting down gracefully).
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      detached: true,
    });
    w.child = child;
    w.startedAt = Date.now();
    this.opts.onSpawn?.(child);
    this.opts.log.info({ worker: w.plan.index, pid: child.pid, port: w.plan.port, dataDir: w.plan.dataDir }, "worker started");
    child.once("error", (err) => {
      this.opts.log.error({ err, worker: w.plan.index }, "worker could not be started");
      if (child.pid === undefined) this.onExit(w, child, 1, null); // no process, so no "exit" event
    });
    child.once("exit", (code, signal) => this.onExit(w, child, code, signal));
  }

  private onExit(w: Worker, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (w.child !== child) return;
    w.child = undefined;
    if (this.stopping) {
      this.opts.log.info({ worker: w.plan.index, code, signal }, "worker stopped");
      if (code !== 0 && code !== null && this.exitCode === 0) this.exitCode = 1;
      this.finishIfAllExited();
      return;
    }
    if (code === BAD_CONFIG_EXIT) {
      this.opts.log.error({ worker: w.plan.index, code }, "worker refused its configuration: stopping all workers");
      this.exitCode = BAD_CONFIG_EXIT;
      this.stop("SIGTERM");
      return;
    }
    if (Date.now() - w.startedAt >= this.policy.resetAfterMs) w.crashesInARow = 0;
    w.crashesInARow++;
    if (w.crashesInARow >= this.policy.maxCrashesInARow) {
      this.opts.log.error({ worker: w.plan.index, code, signal, crashesInARow: w.crashesInARow }, "worker keeps crashing: stopping all workers");
      this.exitCode = 1;
      this.stop("SIGTERM");
      return;
    }
    const delayMs = Math.min(this.policy.maxDelayMs, this.policy.initialDelayMs * 2 ** (w.crashesInARow - 1));
    w.restarts++;
    this.opts.log.warn(
      { worker: w.plan.index, code, signal, restartInMs: delayMs, crashesInARow: w.crashesInARow, restarts: w.restarts },
      "worker exited unexpectedly: restarting",
    );
    w.restartTimer = setTimeout(() => {
      w.restartTimer = undefined;
      if (!this.stopping) this.spawn(w);
    }, delayMs);
  }

  private finishIfAllExited(): void {
    if (this.stopping && this.workers.every((w) => w.child === undefined)) this.resolveExited({ code: this.exitCode });
  }
}
