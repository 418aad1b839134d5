import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type Fleet, type FleetOptions, sha256Hex, startFleet } from "../src/index.ts";
import { NO_BROKER, useFixtureFleets } from "./fixture-fleets.ts";
import { waitFor } from "./wait.ts";

const fx = useFixtureFleets("sim-flash-");

async function fleetOf(options: Partial<FleetOptions> & { flashDir: string }): Promise<Fleet> {
  const fleet = await startFleet({ devices: 1, brokerUrl: NO_BROKER, bytecodePath: fx.bytecodePath, useEnvFiles: false, ...options });
  fx.fleets.push(fleet);
  return fleet;
}

/** Console lines per device index, as the firmware printed them. */
function collectLogs(fleet: Fleet): string[][] {
  const logs: string[][] = fleet.devices.map(() => []);
  fleet.on("log", ({ device, line }) => logs[device.index]!.push(line));
  return logs;
}

const bootLine = (lines: string[], boot: number) => lines.find((l) => l.startsWith(`fixture boot=${boot} `));

describe("simulated device", () => {
  it("runs exactly the bytecode it was given (SHA-256 of file = deployed = what the VM runs)", async () => {
    const fileSha = sha256Hex(readFileSync(fx.bytecodePath));
    const fleet = await fleetOf({ devices: 2, flashDir: join(fx.flashRoot, "sha"), eraseFlash: true });
    expect(fleet.firmware.sha256).toBe(fileSha);
    for (const device of fleet.devices) {
      expect(device.deployedSha256).toBe(fileSha);
      await waitFor("the VM to report its program hash", () => device.runningSha256);
      expect(device.runningSha256).toBe(fileSha);
    }
    expect(new Set(fleet.devices.map((d) => d.id)).size).toBe(2);
    expect(fleet.devices[0]!.id).toMatch(/^[0-9a-f]{16}$/);
  });

  it("deep sleep: stops the VM, boots a new one from the same flash after ms/timeScale", async () => {
    const fleet = await fleetOf({
      flashDir: join(fx.flashRoot, "sleep"),
      eraseFlash: true,
      settings: { FX_SLEEP_MS: 2000 },
      timeScale: 4,
    });
    const logs = collectLogs(fleet);
    const standbys: { ms: number }[] = [];
    const wakes: number[] = [];
    fleet.on("standby", (e) => standbys.push(e));
    fleet.on("wake", (e) => wakes.push(e.sleptMs));
    await waitFor("a second boot that remembers the first", () => bootLine(logs[0]!, 2));
    expect(bootLine(logs[0]!, 1)).toBeDefined();
    expect(standbys[0]!.ms).toBe(2000); // the FX_SLEEP_MS setting reached the firmware
    expect(wakes[0]).toBeGreaterThanOrEqual(2000 / 4 - 5);
    expect(wakes[0]).toBeLessThan(2000); // scaled, not real time
    expect(fleet.devices[0]!.boots).toBeGreaterThanOrEqual(2);
  });

  it("a power cut keeps what the VM saved; the flash image also outlives the process", async () => {
    const flashDir = join(fx.flashRoot, "power");
    let fleet = await fleetOf({ flashDir, eraseFlash: true, settings: { FX_SLEEP_MS: 60_000, FX_AWAKE_MS: 60_000 } });
    let logs = collectLogs(fleet);
    await waitFor("boot 1", () => bootLine(logs[0]!, 1));
    const device = fleet.devices[0]!;
    expect(device.state).toBe("awake"); // FX_AWAKE_MS keeps it up: the cut hits a running VM
    device.powerCut();
    expect(device.state).toBe("power-off");
    await waitFor("boot 2 after the power cut", () => bootLine(logs[0]!, 2));
    await fleet.stop();
    // A new fleet on the same flash directory: factory settings are not re-applied over the saved counter.
    fleet = await fleetOf({ flashDir, settings: { FX_SLEEP_MS: 60_000, FX_AWAKE_MS: 60_000 } });
    logs = collectLogs(fleet);
    const next = await waitFor("the boot counter to continue in a new fleet", () =>
      logs[0]!.find((l) => /^fixture boot=\d+ /.test(l)),
    );
    expect(next).toMatch(/^fixture boot=3 /);
  });

  it("power cut while awake: the device comes back with cause power-restore", async () => {
    const fleet = await fleetOf({ flashDir: join(fx.flashRoot, "cut"), eraseFlash: true, settings: { FX_SLEEP_MS: 60_000 } });
    const causes: string[] = [];
    fleet.on("boot", (e) => causes.push(e.cause));
    const cuts: number[] = [];
    fleet.on("power-cut", (e) => cuts.push(e.afterMs));
    fleet.devices[0]!.powerCut(); // right after deploy, before the program wrote anything
    await waitFor("power restore", () => causes.includes("power-restore"));
    expect(cuts).toHaveLength(1);
    const logs = collectLogs(fleet);
    await waitFor("the program running again", () => logs[0]!.find((l) => l.startsWith("fixture boot=")));
  });

  it("ds.reboot(): the VM stops by itself and the device boots again from flash", async () => {
    const fleet = await fleetOf({
      flashDir: join(fx.flashRoot, "reboot"),
      eraseFlash: true,
      settings: { FX_REBOOT1: true, FX_SLEEP_MS: 60_000 },
    });
    const logs = collectLogs(fleet);
    const causes: string[] = [];
    fleet.on("boot", (e) => causes.push(e.cause));
    const panics: number[] = [];
    fleet.on("panic", (e) => panics.push(e.code));
    await waitFor("boot 2 after the reboot", () => bootLine(logs[0]!, 2));
    expect(causes).toEqual(["reboot"]);
    expect(panics).toEqual([0]);
  });

  it("a seeded power-cut plan kills VMs at seeded moments, and they come back", async () => {
    const fleet = await fleetOf({
      devices: 2,
      flashDir: join(fx.flashRoot, "plan"),
      eraseFlash: true,
      settings: { FX_SLEEP_MS: 100, FX_AWAKE_MS: 200 },
      faults: { powerCut: 0.5, powerCutWindowMs: 300, powerOffMs: 20 },
      seed: 5,
    });
    const restores: number[] = [];
    fleet.on("boot", ({ device, cause }) => cause === "power-restore" && restores.push(device.index));
    await waitFor("3 power cuts", () => fleet.counters().faults["power-cut"] >= 3);
    await waitFor("power restores", () => restores.length >= 2);
    const cuts = fleet.faultLog.filter((r) => r.kind === "power-cut");
    expect(cuts.every((r) => r.detail! >= 0 && r.detail! < 300)).toBe(true);
    expect(fleet.counters().boots).toBeGreaterThan(2);
  });

  it("reads the simulated sensors: finite, plausible, different per device", async () => {
    const fleet = await fleetOf({ devices: 2, flashDir: join(fx.flashRoot, "sensors"), eraseFlash: true, seed: 3 });
    const logs = collectLogs(fleet);
    const reads: string[] = [];
    fleet.on("sensor-read", ({ device, sensor }) => reads.push(`${device.index}:${sensor}`));
    const lines = await waitFor("both devices to log a reading", () =>
      logs.every((l) => bootLine(l, 1)) ? logs.map((l) => bootLine(l, 1)!) : undefined,
    );
    const values = lines.map((l) => {
      const m = /temperature=([-\d.]+) humidity=([-\d.]+)/.exec(l)!;
      return { t: Number(m[1]), h: Number(m[2]) };
    });
    for (const v of values) {
      expect(v.t).toBeGreaterThan(10);
      expect(v.t).toBeLessThan(30);
      expect(v.h).toBeGreaterThan(20);
      expect(v.h).toBeLessThan(70);
    }
    expect(values[0]).not.toEqual(values[1]);
    expect(reads.sort()).toEqual(["0:humidity", "0:temperature", "1:humidity", "1:temperature"]);
  });
});
