/**
 * Settings reach the program on its first boot, every one of them: the simulator deploys only after the VM
 * read them back (regression: writing them on the next turn and deploying at once let a program that reads
 * its settings at once miss the first ones, e.g. MQTT_HOST, on every first boot).
 * Also: console.warn / console.error lines come as `log` events with their level.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ErrSettingsNotApplied, type Fleet, type FleetOptions, startFleet } from "../src/index.ts";
import { NO_BROKER, useFixtureFleets } from "./fixture-fleets.ts";
import { waitFor } from "./wait.ts";

const fx = useFixtureFleets("sim-settings-");

async function fleetOf(options: Partial<FleetOptions> & { flashDir: string }): Promise<Fleet> {
  const fleet = await startFleet({ devices: 1, brokerUrl: NO_BROKER, bytecodePath: fx.bytecodePath, useEnvFiles: false, ...options });
  fx.fleets.push(fleet);
  return fleet;
}

/**
 * What each device's fixture read as its very first action. From the echo option, which sees lines from the
 * first boot on (a listener added after startFleet resolves may be too late for the first devices).
 */
function settingsSeen(fleet: Fleet, echoed: string[]): (Record<string, unknown> | undefined)[] {
  return fleet.devices.map((d) => {
    const line = echoed.find((l) => l.startsWith(`[${d.id}] fixture settings `));
    return line === undefined ? undefined : (JSON.parse(line.slice(`[${d.id}] fixture settings `.length)) as Record<string, unknown>);
  });
}

describe("settings on a first boot", () => {
  it("a program that reads its settings at once sees every one of them (4 devices at once, 3 rounds)", async () => {
    // FX_S1 is the first key written: the one the old write-then-deploy lost on every first boot.
    const settingsOf = (round: number, i: number) => ({
      FX_S1: `host-${round}-${i}`,
      FX_S2: 1883 + i,
      FX_S3: round % 2,
      FX_S4: { nested: [round, i] },
      FX_S5: `dev-${round}-${i}`,
      FX_S6: i % 2 === 0,
      FX_SLEEP_MS: 600_000, // first boot only
    });
    for (const round of [0, 1, 2]) {
      const echoed: string[] = [];
      const fleet = await fleetOf({
        devices: 4,
        flashDir: join(fx.flashRoot, `round-${round}`),
        eraseFlash: true,
        settings: (i) => settingsOf(round, i),
        echo: (line) => echoed.push(line),
      });
      const seen = await waitFor(`round ${round}: every device read its settings`, () => {
        const s = settingsSeen(fleet, echoed);
        return s.every((x) => x !== undefined) && s;
      });
      seen.forEach((s, i) => {
        const { FX_SLEEP_MS: _sleep, ...expected } = settingsOf(round, i);
        expect(s, `round ${round} device ${i}`).toEqual(expected);
      });
      await fleet.stop();
    }
  });

  it("settings the VM cannot store fail the start within the bound, naming them (no program deployed)", async () => {
    // The VM's settings store holds about 8 KB: 50 settings of 200 bytes do not fit.
    const settings = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`FX_L${i}`, "x".repeat(200)]));
    const started = Date.now();
    const error = await fleetOf({ flashDir: join(fx.flashRoot, "full"), eraseFlash: true, settings }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ErrSettingsNotApplied);
    const keys = (error as ErrSettingsNotApplied).keys;
    expect(keys.length).toBeGreaterThan(0);
    expect(keys).toContain("FX_L49");
    expect((error as Error).message).toMatch(/did not confirm \d+ of 50 settings within 5000 ms; program not deployed/);
    expect((error as Error).message).toContain("FX_L49");
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("a setting too long for one Jacdac packet is refused before any device starts", async () => {
    await expect(
      fleetOf({ flashDir: join(fx.flashRoot, "long"), eraseFlash: true, settings: { FX_S1: "x".repeat(300) } }),
    ).rejects.toThrow(/setting FX_S1 is too long/);
  });
});

describe("console levels", () => {
  it("console.warn / console.error come as log events with their level, and still as dmesg lines", async () => {
    const echoed: string[] = [];
    const fleet = await fleetOf({
      flashDir: join(fx.flashRoot, "levels"),
      eraseFlash: true,
      settings: { FX_SLEEP_MS: 1000 },
      timeScale: 10,
      echo: (line) => echoed.push(line),
    });
    // Listeners added now see the second boot (the first one may have printed already).
    const logs: { line: string; level: string }[] = [];
    const dmesg: string[] = [];
    fleet.on("log", ({ line, level }) => logs.push({ line, level }));
    fleet.on("dmesg", ({ line }) => dmesg.push(line));
    await waitFor("the error line of boot 2", () => logs.find((l) => l.line === "fixture error boot=2"));
    const boot2 = logs.filter((l) => l.line.includes("boot=2"));
    expect(boot2.map((l) => l.level)).toEqual(["log", "warn", "error"]);
    expect(boot2[0]!.line).toMatch(/^fixture boot=2 temperature=/);
    expect(boot2.slice(1).map((l) => l.line)).toEqual(["fixture warn boot=2", "fixture error boot=2"]);
    expect(dmesg).toContain("* fixture warn boot=2");
    expect(dmesg).toContain("! fixture error boot=2");
    expect(dmesg.some((l) => l.includes("fixture boot=2"))).toBe(false); // console.log: log event only
    const id = fleet.devices[0]!.id;
    for (const boot of [1, 2]) {
      expect(echoed).toContain(`[${id}] * fixture warn boot=${boot}`);
      expect(echoed).toContain(`[${id}] ! fixture error boot=${boot}`);
      expect(echoed.some((l) => l.startsWith(`[${id}] fixture boot=${boot} `))).toBe(true);
    }
  });
});
