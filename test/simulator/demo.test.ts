/**
 * `npm start` as a user runs it: the demo spawns the gateway (embedded broker), starts 3 simulated devices,
 * readings reach the gateway's API, and SIGINT ends everything with exit code 0.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, expect, it } from "vitest";
import { waitFor } from "../../simulator/test/wait.ts";
import { freePort } from "../helpers/ports.ts";

const REPO_ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
let demo: ChildProcess | undefined;
const dirs: string[] = [];

afterEach(async () => {
  if (demo && demo.exitCode === null && demo.signalCode === null) {
    demo.kill("SIGKILL");
    await once(demo, "exit");
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface DevicesResponse {
  devices: { deviceId: string; lastReading?: { seq: number; readings: Record<string, number> } | null }[];
}

it("npm start: gateway + 3 simulated devices, readings visible in the API, clean SIGINT", async () => {
  const [port, mqttPort] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), "demo-data-"));
  const flashDir = mkdtempSync(join(tmpdir(), "demo-flash-"));
  dirs.push(dataDir, flashDir);
  // tsx directly (not npm) so the signal reaches the demo process itself
  demo = spawn(join(REPO_ROOT, "node_modules/.bin/tsx"), [join(REPO_ROOT, "simulator/src/demo.ts")], {
    cwd: REPO_ROOT,
    env: { ...process.env, PORT: String(port), MQTT_PORT: String(mqttPort), DATA_DIR: dataDir, SIM_FLASH_DIR: flashDir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  demo.stdout!.on("data", (b: Buffer) => (output += b.toString()));
  demo.stderr!.on("data", (b: Buffer) => (output += b.toString()));

  await waitFor("the dashboard URL", () => output.includes(`dashboard at http://127.0.0.1:${port}/`), 60_000);
  const devices = await waitFor(
    "readings from 3 devices in GET /api/devices",
    async () => {
      const body = (await fetch(`http://127.0.0.1:${port}/api/devices`).then((r) => r.json())) as DevicesResponse;
      return body.devices.filter((d) => d.lastReading).length >= 3 ? body.devices : undefined;
    },
    60_000,
  );
  for (const d of devices) {
    expect(d.lastReading!.seq).toBeGreaterThanOrEqual(1);
    expect(Number.isFinite(d.lastReading!.readings.temperature)).toBe(true);
  }

  const exited = once(demo, "exit");
  demo.kill("SIGINT");
  const [code] = await exited;
  expect(code).toBe(0);
  expect(output).toContain("demo: SIGINT; stopping");
  // the gateway child is gone too: its HTTP port no longer answers
  await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
});
