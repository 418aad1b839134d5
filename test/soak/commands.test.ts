/**
 * Issue 3: commands published (QoS 1) while a device sleeps are all delivered and acked on its next wake,
 * through the real stack (compiled firmware in the simulator → broker → gateway), on the embedded broker and
 * on Mosquitto. Commands go through the gateway's API and, for one, straight from another mqtt.js client.
 */
import { afterEach, describe, expect, test } from "vitest";
import mqtt from "mqtt";
import { waitUntil } from "../helpers/wait.ts";
import { getCommand, sendCommand } from "./gateway-api.ts";
import { startObserver } from "./observer.ts";
import { startRecordedFleet } from "./recorded-fleet.ts";
import { soakBrokerKinds, startStack } from "./stack.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** 60 s at time scale 10: a 6 s sleep to send the commands into. */
const INTERVAL_S = 60;
const TIME_SCALE = 10;
const STAY_AWAKE_S = 3;
const NEW_INTERVAL_S = 120;

describe.each(soakBrokerKinds())("commands to a sleeping device through the real stack (%s broker)", (kind) => {
  test("set-interval, stay-awake, ping (gateway API) and ping (another client) sent during sleep: all acked on the next wake, and in effect", async () => {
    const stack = await startStack(kind);
    cleanups.push(() => stack.close());
    const observer = await startObserver(stack.brokerUrl, ["sensors/+/cmd", "sensors/+/cmd/ack", "sensors/+/status"], { qos: 1 });
    cleanups.push(() => observer.close());
    const { fleet, record, stop } = await startRecordedFleet({
      devices: 1,
      brokerUrl: stack.brokerUrl,
      seed: 41,
      timeScale: TIME_SCALE,
      settings: { INTERVAL_S },
    });
    cleanups.push(stop);
    const device = fleet.devices[0]!;
    const id = device.id;
    await waitUntil(() => record.wakes(id) >= 1, { timeoutMs: 30_000, message: "the first wake to end" });
    // INTERVAL_S is the wake period (devs/src/clock.ts): the first sleep is what is left of it
    const first = record.device(id).standbys[0]!;
    expect(first.ms, "first sleep (INTERVAL_S applied?)").toBeLessThanOrEqual(INTERVAL_S * 1000);
    expect(first.ms, "first sleep (INTERVAL_S applied?)").toBeGreaterThan(INTERVAL_S * 1000 - first.awakeMs - 1000);

    const viaGateway = {
      interval: await sendCommand(stack.gatewayUrl, id, { op: "set-interval", seconds: NEW_INTERVAL_S }),
      awake: await sendCommand(stack.gatewayUrl, id, { op: "stay-awake", seconds: STAY_AWAKE_S }),
      ping: await sendCommand(stack.gatewayUrl, id, { op: "ping" }),
    };
    const other = await mqtt.connectAsync(stack.brokerUrl, { clientId: `soak-other-${process.pid}`, clean: true });
    cleanups.push(() => other.endAsync());
    await other.publishAsync(`sensors/${id}/cmd`, JSON.stringify({ id: "c-other-ping", op: "ping" }), { qos: 1 });
    const sentIds = [...Object.values(viaGateway), "c-other-ping"];
    // the broker took all four while the device still slept (its next wake has not begun)
    await waitUntil(() => observer.on(`sensors/${id}/cmd`).length >= 4, { timeoutMs: 10_000, message: "4 commands at the broker" });
    expect(device.state, "device state when the broker had every command").toBe("sleeping");
    expect(record.wakes(id)).toBe(1);
    expect(observer.on(`sensors/${id}/cmd`).map((m) => m.body.id).sort()).toEqual([...sentIds].sort());

    // next wake: every command acked by the device, and the gateway's commands are `acked`
    await waitUntil(() => record.wakes(id) >= 2, { timeoutMs: 40_000, message: "the second wake to end" });
    const acks = observer.on(`sensors/${id}/cmd/ack`).map((m) => m.body);
    expect(acks.map((a) => a.id).sort()).toEqual([...sentIds].sort());
    for (const ack of acks) expect(ack, `ack of ${ack.id}`).toMatchObject({ v: 1, ok: true });
    const secondStandby = record.device(id).standbys[1]!;
    for (const m of observer.on(`sensors/${id}/cmd/ack`)) expect(m.at, `ack ${m.body.id} during the second wake`).toBeLessThanOrEqual(secondStandby.at);
    await waitUntil(
      async () => {
        for (const cid of Object.values(viaGateway)) if ((await getCommand(stack.gatewayUrl, id, cid)).state !== "acked") return false;
        return true;
      },
      { timeoutMs: 10_000, message: "the gateway's commands in state acked" },
    );

    // stay-awake: connected ≈ N s after the command arrived before saying `sleeping`
    const awakeAckAt = observer.on(`sensors/${id}/cmd/ack`).find((m) => m.body.id === viaGateway.awake)!.at;
    const sleeping = () => observer.on(`sensors/${id}/status`).filter((m) => m.body.state === "sleeping");
    await waitUntil(() => sleeping().length >= 2, { timeoutMs: 10_000, message: "the second `sleeping` status" });
    const secondSleeping = sleeping()[1]!;
    const stayedMs = secondSleeping.at - awakeAckAt;
    expect(stayedMs, "ms between the stay-awake ack and `sleeping`").toBeGreaterThanOrEqual(STAY_AWAKE_S * 1000 - 250);
    expect(stayedMs).toBeLessThan(STAY_AWAKE_S * 1000 + 3000);
    expect(secondStandby.awakeMs).toBeGreaterThan(STAY_AWAKE_S * 1000);

    // set-interval: that wake sleeps until the new period is over (awake time + BOOT_MS + sleep = 120 s), and its
    // `sleeping` status says so (announced just before the goodbye, so a few ms longer than the final standby)
    const period = secondStandby.awakeMs + 300 + secondStandby.ms;
    expect(Math.abs(period - NEW_INTERVAL_S * 1000), `wake period ${period} ms`).toBeLessThanOrEqual(1000);
    expect(Math.abs(secondSleeping.body.sleepMs - secondStandby.ms)).toBeLessThanOrEqual(1000);
  }, 120_000);
});
