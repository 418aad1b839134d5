import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { buildFixtureFirmware, removeFixtureFirmware } from "./fixture-firmware.ts";
import { waitFor } from "./wait.ts";

const REPO_ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
afterAll(() => removeFixtureFirmware());

it("npm run sim: starts the devices, prints their console lines, stops cleanly on SIGTERM", async () => {
  const bytecode = await buildFixtureFirmware();
  const flashDir = mkdtempSync(join(tmpdir(), "sim-cli-"));
  const child = spawn(
    join(REPO_ROOT, "node_modules/.bin/tsx"),
    [join(REPO_ROOT, "simulator/src/cli.ts"), "--devices", "2", "--broker", "mqtt://127.0.0.1:1", "--bytecode", bytecode,
      "--flash-dir", flashDir, "--erase-flash", "--set", "FX_SLEEP_MS=500", "--time-scale", "2"],
    { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr.on("data", (b: Buffer) => (out += b.toString()));
  try {
    const ids = await waitFor("the device ids line", () => /sim: device ids ([0-9a-f]{16}) ([0-9a-f]{16})/.exec(out), 30_000);
    await waitFor("a woken device's console line", () => out.includes(`[${ids[1]}] fixture boot=2 `), 30_000);
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const [code] = await exited;
    expect(code).toBe(0);
    expect(out).toContain("sim: stopped;");
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(flashDir, { recursive: true, force: true });
  }
});

it("--help lists seed, interval, time scale, qos, flash dir and faults", async () => {
  const child = spawn(join(REPO_ROOT, "node_modules/.bin/tsx"), [join(REPO_ROOT, "simulator/src/cli.ts"), "--help"], {
    cwd: REPO_ROOT,
  });
  let out = "";
  child.stdout.on("data", (b: Buffer) => (out += b.toString()));
  const [code] = await once(child, "exit");
  expect(code).toBe(0);
  for (const flag of ["--seed", "--interval", "--time-scale", "--qos", "--flash-dir", "--faults", "--devices", "--broker", "--profile", "--battery"]) {
    expect(out).toContain(flag);
  }
});
