/**
 * Regression for issue 9.2 ("every sleep looks like a crash on a board"): under the esp32 profile a socket's
 * queued writes are discarded at close() (devicescript-esp32 main/sock.c), so a DISCONNECT followed at once by
 * close and standby never reached the broker, which then published the Last Will (`offline`) on every sleep.
 * Over ≥ 100 wakes on the shipped broker and on Mosquitto: no `offline` ever, the retained status stays
 * `sleeping`, and the simulator reports no DISCONNECT discarded at close and no boot loop.
 */
import mqtt from "mqtt";
import { afterEach, describe, expect, test } from "vitest";
import { mosquittoAvailable } from "../helpers/mosquitto.ts";
import { observe, startBrokerOfKind, until } from "./helpers/broker.ts";
import { runFirmware } from "./helpers/fleet.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const DEVICES = 10;
const WAKES = 100;
const hasMosquitto = mosquittoAvailable();

async function retainedStatus(port: number): Promise<Map<string, string>> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `retained-${Date.now()}`, clean: true });
  const states = new Map<string, string>();
  client.on("message", (topic, payload, packet) => {
    if (packet.retain) states.set(topic.split("/")[1]!, JSON.parse(payload.toString()).state);
  });
  const marker = `test/marker/${Date.now()}`;
  await client.subscribeAsync(marker, { qos: 1 });
  const markerSeen = new Promise<void>((resolve) => client.on("message", (topic) => topic === marker && resolve()));
  await client.subscribeAsync("sensors/+/status", { qos: 1 });
  // the broker sends retained messages right after SUBACK, before it handles our next packet: once our
  // own marker message comes back, every retained status has arrived
  await client.publishAsync(marker, "end", { qos: 1 });
  await markerSeen;
  await client.endAsync();
  return states;
}

async function goodbyes(kind: "embedded" | "mosquitto") {
  const broker = await startBrokerOfKind(kind);
  cleanups.push(() => broker.close());
  const port = broker.port;
  const obs = await observe(port);
  cleanups.push(() => obs.client.endAsync());
  const run = await runFirmware({
    port,
    devices: DEVICES,
    timeScale: 10,
    settings: (i) => ({ DEVICE_ID: `bye-${kind}-${i}`, INTERVAL_S: 5 }),
  });
  cleanups.push(() => run.stop());
  expect(run.fleet.profile.name).toBe("esp32");
  let wakes = 0;
  run.fleet.on("standby", () => wakes++);
  const loops: unknown[] = [];
  run.fleet.on("boot-loop", (e) => loops.push(e));

  await until(`${WAKES} wakes`, () => wakes >= WAKES, 300_000);
  // every device asleep at the same moment is not guaranteed: take the retained state of those that are
  const asleep = run.fleet.devices.filter((d) => d.state === "sleeping").map((d) => d.id);
  const retained = await retainedStatus(port);
  const offline = obs.messages.filter((m) => m.topic.endsWith("/status") && m.body?.state === "offline");

  expect(offline.map((m) => m.topic), "Last Will published on a normal sleep").toEqual([]);
  expect(asleep.length).toBeGreaterThan(0);
  for (const id of asleep) expect(retained.get(id), id).toBe("sleeping");
  for (const d of run.fleet.devices) expect(["sleeping", "online"], d.id).toContain(retained.get(d.id));
  expect(run.fleet.counters().wire.discardedPackets, "writes discarded at close").toBe(0);
  expect(loops).toEqual([]);
  // the broker saw the goodbye: one DISCONNECT per wake that connected
  expect(run.fleet.counters().wire.packetsOut.disconnect ?? 0).toBeGreaterThanOrEqual(WAKES);
}

describe("the goodbye reaches the broker (esp32 socket model)", () => {
  test(`shipped broker: ${WAKES} wakes, no Last Will, retained status sleeping`, async () => {
    await goodbyes("embedded");
  }, 360_000);

  test.skipIf(!hasMosquitto)(`Mosquitto: ${WAKES} wakes, no Last Will, retained status sleeping`, async () => {
    await goodbyes("mosquitto");
  }, 360_000);
});
