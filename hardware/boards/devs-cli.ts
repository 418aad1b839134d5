/**
 * Runs the pinned DeviceScript CLI (node_modules/@devicescript/cli, exactly 2.16.4) in a folder and
 * captures its output. The CLI sometimes prints errors yet exits 0 (e.g. a bad devs/boards/*.board.json),
 * so callers get the text to check as well as the exit code.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./catalog.ts";

export const DEVS_CLI = join(REPO_ROOT, "node_modules", "@devicescript", "cli", "devicescript");

export interface DevsRun {
  code: number;
  /** stdout and stderr interleaved, colour codes removed. */
  output: string;
}

export class ErrDevsCliMissing extends Error {
  override name = "ErrDevsCliMissing";
  constructor() {
    super(`DeviceScript CLI not found at ${DEVS_CLI}: run "npm ci" in ${REPO_ROOT}`);
  }
}

/**
 * @example
 * const { code, output } = await runDevs(["build", "src/main.ts"], stageDir, { echo: true })
 */
export function runDevs(args: string[], cwd: string, opts: { echo?: boolean; stdio?: "inherit" } = {}): Promise<DevsRun> {
  if (!existsSync(DEVS_CLI)) return Promise.reject(new ErrDevsCliMissing());
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [DEVS_CLI, "--no-colors", ...args], {
      cwd,
      // CI=true keeps the CLI from asking questions (e.g. "install serialport?").
      env: { ...process.env, CI: process.env.CI ?? "true", FORCE_COLOR: "0" },
      stdio: opts.stdio === "inherit" ? ["inherit", "inherit", "inherit"] : ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const collect = (chunk: Buffer) => {
      const text = chunk.toString("utf8").replace(/\x1b\[[0-9;]*m/g, "");
      output += text;
      if (opts.echo) process.stdout.write(text);
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    child.on("error", reject);
    child.on("close", (code, signal) => resolvePromise({ code: code ?? (signal ? 128 : 1), output }));
  });
}

/**
 * Runs a long-lived CLI command (e.g. `devs devtools --serial`) until a line matches `until`, then
 * stops it. Resolves with the match, or undefined when the deadline passes or the command exits first.
 */
export function runDevsUntil(args: string[], cwd: string, until: RegExp, timeoutMs: number): Promise<{ match: RegExpMatchArray | undefined; output: string }> {
  if (!existsSync(DEVS_CLI)) return Promise.reject(new ErrDevsCliMissing());
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [DEVS_CLI, "--no-colors", ...args], {
      cwd,
      env: { ...process.env, CI: process.env.CI ?? "true", FORCE_COLOR: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    let settled = false;
    const finish = (match: RegExpMatchArray | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.exitCode === null) child.kill("SIGTERM");
      resolvePromise({ match, output });
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    const collect = (chunk: Buffer) => {
      const text = chunk.toString("utf8").replace(/\x1b\[[0-9;]*m/g, "");
      output += text;
      process.stdout.write(text);
      const match = output.match(until);
      if (match) finish(match);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", (err) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(err);
      }
    });
    child.on("close", () => finish(undefined));
  });
}
