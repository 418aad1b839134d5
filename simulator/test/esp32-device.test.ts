/**
 * Device-level parts of the runtime profile, on the real VM with the fixture firmware (fixture-firmware.ts):
 * settings the runtime cannot read back, boot loops, torn settings writes and the bricked device, the
 * device's true clock and the boot delay. No mocks: the VM's own settings service, mount code and panics.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type Fleet, type FleetEvent, type FleetOptions, startFleet } from "../src/index.ts";
import { DeviceFaults } from "../src/faults.ts";
import { NO_BROKER, useFixtureFleets } from "./fixture-fleets.ts";
import { waitFor } from "./wait.ts";

/** Node fires a timer by its loop clock, which may lag Date.now() by up to 1 ms. */
const TIMER_SLACK_MS = 1;

const fx = useFixtureFleets("sim-esp32-");

let dirs = 0;
async function fleetOf(options: Partial<FleetOptions>): Promise<Fleet> {
  const fleet = await startFleet({
    devices: 1,
    brokerUrl: NO_BROKER,
    bytecodePath: fx.bytecodePath,
    useEnvFiles: false,
    flashDir: join(fx.flashRoot, `f${dirs++}`),
    eraseFlash: true,
    ...options,
  });
  fx.fleets.push(fleet);
  return fleet;
}

function record<K extends Parameters<Fleet["on"]>[0]>(fleet: Fleet, event: K): FleetEvent<K>[] {
  const seen: FleetEvent<K>[] = [];
  fleet.on(event, (e) => seen.push(e));
  return seen;
}

const x = (n: number) => "x".repeat(n);

describe("settings the runtime cannot read back", () => {
  it("host settings over the read limit (name + NUL + value > 232) are refused at start; 232 reads back", async () => {
    // 5 + 1 + 228 = 234 bytes: one Set packet would carry it (236), but reading it back panics the runtime.
    await expect(fleetOf({ settings: { FX_S1: x(226) } })).rejects.toThrow(
      /setting FX_S1 is too long: 234 bytes \(name \+ NUL \+ JSON value\); the esp32 runtime panics reading a setting of more than 232 bytes/,
    );
    await expect(fleetOf({ settings: { FX_S1: x(226) }, profile: "vm" })).rejects.toThrow(RangeError);
    // Exactly 232: stored, and the program reads it back.
    const echoed: string[] = [];
    await fleetOf({ settings: { FX_S1: x(224), FX_SLEEP_MS: 60_000 }, echo: (l) => echoed.push(l) });
    const line = await waitFor("the fixture's settings line", () => echoed.find((l) => l.includes("fixture settings ")));
    expect(line).toContain(`"FX_S1":"${x(224)}"`);
  });

  it("a record the firmware writes over the limit: settings-limit event with key and size, counted once", async () => {
    // Device 0 writes 302 bytes of JSON under "cmd": the write packet cuts it to 236 - 4 = 232 value bytes.
    // Device 1 writes 231 bytes of JSON: 235 bytes with the name, not cut.
    const fleet = await fleetOf({
      devices: 2,
      settings: (i) => ({ FX_BIG: i === 0 ? 300 : 229, FX_SLEEP_MS: 500 }),
      timeScale: 10,
    });
    const events = record(fleet, "settings-limit");
    const lines = record(fleet, "dmesg");
    await waitFor("both devices' settings-limit events", () => events.length >= 2 && events);
    const byDevice = new Map(events.map((e) => [e.device.index, { key: e.key, bytes: e.bytes }]));
    expect(byDevice.get(0)).toEqual({ key: "cmd", bytes: 236 });
    expect(byDevice.get(1)).toEqual({ key: "cmd", bytes: 235 });
    const text = lines.map((l) => l.line);
    expect(text).toContain('settings record "cmd" is 236 bytes: the ESP32 runtime truncates it and panics reading it back');
    expect(text).toContain('settings record "cmd" is 235 bytes: the ESP32 runtime panics reading it back');
    // Rewritten unchanged on the next wakes: still reported once per device.
    await waitFor("a third boot of each device", () => fleet.devices.every((d) => d.boots >= 3));
    expect(events).toHaveLength(2);
    expect(fleet.devices.map((d) => d.settingsOverLimit)).toEqual([1, 1]);
    expect(fleet.counters().settingsOverLimit).toBe(2);
  });

  it("reading such a record back panics the runtime: the device boot-loops (never silently)", async () => {
    const fleet = await fleetOf({ settings: { FX_BIG: 300, FX_READ_BIG: true, FX_SLEEP_MS: 500 } });
    const limits = record(fleet, "settings-limit");
    const loops = record(fleet, "boot-loop");
    const loop = await waitFor("the boot-loop event", () => loops[0]);
    expect(limits.map((e) => e.key)).toEqual(["cmd"]);
    expect(loop).toMatchObject({ boots: 3, lastExitCode: -2 }); // -2: the VM aborted (jd_panic in the settings service)
    expect(fleet.counters().bootLoops).toBe(1);
  });
});

describe("boot loops", () => {
  it("a program that panics at start: boot-loop after 3 boots, and the device keeps rebooting", async () => {
    const fleet = await fleetOf({ settings: { FX_PANIC: 42 } });
    const loops = record(fleet, "boot-loop");
    const lines = record(fleet, "dmesg");
    const loop = await waitFor("the boot-loop event", () => loops[0]);
    const device = fleet.devices[0]!;
    expect(loop).toMatchObject({ boots: 3, lastExitCode: 42 });
    expect(lines.map((l) => l.line)).toContain(
      `device ${device.id} is in a boot loop: 3 boots without a completed wake (last: VM stopped, exit code 42)`,
    );
    expect(device.bootLoops).toBe(1);
    await waitFor("a fourth boot", () => device.boots >= 4 && device.bootsWithoutWake >= 4);
    expect(loops).toHaveLength(1); // once per streak
    expect(fleet.counters().bootLoops).toBe(1);
  });

  it("boots that end in standby, or in a power cut, are no boot loop", async () => {
    const fleet = await fleetOf({ settings: { FX_SLEEP_MS: 200 }, timeScale: 10 });
    const loops = record(fleet, "boot-loop");
    const device = fleet.devices[0]!;
    await waitFor("awake", () => device.state === "awake");
    device.powerCut();
    await waitFor("three completed wakes", () => device.boots >= 4 && device.state === "sleeping");
    expect(device.bootsWithoutWake).toBe(0);
    expect(loops).toHaveLength(0);
  });
});

describe("torn settings writes", () => {
  /** The fixture's first write after deploy is fx_boots = 1: 1 value byte + a 24-byte entry. */
  const N = 25;
  /** A fault seed whose first torn-write decision fires with `k` accepted, and whose second one `second`. */
  function faultSeed(p: number, accept: (k: number) => boolean, second: boolean): { seed: number; k: number } {
    for (let seed = 1; seed < 100_000; seed++) {
      const faults = new DeviceFaults({ tornWrite: p }, seed, 0, () => {});
      const first = faults.decide("torn-write");
      if (!first) continue;
      const k = Math.floor(faults.detailUnit(first) * (N + 1));
      if (accept(k) && Boolean(faults.decide("torn-write")) === second) return { seed, k };
    }
    throw new Error("no such seed");
  }

  it("a cut inside the value or the entry's key: the runtime reformats its store at mount → bricked", async () => {
    const { seed, k } = faultSeed(1, (k) => k > 0 && k <= 20, true);
    const fleet = await fleetOf({ settings: { FX_SLEEP_MS: 500 }, faults: { tornWrite: 1, seed, powerOffMs: 50 } });
    const torn = record(fleet, "torn-write");
    const bricked = record(fleet, "bricked");
    const lines = record(fleet, "dmesg");
    const brick = await waitFor("the bricked event", () => bricked[0]);
    const device = fleet.devices[0]!;
    expect(torn.map((t) => ({ key: t.key, cutAtByte: t.cutAtByte, bytes: t.bytes }))).toEqual([{ key: "fx_boots", cutAtByte: k, bytes: N }]);
    expect(brick.mountLine).toMatch(/^fstor: mount failure/);
    expect(lines.map((l) => l.line)).toContain(
      `device ${device.id} is bricked: a power cut between a settings value and its entry made the runtime reformat ` +
        `its settings store (program, settings and Wi-Fi credentials are lost); re-flash it`,
    );
    expect(device.state).toBe("bricked");
    expect(device.bricked).toBe(1);
    expect(device.boots).toBe(2); // the boot that found the torn store, then nothing
    expect(fleet.counters().bricked).toBe(1);
    expect(fleet.counters().faults["torn-write"]).toBe(1);
    expect(fleet.faultLog).toEqual([{ deviceIndex: 0, kind: "torn-write", opportunity: 0, detail: k }]);
  });

  it("a cut before the first byte (k = 0): the write is lost, the store mounts, the device wakes again", async () => {
    const { seed } = faultSeed(0.5, (k) => k === 0, false);
    const fleet = await fleetOf({ settings: { FX_SLEEP_MS: 200 }, timeScale: 10, faults: { tornWrite: 0.5, seed, powerOffMs: 50 } });
    const torn = record(fleet, "torn-write");
    const logs = record(fleet, "log");
    const standbys = record(fleet, "standby");
    await waitFor("a completed wake after the cut", () => torn.length === 1 && standbys.length >= 1);
    expect(torn[0]).toMatchObject({ key: "fx_boots", cutAtByte: 0, bytes: N });
    // The first boot's counter never reached flash: the boot after the cut counts 1 again.
    expect(logs.find((l) => l.line.startsWith("fixture boot="))?.line).toMatch(/^fixture boot=1 /);
    expect(fleet.devices[0]!.bricked).toBe(0);
    expect(fleet.counters().bricked).toBe(0);
    expect(fleet.devices[0]!.state).not.toBe("bricked");
  });
});

describe("true clock and boot delay", () => {
  it("trueClock advances by the full requested sleep; every event carries it; esp32 boots 300 ms after the sleep", async () => {
    const fleet = await fleetOf({ settings: { FX_SLEEP_MS: 60_000 }, timeScale: 200 });
    expect(fleet.profile.name).toBe("esp32");
    const standbys = record(fleet, "standby");
    const boots = record(fleet, "boot");
    const wakes = record(fleet, "wake");
    await waitFor("a wake", () => wakes[0]);
    const slept = standbys[0]!;
    const woke = boots.find((b) => b.cause === "wake")!;
    const realMs = wakes[0]!.sleptMs; // real ms of the sleep itself (60 000 / 200)
    expect(realMs).toBeLessThan(2000);
    // 60 s of sleep on the device's timeline, then the (real) boot delay and VM start. The boot delay is a
    // setTimeout measured with Date.now(): Node's timers run on a loop clock that may lag it by up to 1 ms.
    expect(woke.clock - slept.clock).toBeGreaterThanOrEqual(60_000 + fleet.profile.bootDelayMs - TIMER_SLACK_MS);
    expect(woke.clock - slept.clock).toBeLessThan(60_000 + fleet.profile.bootDelayMs + 2000);
    expect(fleet.devices[0]!.trueClock()).toBeGreaterThanOrEqual(woke.clock);
    expect(typeof wakes[0]!.clock).toBe("number");
  });

  it("vm profile: no boot delay", async () => {
    const fleet = await fleetOf({ settings: { FX_SLEEP_MS: 60_000 }, timeScale: 200, profile: "vm" });
    expect(fleet.profile.bootDelayMs).toBe(0);
    const standbys = record(fleet, "standby");
    const boots = record(fleet, "boot");
    await waitFor("a wake boot", () => boots.find((b) => b.cause === "wake"));
    const woke = boots.find((b) => b.cause === "wake")!;
    expect(woke.clock - standbys[0]!.clock).toBeGreaterThanOrEqual(60_000);
    expect(woke.clock - standbys[0]!.clock).toBeLessThan(60_000 + 300);
  });
});
