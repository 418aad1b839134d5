/**
 * Issue 3: a broker that lost the device's session (Mosquitto restarted without persistence; the embedded
 * broker, i.e. the gateway, restarted on an empty data dir) is detected by the device (CONNACK
 * sessionPresent=0) and its cmd subscription restored: a command sent after that wake is delivered and acked
 * on the next one. (A command published before the device re-subscribed has no session to wait in: plain
 * MQTT drops it, so the test sends after the device's first wake on the new broker.)
 */
import { afterEach, describe, expect, test } from "vitest";
import { waitUntil } from "../helpers/wait.ts";
import { getCommand, sendCommand } from "./gateway-api.ts";
import { startRecordedFleet } from "./recorded-fleet.ts";
import { soakBrokerKinds, startStack } from "./stack.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.each(soakBrokerKinds())("a broker that lost the session (%s broker)", (kind) => {
  test("the device sees sessionPresent=0, subscribes again, and a command sent afterwards arrives on its next wake", async () => {
    const stack = await startStack(kind, { persistence: false });
    cleanups.push(() => stack.close());
    // 60 s at time scale 20: 3 s sleeps
    const { fleet, record, stop } = await startRecordedFleet({ devices: 1, brokerUrl: stack.brokerUrl, seed: 51, timeScale: 20, settings: { INTERVAL_S: 60 } });
    cleanups.push(stop);
    const device = fleet.devices[0]!;
    const id = device.id;
    const sessions = () => record.device(id).sessionPresent;
    await waitUntil(() => record.wakes(id) >= 2, { timeoutMs: 40_000, message: "two wakes on the first broker" });
    // the broker kept the session between wakes: that is what the restart takes away
    expect(sessions().at(-1)?.value, "sessionPresent on the second wake").toBe(1);

    const restartedAt = Date.now();
    await stack.restartBroker("graceful", { emptyDataDir: kind === "embedded" });
    const afterRestart = () => sessions().filter((s) => s.at > restartedAt);
    await waitUntil(() => afterRestart().length >= 1, { timeoutMs: 40_000, message: "a connection to the restarted broker" });
    expect(afterRestart()[0]!.value, "sessionPresent on the first connection after the restart").toBe(0);
    // that wake re-subscribed; once it is over, the device sleeps
    const wakesDone = record.wakes(id);
    await waitUntil(() => record.wakes(id) > wakesDone && device.state === "sleeping", {
      timeoutMs: 30_000,
      message: "the re-subscribing wake to end",
    });

    const wakesAtSend = record.wakes(id);
    const cid = await sendCommand(stack.gatewayUrl, id, { op: "ping" });
    await waitUntil(async () => (await getCommand(stack.gatewayUrl, id, cid)).state === "acked", {
      timeoutMs: 30_000,
      message: "the ping sent after the restart to be acked",
    });
    // acked by the wake right after the send (it cannot have been the wake still running at the send)
    expect(record.wakes(id)).toBeLessThanOrEqual(wakesAtSend + 1);
    expect(afterRestart().slice(1).map((s) => s.value), "later connections resume the new session").not.toContain(0);
  }, 120_000);
});
