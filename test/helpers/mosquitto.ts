import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { binaryAvailable } from "./binaries.ts";
import { acceptsTcp, freePort } from "./ports.ts";

/**
 * Debian's Mosquitto for tests: a private config, port and persistence dir per instance, started and
 * stopped by pid, restartable on the same port and persistence (tests restart brokers).
 *
 * @example
 * const hasMosquitto = mosquittoAvailable();   // skips visibly, or throws when CI=true
 * describe.skipIf(!hasMosquitto)("against mosquitto", () => {
 *   let mosq: RunningMosquitto;
 *   beforeAll(async () => { mosq = await startMosquitto(); });
 *   afterAll(() => mosq.close());
 *   it("...", async () => { mqtt.connect(mosq.url); await mosq.restart(); });
 * });
 */

export const MOSQUITTO_BIN = "/usr/sbin/mosquitto";

/**
 * True when the binary exists. When it does not: throws if CI=true (CI must run every suite), else prints a
 * visible skip message and returns false.
 */
export function mosquittoAvailable(bin = MOSQUITTO_BIN): boolean {
  return binaryAvailable(bin, "mosquitto");
}

export interface MosquittoPaths {
  /** Private temp dir of this instance (config, extra files, log). */
  dir: string;
  /** Persistence dir, kept across restart(). */
  persistenceDir: string;
  port: number;
}

export interface StartMosquittoOptions {
  /** Port to listen on (127.0.0.1); default a free one. */
  port?: number;
  /**
   * Full config text. Default: {@link defaultMosquittoConfig} (anonymous allowed, persistence on).
   * Files named in it (password file, ACL) can be written with `files`.
   */
  config?: (paths: MosquittoPaths) => string;
  /** Files to write into `dir` before the first start, by name. */
  files?: Record<string, string>;
  /** Milliseconds to wait until the port accepts TCP. Default 10 s. */
  startTimeoutMs?: number;
}

export interface RunningMosquitto extends MosquittoPaths {
  /** mqtt://127.0.0.1:port */
  url: string;
  host: string;
  pid(): number | undefined;
  /** Graceful stop (SIGTERM: Mosquitto writes its persistence file), then waits for exit. */
  stop(): Promise<void>;
  /** kill -9: no persistence write on the way out. */
  kill(): Promise<void>;
  /** stop() if running, then start again with the same config, port and persistence. */
  restart(): Promise<void>;
  /** Stops and deletes the temp dir. Safe to call twice. */
  close(): Promise<void>;
  /** Broker log so far (stdout+stderr), for assertion messages. */
  log(): string;
}

/** Anonymous, persistence on, one loopback listener: the baseline for protocol tests. */
export function defaultMosquittoConfig(paths: MosquittoPaths): string {
  return [
    `listener ${paths.port} 127.0.0.1`,
    "allow_anonymous true",
    "persistence true",
    `persistence_location ${paths.persistenceDir}/`,
    "max_queued_messages 10000",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "log_type notice",
    "log_type information",
    runAsConfigLine(),
    "",
  ].join("\n");
}

/**
 * Mosquitto started as root drops to the `mosquitto` user, which cannot write our temp dir:
 * tell it to stay the user we are.
 */
export function runAsConfigLine(): string {
  return process.getuid?.() === 0 ? "user root" : "";
}

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

export async function startMosquitto(opts: StartMosquittoOptions = {}): Promise<RunningMosquitto> {
  const dir = mkdtempSync(join(tmpdir(), "mosquitto-test-"));
  const persistenceDir = join(dir, "persistence");
  mkdirSync(persistenceDir);
  const port = opts.port ?? (await freePort());
  const paths: MosquittoPaths = { dir, persistenceDir, port };
  for (const [name, content] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), content);
  const configFile = join(dir, "mosquitto.conf");
  writeFileSync(configFile, (opts.config ?? defaultMosquittoConfig)(paths));

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = "";
  let closed = false;

  async function start(): Promise<void> {
    const proc = spawn(MOSQUITTO_BIN, ["-c", configFile], { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    running.add(proc);
    const append = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-100_000); // bounded: a chatty broker must not eat memory
    };
    proc.stdout!.on("data", append);
    proc.stderr!.on("data", append);
    exited = new Promise<void>((resolve) =>
      proc.once("exit", () => {
        running.delete(proc);
        if (child === proc) child = undefined;
        resolve();
      }),
    );
    const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000);
    while (!(await acceptsTcp(port))) {
      if (child !== proc) throw new Error(`mosquitto exited during start:\n${output}`);
      if (Date.now() > deadline) {
        await signal("SIGKILL");
        throw new Error(`mosquitto did not accept TCP on ${port} in time:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  async function signal(sig: NodeJS.Signals): Promise<void> {
    if (child === undefined) return;
    const proc = child;
    proc.kill(sig);
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }

  await start();
  return {
    ...paths,
    host: "127.0.0.1",
    url: `mqtt://127.0.0.1:${port}`,
    pid: () => child?.pid,
    stop: () => signal("SIGTERM"),
    kill: () => signal("SIGKILL"),
    async restart() {
      await signal("SIGTERM");
      await start();
    },
    async close() {
      if (closed) return;
      closed = true;
      await signal("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => output,
  };
}
