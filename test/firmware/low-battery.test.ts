/**
 * Issue 9.5 (torn writes): a brown-out during a settings write makes the ESP32 runtime reformat its store, so
 * below LOW_BATT_V the firmware writes nothing to flash: no new reading, commands left queued in the broker,
 * the status says why, and it sleeps LOW_BATT_X periods. When the battery recovers, readings continue with the
 * next seq and the queued command is applied.
 */
import mqtt from "mqtt";
import { afterEach, describe, expect, test } from "vitest";
import { observe, startBroker, until } from "./helpers/broker.ts";
import { runFirmware } from "./helpers/fleet.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("low battery", () => {
  test("below LOW_BATT_V: no flash writes, no reading, commands wait; back above: everything resumes", async () => {
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const obs = await observe(broker.port);
    cleanups.push(() => obs.client.endAsync());
    let volts = 3.9;
    const id = "battery-1";
    const run = await runFirmware({
      port: broker.port,
      timeScale: 60,
      battery: () => volts,
      settings: { DEVICE_ID: id, INTERVAL_S: 60, LOW_BATT_V: 3.3, LOW_BATT_X: 4 },
    });
    cleanups.push(() => run.stop());
    const device = run.fleet.devices[0]!;
    const telemetry = () => obs.messages.filter((m) => m.topic === `sensors/${id}/telemetry`);
    const sleeping = () => obs.messages.filter((m) => m.topic === `sensors/${id}/status` && m.body?.state === "sleeping");
    await until("a reading at 3.9 V", () => telemetry().length >= 1, 60_000);
    expect(telemetry()[0]!.body.battery).toBeCloseTo(3.9, 1);

    // the battery sags: from the next wake on, nothing is written
    await new Promise<void>((resolve) => run.fleet.once("standby", () => resolve()));
    volts = 3.1;
    const readingsBefore = telemetry().length;
    const savesBefore = device.flashWrites;
    const sleepsBefore = sleeping().length;
    const sender = await mqtt.connectAsync(broker.url, { clientId: "battery-sender", clean: true });
    cleanups.push(() => sender.endAsync());
    await sender.publishAsync(`sensors/${id}/cmd`, JSON.stringify({ id: "c-low-1", op: "ping" }), { qos: 1 });
    await until("3 low-battery wakes", () => sleeping().slice(sleepsBefore).filter((m) => m.body.lowBattery).length >= 3, 120_000);
    const low = sleeping().slice(sleepsBefore).filter((m) => m.body.lowBattery);
    expect(device.flashWrites - savesBefore, "flash saves while the battery is low").toBe(0);
    expect(telemetry().length - readingsBefore, "readings while the battery is low").toBe(0);
    for (const m of low) {
      expect(m.body.battery).toBeCloseTo(3.1, 1);
      // LOW_BATT_X = 4: four periods of 60 s minus the awake time
      expect(m.body.sleepMs).toBeGreaterThan(3 * 60_000);
      expect(m.body.sleepMs).toBeLessThanOrEqual(4 * 60_000);
    }
    expect(low.some((m) => m.body.deferred >= 1), "the command waits in the broker").toBe(true);
    expect(obs.messages.some((m) => m.topic === `sensors/${id}/cmd/ack`)).toBe(false);

    // recovered: the next reading has the next seq, the queued command runs
    volts = 3.8;
    await until("a reading after recovery", () => telemetry().length > readingsBefore, 120_000);
    await until("the queued command acked", () => obs.messages.some((m) => m.topic === `sensors/${id}/cmd/ack` && m.body.id === "c-low-1"), 60_000);
    const seqs = telemetry().map((m) => m.body.seq as number);
    expect([...new Set(seqs)]).toEqual(Array.from({ length: new Set(seqs).size }, (_, i) => i + 1));
    expect(run.fleet.counters().bootLoops).toBe(0);
  }, 360_000);
});
