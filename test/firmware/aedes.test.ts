/**
 * The compiled firmware in the simulator against a real aedes broker on a free port: readings in order
 * and exactly once, commands queued while a device sleeps, a broker that is down or lost the session.
 */
import { afterEach, describe, expect, test } from "vitest";
import { freePort } from "../helpers/ports.ts";
import { observe, startBroker, until, type Received } from "./helpers/broker.ts";
import { runFirmware, type FirmwareRun } from "./helpers/fleet.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function seqs(messages: Received[], id: string) {
  return messages.filter((m) => m.topic === `sensors/${id}/telemetry`).map((m) => m.body.seq as number);
}

describe("firmware against aedes", () => {
  test("two devices, several wakes: every reading arrives once, in order, with status online → sleeping", async () => {
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const obs = await observe(broker.port);
    cleanups.push(() => obs.client.endAsync());
    const run = await runFirmware({ port: broker.port, devices: 2, settings: { INTERVAL_S: 5 } });
    cleanups.push(() => run.stop());
    const ids = run.fleet.devices.map((d) => d.id);
    await until("3 readings per device", () => ids.every((id) => seqs(obs.messages, id).length >= 3));
    for (const id of ids) {
      const s = seqs(obs.messages, id);
      expect(s.slice(0, 3)).toEqual([1, 2, 3]);
      const tele = obs.messages.filter((m) => m.topic === `sensors/${id}/telemetry`);
      for (const m of tele) {
        expect(m.body).toMatchObject({ v: 1, t: null, battery: null, dropped: 0, corrupt: 0 });
        expect(Number.isFinite(m.body.readings.temperature)).toBe(true);
        expect(Number.isFinite(m.body.readings.humidity)).toBe(true);
      }
      expect(tele.map((m) => m.body.boot).slice(0, 3)).toEqual([1, 2, 3]);
      const states = obs.messages.filter((m) => m.topic === `sensors/${id}/status`).map((m) => m.body.state);
      expect(states.slice(0, 4)).toEqual(["online", "sleeping", "online", "sleeping"]);
    }
  });

  test("QoS 2 telemetry through aedes: exactly once", async () => {
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const obs = await observe(broker.port);
    cleanups.push(() => obs.client.endAsync());
    const run = await runFirmware({ port: broker.port, settings: { INTERVAL_S: 5, QOS: 2 } });
    cleanups.push(() => run.stop());
    const id = run.fleet.devices[0]!.id;
    await until("3 readings", () => seqs(obs.messages, id).length >= 3);
    await until("third sleep", () => obs.messages.filter((m) => m.body.state === "sleeping").length >= 3);
    expect(seqs(obs.messages, id)).toEqual([1, 2, 3].concat(seqs(obs.messages, id).slice(3)));
    expect(new Set(seqs(obs.messages, id)).size).toBe(seqs(obs.messages, id).length);
  });

  test("commands published while the device sleeps are applied and acked on its next wake", async () => {
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const obs = await observe(broker.port);
    cleanups.push(() => obs.client.endAsync());
    // 60 s interval at time scale 50: a 1.2 s sleep to publish into
    const run = await runFirmware({ port: broker.port, settings: { INTERVAL_S: 60 } });
    cleanups.push(() => run.stop());
    const id = run.fleet.devices[0]!.id;
    await new Promise<void>((resolve) => run.fleet.once("standby", () => resolve()));
    const cmdTopic = `sensors/${id}/cmd`;
    const send = (body: object) => obs.client.publishAsync(cmdTopic, JSON.stringify(body), { qos: 1 });
    await send({ id: "c-int", op: "set-interval", seconds: 120 });
    await send({ id: "c-awake", op: "stay-awake", seconds: 2 });
    await send({ id: "c-ping", op: "ping" });
    await send({ id: "c-bad", op: "bogus" });
    await send({ id: "c-ping", op: "ping" }); // same id again: acked, not executed twice
    const acks = () => obs.messages.filter((m) => m.topic === `${cmdTopic}/ack`).map((m) => m.body);
    await until("5 acks", () => acks().length >= 5);
    expect(acks()).toEqual([
      { v: 1, id: "c-int", op: "set-interval", ok: true },
      { v: 1, id: "c-awake", op: "stay-awake", ok: true },
      { v: 1, id: "c-ping", op: "ping", ok: true },
      { v: 1, id: "c-bad", op: "bogus", ok: false, error: "unknown op" },
      { v: 1, id: "c-ping", op: "ping", ok: true },
    ]);
    expect(run.logs.filter((l) => l.includes("command c-ping: ping"))).toHaveLength(1);
    const status = () => obs.messages.filter((m) => m.topic === `sensors/${id}/status`);
    await until("second sleeping status", () => status().filter((m) => m.body.state === "sleeping").length >= 2);
    const second = status().filter((m) => m.body.state === "sleeping")[1]!;
    // set-interval took effect (and is persisted: next test below): INTERVAL_S is the wake period, so the
    // sleep is what is left of 120 s after this wake (devs/src/clock.ts)
    expect(second.body.sleepMs).toBeGreaterThan(100_000);
    expect(second.body.sleepMs).toBeLessThanOrEqual(120_000);
    const online = status().filter((m) => m.body.state === "online")[1]!;
    // stayed awake for the 2 s (counted from when the command arrived, just before "online" was received)
    expect(second.at - online.at).toBeGreaterThanOrEqual(1900);
  });

  test("during stay-awake, a command published while the device is connected is handled at once", async () => {
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const obs = await observe(broker.port);
    cleanups.push(() => obs.client.endAsync());
    const run = await runFirmware({ port: broker.port, settings: { INTERVAL_S: 60 } });
    cleanups.push(() => run.stop());
    const id = run.fleet.devices[0]!.id;
    await new Promise<void>((resolve) => run.fleet.once("standby", () => resolve()));
    const cmd = (body: object) => obs.client.publishAsync(`sensors/${id}/cmd`, JSON.stringify(body), { qos: 1 });
    await cmd({ id: "c-stay", op: "stay-awake", seconds: 4 });
    const acks = () => obs.messages.filter((m) => m.topic === `sensors/${id}/cmd/ack`).map((m) => m.body.id);
    await until("stay-awake acked", () => acks().includes("c-stay"));
    await cmd({ id: "c-live", op: "ping" });
    await until("live ping acked", () => acks().includes("c-live"));
    const sleepingAt = () =>
      obs.messages.filter((m) => m.topic === `sensors/${id}/status` && m.body.state === "sleeping").map((m) => m.at);
    const ackAt = obs.messages.find((m) => m.topic === `sensors/${id}/cmd/ack` && m.body.id === "c-live")!.at;
    // acked while still awake: the second `sleeping` comes after it
    await until("second sleeping", () => sleepingAt().length >= 2);
    expect(sleepingAt()[1]!).toBeGreaterThan(ackAt);
  });

  test("set-interval survives later wakes (persisted in flash)", async () => {
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const obs = await observe(broker.port);
    cleanups.push(() => obs.client.endAsync());
    const run = await runFirmware({ port: broker.port, settings: { INTERVAL_S: 5 }, timeScale: 200 });
    cleanups.push(() => run.stop());
    const id = run.fleet.devices[0]!.id;
    await new Promise<void>((resolve) => run.fleet.once("standby", () => resolve()));
    await obs.client.publishAsync(`sensors/${id}/cmd`, JSON.stringify({ id: "c-1", op: "set-interval", seconds: 7 }), {
      qos: 1,
    });
    // INTERVAL_S is the wake period: boots land on multiples of it on the device's own timeline (the
    // simulator's true clock; BOOT_MS = the modelled boot delay, so no drift), 5 s before the command, 7 s after
    const boots: number[] = [];
    run.fleet.on("boot", ({ clock }) => boots.push(clock));
    const acked = () => obs.messages.some((m) => m.topic === `sensors/${id}/cmd/ack` && m.body.id === "c-1");
    await until("the command acked", acked);
    await until("4 boots after it", () => boots.length >= 5);
    const gaps = boots.slice(1).map((b, i) => b - boots[i]!);
    for (const gap of gaps) {
      const k = Math.round(gap / 7000);
      expect(k, `period of ${gap} ms`).toBeGreaterThanOrEqual(1);
      expect(Math.abs(gap - k * 7000), `boot gap ${gap} ms vs ${k} × 7000`).toBeLessThanOrEqual(100);
    }
  });

  test("broker down: readings stay in flash across wakes and all arrive, in order, once it is back", async () => {
    const port = await freePort();
    // the budget must cover Wi-Fi (3.5–6 s after boot under the esp32 profile) and a connect attempt
    const run = await runFirmware({ port, settings: { INTERVAL_S: 5, AWAKE_MAX_S: 8 } });
    cleanups.push(() => run.stop());
    let standbys = 0;
    run.fleet.on("standby", () => standbys++);
    await until("3 wakes without a broker", () => standbys >= 3);
    expect(run.logs.join("\n")).toMatch(/awake budget spent/);
    const broker = await startBroker(port);
    cleanups.push(() => broker.close());
    const obs = await observe(port);
    cleanups.push(() => obs.client.endAsync());
    const id = run.fleet.devices[0]!.id;
    await until("readings 1..4", () => seqs(obs.messages, id).length >= 4);
    const s = seqs(obs.messages, id);
    expect(s).toEqual(Array.from({ length: s.length }, (_, i) => i + 1));
  });

  test("a broker that lost the session (restart without persistence): the device subscribes again", async () => {
    const first = await startBroker();
    const port = first.port;
    const run = await runFirmware({ port, settings: { INTERVAL_S: 30 } });
    cleanups.push(() => run.stop());
    const id = run.fleet.devices[0]!.id;
    await new Promise<void>((resolve) => run.fleet.once("standby", () => resolve()));
    await first.close();
    const broker = await startBroker(port);
    cleanups.push(() => broker.close());
    const subscribed = new Promise<void>((resolve) =>
      broker.aedes.on("subscribe", (subs, client) => {
        if (client?.id === id && subs.some((s) => s.topic === `sensors/${id}/cmd`)) resolve();
      }),
    );
    const obs = await observe(port);
    cleanups.push(() => obs.client.endAsync());
    await subscribed;
    await obs.client.publishAsync(`sensors/${id}/cmd`, JSON.stringify({ id: "c-after", op: "ping" }), { qos: 1 });
    await until("ack", () => obs.messages.find((m) => m.topic === `sensors/${id}/cmd/ack`));
    expect(obs.messages.find((m) => m.topic === `sensors/${id}/cmd/ack`)!.body).toEqual({
      v: 1,
      id: "c-after",
      op: "ping",
      ok: true,
    });
  });
});
