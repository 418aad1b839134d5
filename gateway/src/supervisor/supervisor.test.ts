import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../ops/log.ts";
import { waitUntil } from "../../../test/helpers/wait.ts";
import { Supervisor } from "./supervisor.ts";
import type { WorkerPlan } from "./worker-plan.ts";

/** A logger whose JSON lines the test reads. */
function capturedLog() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: createLogger("info", sink), lines };
}

const plan = (index: number): WorkerPlan => ({ index, port: 0, dataDir: "/nonexistent", env: { WORKER_INDEX: String(index) } });
const node = (script: string) => ({ command: process.execPath, args: ["-e", script] });

let running: Supervisor | undefined;
afterEach(async () => {
  running?.stop("SIGKILL");
  await running?.exited;
  running = undefined;
});

describe("Supervisor", () => {
  it("restarts a crashing worker with a doubling delay, capped, and logs each restart", async () => {
    const { log, lines } = capturedLog();
    running = new Supervisor({ ...node("process.exit(1)"), plans: [plan(0)], log, policy: { initialDelayMs: 10, maxDelayMs: 40, maxCrashesInARow: 100 } });
    running.start();
    const restarts = () => lines.filter((l) => l.msg === "worker exited unexpectedly: restarting");
    await waitUntil(() => restarts().length >= 5, { message: "five restarts" });
    expect(restarts().slice(0, 5).map((l) => [l.code, l.restartInMs])).toEqual([
      [1, 10],
      [1, 20],
      [1, 40],
      [1, 40],
      [1, 40],
    ]);
  });

  it("gives each worker its plan's environment", async () => {
    const { log, lines } = capturedLog();
    // Each worker exits with its index + 10, read from the environment its plan set.
    running = new Supervisor({ ...node("process.exit(10 + Number(process.env.WORKER_INDEX))"), plans: [plan(0), plan(1)], log, policy: { initialDelayMs: 60_000 } });
    running.start();
    await waitUntil(() => lines.filter((l) => l.msg === "worker exited unexpectedly: restarting").length === 2, { message: "both exits" });
    const codes = lines.filter((l) => l.msg === "worker exited unexpectedly: restarting").map((l) => [l.worker, l.code]);
    expect(codes.sort()).toEqual([
      [0, 10],
      [1, 11],
    ]);
  });

  it("stops every worker when one refuses its configuration (exit 2), and exits 2", async () => {
    const { log, lines } = capturedLog();
    const script = "if (process.env.WORKER_INDEX === '1') process.exit(2); setInterval(() => {}, 1000)";
    running = new Supervisor({ ...node(script), plans: [plan(0), plan(1)], log });
    running.start();
    expect(await running.exited).toEqual({ code: 2 });
    expect(lines.find((l) => l.msg === "worker refused its configuration: stopping all workers")).toMatchObject({ worker: 1 });
    expect(lines.find((l) => l.msg === "worker stopped")).toMatchObject({ worker: 0, signal: "SIGTERM" });
  });

  it("SIGKILLs a worker that ignores SIGTERM past stopTimeoutMs, and exits 1", async () => {
    const { log, lines } = capturedLog();
    const dir = mkdtempSync(join(tmpdir(), "supervisor-"));
    const ready = join(dir, "ready");
    try {
      // The file says the SIGTERM handler is installed (before that, SIGTERM would simply end the worker).
      const script = `process.on('SIGTERM', () => {}); require('fs').writeFileSync(${JSON.stringify(ready)}, ''); setInterval(() => {}, 1000)`;
      running = new Supervisor({ ...node(script), plans: [plan(0)], log, policy: { stopTimeoutMs: 200 } });
      running.start();
      await waitUntil(() => existsSync(ready), { message: "the worker's SIGTERM handler" });
      running.stop("SIGTERM");
      expect(await running.exited).toEqual({ code: 1 });
      expect(lines.find((l) => l.msg === "worker did not stop in time: SIGKILL")).toMatchObject({ worker: 0 });
      expect(lines.find((l) => l.msg === "worker stopped")).toMatchObject({ signal: "SIGKILL" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("gives up after maxCrashesInARow quick crashes: stops the others and exits 1", async () => {
    const { log, lines } = capturedLog();
    const script = "if (process.env.WORKER_INDEX === '1') process.exit(1); setInterval(() => {}, 1000)";
    running = new Supervisor({ ...node(script), plans: [plan(0), plan(1)], log, policy: { initialDelayMs: 5, maxCrashesInARow: 3 } });
    running.start();
    expect(await running.exited).toEqual({ code: 1 });
    expect(lines.filter((l) => l.msg === "worker exited unexpectedly: restarting" && l.worker === 1)).toHaveLength(2);
    expect(lines.find((l) => l.msg === "worker keeps crashing: stopping all workers")).toMatchObject({ worker: 1, crashesInARow: 3 });
    expect(lines.find((l) => l.msg === "worker stopped")).toMatchObject({ worker: 0, signal: "SIGTERM" });
  });

  it("counts a worker that cannot be spawned as a crash, so stop() and giving up still finish", async () => {
    const { log, lines } = capturedLog();
    running = new Supervisor({ command: "/nonexistent/node", args: [], plans: [plan(0)], log, policy: { initialDelayMs: 5, maxCrashesInARow: 2 } });
    running.start();
    expect(await running.exited).toEqual({ code: 1 });
    expect(lines.filter((l) => l.msg === "worker could not be started")).toHaveLength(2);
  });

  it("kill() SIGKILLs at once a worker that ignores SIGTERM (a second Ctrl-C), and exits 1", async () => {
    const { log, lines } = capturedLog();
    const dir = mkdtempSync(join(tmpdir(), "supervisor-"));
    const ready = join(dir, "ready");
    try {
      const script = `process.on('SIGTERM', () => {}); require('fs').writeFileSync(${JSON.stringify(ready)}, ''); setInterval(() => {}, 1000)`;
      running = new Supervisor({ ...node(script), plans: [plan(0)], log, policy: { stopTimeoutMs: 60_000 } });
      running.start();
      await waitUntil(() => existsSync(ready), { message: "the worker's SIGTERM handler" });
      running.stop("SIGTERM");
      running.kill();
      expect(await running.exited).toEqual({ code: 1 });
      expect(lines.find((l) => l.msg === "worker stopped")).toMatchObject({ signal: "SIGKILL" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
