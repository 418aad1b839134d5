/**
 * The simulated battery end to end: the real firmware (devs/) reads the simulator's potentiometer server
 * through its "battery" role and publishes volts in its telemetry, to the broker we ship.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type Fleet, startSimBroker, startFleet } from "../src/index.ts";
import { waitFor } from "./wait.ts";

const flashRoot = mkdtempSync(join(tmpdir(), "sim-battery-"));
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => rmSync(flashRoot, { recursive: true, force: true }));

describe("simulated battery", () => {
  it("telemetry `battery` is the volts the fleet sets (±0.01), per device (BATTERY_DIV 2 and 3)", async () => {
    const broker = await startSimBroker(0);
    cleanups.push(() => broker.close());
    const telemetry = new Map<string, { battery: number | null; seq: number }[]>();
    broker.broker.on("publish", (packet, client) => {
      if (!client || !packet.topic.endsWith("/telemetry")) return;
      const id = packet.topic.split("/")[1]!;
      if (!telemetry.has(id)) telemetry.set(id, []);
      telemetry.get(id)!.push(JSON.parse(packet.payload.toString()) as { battery: number | null; seq: number });
    });
    const volts = [3.85, 4.12];
    const fleet: Fleet = await startFleet({
      devices: 2,
      brokerUrl: broker.url,
      flashDir: join(flashRoot, "volts"),
      eraseFlash: true,
      settings: (i) => ({ INTERVAL_S: 5, DEVICE_ID: `batt-${i}`, ...(i === 1 ? { BATTERY_DIV: 3 } : {}) }),
      timeScale: 20,
      battery: (i) => volts[i]!,
    });
    cleanups.push(() => fleet.stop());
    const publishes: { device: number; battery: unknown }[] = [];
    fleet.on("publish", ({ device, topic, payload }) => {
      if (topic.endsWith("/telemetry")) publishes.push({ device: device.index, battery: JSON.parse(payload.toString()).battery });
    });
    const got = await waitFor(
      "telemetry with a battery value from both devices",
      () => {
        const all = fleet.devices.map((d) => telemetry.get(d.id)?.find((t) => typeof t.battery === "number"));
        return all.every((t) => t !== undefined) && all;
      },
      60_000,
    );
    got.forEach((t, i) => expect(Math.abs(t!.battery! - volts[i]!), `device ${i}: ${t!.battery}`).toBeLessThanOrEqual(0.01));
    // The device's own publish event carries the same payload.
    await waitFor("the publish events", () => publishes.length >= 2);
    for (const p of publishes) expect(Math.abs((p.battery as number) - volts[p.device]!)).toBeLessThanOrEqual(0.01);
  });

  it("without `battery` there is no battery server: telemetry battery stays null", async () => {
    const broker = await startSimBroker(0);
    cleanups.push(() => broker.close());
    const batteries: unknown[] = [];
    broker.broker.on("publish", (packet, client) => {
      if (client && packet.topic.endsWith("/telemetry")) batteries.push(JSON.parse(packet.payload.toString()).battery);
    });
    const fleet = await startFleet({
      devices: 1,
      brokerUrl: broker.url,
      flashDir: join(flashRoot, "none"),
      eraseFlash: true,
      settings: { INTERVAL_S: 5 },
      timeScale: 20,
    });
    cleanups.push(() => fleet.stop());
    await waitFor("a telemetry message", () => batteries.length >= 1, 60_000);
    expect(batteries[0]).toBeNull();
  });
});
