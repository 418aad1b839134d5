import { randomBytes } from "node:crypto";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acceptsTcp, freePort } from "./ports.ts";

/**
 * Debian's redis-server for tests: its own port and data dir per instance, append-only with an fsync per write
 * (what hardware/pi/redis/redis.conf ships), started and stopped by pid, restartable on the same port with the
 * same data (a Redis restart) or with an empty one (Redis lost its data). It requires a password (as the gateway
 * does): `url` carries it.
 *
 * @example
 * const hasRedis = redisAvailable();   // skips visibly, or throws when CI=true
 * describe.skipIf(!hasRedis)("against redis", () => {
 *   let redis: RunningRedis;
 *   beforeAll(async () => { redis = await startRedis(); });
 *   afterAll(() => redis.close());
 *   it("...", async () => { new Redis(redis.url); await redis.kill(); await redis.start(); });
 * });
 */

export const REDIS_BIN = "/usr/bin/redis-server";

/** True when the binary exists; else throws if CI=true, or prints a visible skip message and returns false. */
export function redisAvailable(bin = REDIS_BIN): boolean {
  if (existsSync(bin)) return true;
  const message = `redis-server not found at ${bin} (apt-get install redis-server)`;
  if (process.env.CI === "true") throw new Error(`${message}: required when CI=true`);
  console.warn(`SKIP: ${message}; Redis tests are skipped`);
  return false;
}

export interface RunningRedis {
  /** redis://:password@127.0.0.1:port */
  url: string;
  password: string;
  /** SIGSTOP: the process stops answering but its TCP connections stay open (a half-open peer). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  port: number;
  /** Where the append-only file lives (kept by start() after kill()). */
  dataDir: string;
  /** kill -9: only what the AOF already has survives. */
  kill(): Promise<void>;
  /** Starts again (after kill()) on the same port, with the same data dir, or a new empty one when `wiped`. */
  start(opts?: { wiped?: boolean }): Promise<void>;
  /** Stops and deletes the temp dir. Safe to call twice. */
  close(): Promise<void>;
  log(): string;
}

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

export async function startRedis(): Promise<RunningRedis> {
  const dir = mkdtempSync(join(tmpdir(), "redis-test-"));
  const port = await freePort();
  let generation = 0;
  let dataDir = join(dir, `data-${generation}`);
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = "";
  let closed = false;
  const password = randomBytes(12).toString("hex");

  async function start(opts: { wiped?: boolean } = {}): Promise<void> {
    if (child) throw new Error("redis-server is running");
    if (opts.wiped) dataDir = join(dir, `data-${++generation}`);
    mkdirSync(dataDir, { recursive: true });
    // `--save ""`: no RDB snapshots, so only the AOF (fsync per write) decides what survives a kill.
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dataDir, "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--requirepass", password];
    const proc = spawn(REDIS_BIN, args, { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    running.add(proc);
    const append = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-100_000);
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
    const deadline = Date.now() + 10_000;
    while (!(await acceptsTcp(port))) {
      if (child !== proc) throw new Error(`redis-server exited during start:\n${output}`);
      if (Date.now() > deadline) {
        await kill();
        throw new Error(`redis-server did not accept TCP on ${port} in time:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  async function kill(): Promise<void> {
    if (child === undefined) return;
    child.kill("SIGCONT"); // a paused one too
    child.kill("SIGKILL");
    await exited;
  }

  await start();
  return {
    url: `redis://:${password}@127.0.0.1:${port}`,
    port,
    password,
    pause: () => void child?.kill("SIGSTOP"),
    resume: () => void child?.kill("SIGCONT"),
    get dataDir() {
      return dataDir;
    },
    kill,
    start,
    async close() {
      if (closed) return;
      closed = true;
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => output,
  };
}
