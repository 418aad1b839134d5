/**
 * Home Assistant MQTT discovery and MQTT alerts through a real gateway, on the embedded broker and on Mosquitto:
 * a device client publishes status and telemetry; a subscriber acting as Home Assistant keeps the retained
 * messages under homeassistant/#, sleepy/# and sensors/+/status, validates every discovery config against the
 * documented schema (test/helpers/home-assistant.ts), builds the entity list and renders each entity's state and
 * availability from the retained payloads. Then: a reading missing a key keeps its entity, sleeping stays
 * available, the Last Will makes the readings unavailable while status and problem (the offline alert) stay
 * available, a low battery fires an alert on sleepy/alerts/… and the problem entity, Home Assistant's birth
 * message brings everything again, DELETE /api/devices/:id clears it all (and an ack afterwards brings nothing
 * back; a reading sent while it runs does not break it), a stopped gateway makes every entity unavailable and a
 * restarted one publishes everything again (but not what was deleted). Behind a TCP proxy (test/helpers/mqtt-proxy.ts):
 * DELETE answers 503 and deletes nothing when the publisher is kicked off or the link stalls, and a reading that
 * arrives while it waits for the broker leaves no entity behind. Last, the compiled
 * firmware in the simulator: its own payloads become the same entities.
 */
import { rmSync } from "node:fs";
import mqtt from "mqtt";
import { afterEach, describe, expect, test } from "vitest";
import { waitUntil } from "../helpers/wait.ts";
import { isAvailable, parseDiscovery, renderTemplate, type Entity } from "../helpers/home-assistant.ts";
import { startFleet } from "../../simulator/src/index.ts";
import { brokerKinds } from "./broker-kinds.ts";
import { startTestGateway, tempDir, type TestGateway } from "../helpers/gateway.ts";
import { mosquittoAvailable, startMosquitto } from "../helpers/mosquitto.ts";
import { startMqttProxy } from "../helpers/mqtt-proxy.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A Home Assistant stand-in: the retained state of every topic it sees, and how many live messages each got. */
async function homeAssistant(url: string) {
  const retained = new Map<string, string>();
  const live = new Map<string, number>();
  /** Topics in the order their removal (an empty payload) arrived. */
  const removed: string[] = [];
  const client = await mqtt.connectAsync(url, { clientId: `ha-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0 });
  cleanups.push(() => client.endAsync(true));
  client.on("message", (topic, payload, packet) => {
    if (payload.length === 0) {
      retained.delete(topic);
      removed.push(topic);
    } else retained.set(topic, payload.toString());
    if (!packet.retain) live.set(topic, (live.get(topic) ?? 0) + 1);
  });
  await client.subscribeAsync(["homeassistant/#", "sleepy/#", "sensors/+/status"], { qos: 1 });
  const entities = (deviceId: string): Entity[] =>
    [...retained]
      .filter(([t]) => t.startsWith(`homeassistant/`) && t.includes(`/sleepy_${deviceId}/`))
      .map(([t, p]) => parseDiscovery(t, p));
  /** Each entity's state and availability, as Home Assistant would show them; undefined while a topic is missing. */
  const view = (deviceId: string): Record<string, { state: string; available: boolean }> | undefined => {
    const out: Record<string, { state: string; available: boolean }> = {};
    for (const e of entities(deviceId)) {
      const state = retained.get(e.config.state_topic);
      const available = isAvailable(e.config, retained);
      if (state === undefined || available === undefined) return undefined;
      const rendered = renderTemplate(e.config.value_template, state);
      // an MQTT sensor whose template renders None has the state unknown
      out[e.objectId] = { state: rendered === "None" ? "unknown" : rendered, available };
    }
    return out;
  };
  return { client, retained, live, removed, entities, view };
}

async function device(url: string, deviceId: string) {
  const c = await mqtt.connectAsync(url, {
    clientId: deviceId,
    clean: false,
    reconnectPeriod: 0,
    will: { topic: `sensors/${deviceId}/status`, payload: Buffer.from('{"v":1,"state":"offline"}'), qos: 1, retain: true },
  });
  cleanups.push(() => c.endAsync(true));
  return c;
}

const telemetry = (seq: number, readings: Record<string, number>, battery: number | null) =>
  JSON.stringify({ v: 1, seq, boot: 1, t: null, age: 0, readings, battery });

describe.each(brokerKinds())("Home Assistant discovery on the $name broker", (kind) => {
  async function gateway(): Promise<TestGateway> {
    const gw = await kind.startGateway({ config: { homeAssistant: { enabled: true }, alerts: { mqtt: true, checkIntervalMs: 50 } } });
    cleanups.push(() => gw.close());
    return gw;
  }

  test("retained configs follow the documented schema; the entities show the device's readings and status", async () => {
    const gw = await gateway();
    const ha = await homeAssistant(gw.mqttUrl);
    const dev = await device(gw.mqttUrl, "kitchen-1");
    await dev.publishAsync("sensors/kitchen-1/status", '{"v":1,"state":"online","boot":1}', { qos: 1, retain: true });
    await dev.publishAsync("sensors/kitchen-1/telemetry", telemetry(1, { temperature: 21.5, humidity: 40.25 }, 3.71), { qos: 1 });

    const first = await waitUntil(() => ha.view("kitchen-1")?.temperature && ha.view("kitchen-1"), { message: "kitchen-1's entities" });
    expect(first).toEqual({
      temperature: { state: "21.5", available: true },
      humidity: { state: "40.25", available: true },
      battery: { state: "3.71", available: true },
      status: { state: "online", available: true },
      problem: { state: "OFF", available: true },
    });

    const entities = ha.entities("kitchen-1");
    // unique ids are unique; every entity of the device carries the same device block, grouped under its node id
    expect(new Set(entities.map((e) => e.config.unique_id)).size).toBe(entities.length);
    expect(new Set(entities.map((e) => e.config.default_entity_id)).size).toBe(entities.length);
    expect(entities.find((e) => e.objectId === "temperature")!.config.default_entity_id).toBe("sensor.sleepy_kitchen_1_temperature");
    expect(new Set(entities.map((e) => JSON.stringify(e.config.device))).size).toBe(1);
    expect(new Set(entities.map((e) => e.nodeId))).toEqual(new Set(["sleepy_kitchen-1"]));
    const device0 = entities[0]!.config.device;
    expect(device0.identifiers).toEqual(["sleepy_kitchen-1"]);
    expect(device0.name).toBe("kitchen-1");
    expect(device0.model).toMatch(/ESP32/);
    const byId = Object.fromEntries(entities.map((e) => [e.objectId, e.config]));
    expect(byId.temperature).toMatchObject({ device_class: "temperature", unit_of_measurement: "°C", state_class: "measurement" });
    expect(byId.humidity).toMatchObject({ device_class: "humidity", unit_of_measurement: "%" });
    expect(byId.battery).toMatchObject({ device_class: "voltage", unit_of_measurement: "V", entity_category: "diagnostic" });
    expect(byId.status).toMatchObject({ device_class: "enum", options: ["online", "sleeping", "overdue", "offline", "unknown"] });
    expect(entities.find((e) => e.objectId === "problem")!.component).toBe("binary_sensor");
    // readings need the gateway and the device; status and problem (the gateway's knowledge) the gateway only
    const topicsOf = (c: Record<string, any>) => (c.availability as Array<{ topic: string }>).map((a) => a.topic);
    for (const id of ["temperature", "humidity", "battery"]) {
      expect(topicsOf(byId[id]!)).toEqual(["sleepy/gateway/status", "sensors/kitchen-1/status"]);
      expect(byId[id]!.availability_mode).toBe("all");
    }
    for (const id of ["status", "problem"]) expect(topicsOf(byId[id]!)).toEqual(["sleepy/gateway/status"]);

    // a newer reading changes the state, not the configs; a name set in the API renames the device
    await dev.publishAsync("sensors/kitchen-1/telemetry", telemetry(2, { temperature: 22, humidity: 41 }, 3.7), { qos: 1 });
    await waitUntil(() => ha.view("kitchen-1")?.temperature?.state === "22", { message: "temperature 22" });
    const res = await fetch(`${gw.url}/api/devices/kitchen-1`, { method: "PATCH", headers: { "content-type": "application/json" }, body: '{"name":"Kitchen","location":"Kitchen"}' });
    expect(res.status).toBe(200);
    await waitUntil(() => ha.entities("kitchen-1").every((e) => e.config.device.name === "Kitchen" && e.config.device.suggested_area === "Kitchen"), { message: "renamed device" });

    // a reading without humidity (a sensor fault) keeps the humidity entity, its state unknown until it comes back
    await dev.publishAsync("sensors/kitchen-1/telemetry", telemetry(3, { temperature: 23 }, 3.7), { qos: 1 });
    await waitUntil(() => ha.view("kitchen-1")?.temperature?.state === "23", { message: "temperature 23" });
    expect(ha.view("kitchen-1")!.humidity).toEqual({ state: "unknown", available: true });
    expect(ha.retained.has("homeassistant/sensor/sleepy_kitchen-1/humidity/config")).toBe(true);

    // sleeping is available (a battery sensor's normal state)
    await dev.publishAsync("sensors/kitchen-1/status", '{"v":1,"state":"sleeping","sleepMs":60000,"boot":1}', { qos: 1, retain: true });
    await waitUntil(() => ha.view("kitchen-1")?.status?.state === "sleeping", { message: "sleeping" });
    expect(Object.values(ha.view("kitchen-1")!).every((e) => e.available)).toBe(true);
    // the Last Will makes the readings unavailable; status says offline and problem shows the offline alert, both available
    dev.stream.destroy(); // no DISCONNECT: the broker publishes the Last Will
    const offline = await waitUntil(() => ha.view("kitchen-1")?.problem?.state === "ON" && ha.view("kitchen-1"), { message: "offline alert on the problem entity" });
    expect(offline).toEqual({
      temperature: { state: "23", available: false },
      humidity: { state: "unknown", available: false },
      battery: { state: "3.7", available: false },
      status: { state: "offline", available: true },
      problem: { state: "ON", available: true },
    });
  });

  test("a low battery fires an alert on sleepy/alerts/<device>/<rule> and the problem entity; HA's birth republishes", async () => {
    const gw = await gateway();
    const ha = await homeAssistant(gw.mqttUrl);
    const dev = await device(gw.mqttUrl, "shed-2");
    await dev.publishAsync("sensors/shed-2/status", '{"v":1,"state":"online"}', { qos: 1, retain: true });
    await dev.publishAsync("sensors/shed-2/telemetry", telemetry(1, { temperature: 5 }, 3.2), { qos: 1 });
    const alert = await waitUntil(() => ha.retained.get("sleepy/alerts/shed-2/battery-low"), { message: "battery alert on MQTT" });
    expect(JSON.parse(alert)).toMatchObject({ type: "alert", alert: { deviceId: "shed-2", ruleId: "battery-low", kind: "battery", state: "firing", value: 3.2 } });
    await waitUntil(() => ha.view("shed-2")?.problem?.state === "ON", { message: "problem on" });

    await dev.publishAsync("sensors/shed-2/telemetry", telemetry(2, { temperature: 5 }, 3.9), { qos: 1 });
    await waitUntil(() => ha.retained.get("sleepy/alerts/shed-2/battery-low")?.includes('"state":"resolved"'), { message: "alert resolved on MQTT" });
    await waitUntil(() => ha.view("shed-2")?.problem?.state === "OFF", { message: "problem off" });

    // Home Assistant restarted: its birth message makes the gateway publish every config again (live, not replayed)
    const configs = ha.entities("shed-2").map((e) => `homeassistant/${e.component}/${e.nodeId}/${e.objectId}/config`);
    const before = configs.map((t) => ha.live.get(t) ?? 0);
    await ha.client.publishAsync("homeassistant/status", "online", { qos: 1 });
    await waitUntil(() => configs.every((t, i) => (ha.live.get(t) ?? 0) > before[i]!), { message: "configs republished after birth" });
    expect(ha.retained.get("sleepy/gateway/status")).toBe("online");
  });

  test("DELETE /api/devices/:id removes the device, its entities, state, alerts and retained status", async () => {
    const gw = await gateway();
    const ha = await homeAssistant(gw.mqttUrl);
    const dev = await device(gw.mqttUrl, "attic-3");
    await dev.publishAsync("sensors/attic-3/status", '{"v":1,"state":"online"}', { qos: 1, retain: true });
    await dev.publishAsync("sensors/attic-3/telemetry", telemetry(1, { temperature: 30 }, 3.1), { qos: 1 });
    await waitUntil(() => ha.view("attic-3")?.problem?.state === "ON", { message: "attic-3 entities with its alert" });
    await dev.endAsync();

    expect((await fetch(`${gw.url}/api/devices/nope-9`, { method: "DELETE" })).status).toBe(404);
    expect((await fetch(`${gw.url}/api/devices/attic-3`, { method: "DELETE" })).status).toBe(204);
    await waitUntil(() => ![...ha.retained.keys()].some((t) => t.includes("attic-3")), { message: "every attic-3 topic cleared" });
    // the entities go first (no live entity sees its availability or state vanish), the device's status last
    const order = ha.removed.filter((t) => t.includes("attic-3"));
    expect(order.slice(0, 4).every((t) => t.endsWith("/config"))).toBe(true);
    expect(order.slice(4)).toEqual(["sleepy/devices/attic-3/state", "sleepy/alerts/attic-3/battery-low", "sensors/attic-3/status"]);
    const list = (await (await fetch(`${gw.url}/api/devices`)).json()) as { devices: Array<{ deviceId: string }> };
    expect(list.devices.map((d) => d.deviceId)).not.toContain("attic-3");
    // its battery alert was resolved: nothing could end it any more
    const alerts = (await (await fetch(`${gw.url}/api/alerts?state=all&device=attic-3`)).json()) as { alerts: Array<{ state: string }> };
    expect(alerts.alerts.map((a) => a.state)).toEqual(["resolved"]);
    // the cleared retained status came back to the gateway too: counted as such (not as a rejected message), not a device again
    await waitUntil(async () => (await (await fetch(`${gw.url}/metrics`)).text()).includes("gateway_mqtt_retained_cleared_total 1"), { message: "the cleared status counted" });
    expect(await (await fetch(`${gw.url}/metrics`)).text()).not.toMatch(/gateway_mqtt_messages_rejected_total\{/);
    expect(await (await fetch(`${gw.url}/api/metrics/devices`)).text()).not.toContain('device="attic-3"');

    // acknowledging its alert afterwards neither brings the device back nor publishes anything about it; another
    // device's state, published after the ack on the same connection, is the barrier
    const [old] = alerts.alerts as unknown as Array<{ alertId: number }>;
    expect((await fetch(`${gw.url}/api/alerts/${old!.alertId}/ack`, { method: "POST" })).status).toBe(200);
    const other = await device(gw.mqttUrl, "cellar-4");
    await other.publishAsync("sensors/cellar-4/status", '{"v":1,"state":"online"}', { qos: 1, retain: true });
    await other.publishAsync("sensors/cellar-4/telemetry", telemetry(1, { temperature: 9 }, 3.9), { qos: 1 });
    await waitUntil(() => ha.view("cellar-4")?.temperature?.state === "9", { message: "cellar-4 (the barrier)" });
    expect([...ha.retained.keys()].filter((t) => t.includes("attic-3"))).toEqual([]);
    const after = (await (await fetch(`${gw.url}/api/devices`)).json()) as { devices: Array<{ deviceId: string }> };
    expect(after.devices.map((d) => d.deviceId)).toEqual(["cellar-4"]);

    // the device comes back re-flashed (seq from 0): a new device, whose first low reading alerts again although
    // its seq is below the last one the alert engine saw before the DELETE
    const again = await device(gw.mqttUrl, "attic-3");
    await again.publishAsync("sensors/attic-3/status", '{"v":1,"state":"online"}', { qos: 1, retain: true });
    await again.publishAsync("sensors/attic-3/telemetry", telemetry(0, { temperature: 31 }, 3.1), { qos: 1 });
    await waitUntil(() => ha.view("attic-3")?.problem?.state === "ON", { message: "attic-3 back, alerting again" });
    const firing = (await (await fetch(`${gw.url}/api/alerts?state=firing&device=attic-3`)).json()) as { alerts: Array<{ ruleId: string }> };
    expect(firing.alerts.map((a) => a.ruleId)).toEqual(["battery-low"]);
  });

  test("a reading sent while DELETE runs does not break it; the next reading makes a complete new device", async () => {
    const gw = await gateway();
    const ha = await homeAssistant(gw.mqttUrl);
    const dev = await device(gw.mqttUrl, "hall-6");
    await dev.publishAsync("sensors/hall-6/status", '{"v":1,"state":"online"}', { qos: 1, retain: true });
    await dev.publishAsync("sensors/hall-6/telemetry", telemetry(1, { temperature: 18 }, 3.9), { qos: 1 });
    await waitUntil(() => ha.view("hall-6")?.temperature, { message: "hall-6 entities" });
    // a reading with a new key (a new entity) goes out while the DELETE runs
    const [, res] = await Promise.all([
      dev.publishAsync("sensors/hall-6/telemetry", telemetry(2, { temperature: 18, co2: 600 }, 3.9), { qos: 1 }),
      fetch(`${gw.url}/api/devices/hall-6`, { method: "DELETE" }),
    ]);
    expect(res.status).toBe(204);
    // barrier: a reading after both is stored after the racing one; another device's state is published after it
    // (the DELETE cleared its retained status: it reports again, as on its next wake)
    const other = await device(gw.mqttUrl, "cellar-4");
    await dev.publishAsync("sensors/hall-6/status", '{"v":1,"state":"online"}', { qos: 1, retain: true });
    await dev.publishAsync("sensors/hall-6/telemetry", telemetry(3, { temperature: 19, co2: 610 }, 3.9), { qos: 1 });
    await other.publishAsync("sensors/cellar-4/status", '{"v":1,"state":"online"}', { qos: 1, retain: true });
    await other.publishAsync("sensors/cellar-4/telemetry", telemetry(1, { temperature: 9 }, 3.9), { qos: 1 });
    await waitUntil(() => ha.view("cellar-4")?.temperature, { message: "cellar-4 (the barrier)" });
    // seq 3 arrived after the DELETE: hall-6 is a device again, and Home Assistant has exactly what the API has
    const api = (await (await fetch(`${gw.url}/api/devices`)).json()) as { devices: Array<{ deviceId: string; lastReading: { readings: Record<string, number> } | null }> };
    const hall = api.devices.find((d) => d.deviceId === "hall-6")!;
    expect(hall.lastReading!.readings).toEqual({ temperature: 19, co2: 610 });
    const view = await waitUntil(() => (ha.view("hall-6")?.co2?.state === "610" ? ha.view("hall-6") : undefined), { message: "hall-6 complete" });
    expect(Object.keys(view).sort()).toEqual(["battery", "co2", "problem", "status", "temperature"]);
    expect(view.temperature).toEqual({ state: "19", available: true });
  });
});

describe("Home Assistant discovery of the real firmware", () => {
  test("a simulated device running the compiled firmware gets entities showing its latest reading", async () => {
    const gw = await startTestGateway({ config: { homeAssistant: { enabled: true } } });
    cleanups.push(() => gw.close());
    const ha = await homeAssistant(gw.mqttUrl);
    const flashDir = tempDir("ha-flash-");
    cleanups.push(() => rmSync(flashDir, { recursive: true, force: true }));
    const fleet = await startFleet({ devices: 1, brokerUrl: gw.mqttUrl, seed: 11, timeScale: 20, flashDir, eraseFlash: true, settings: { INTERVAL_S: 10 } });
    cleanups.push(() => fleet.stop());
    const id = fleet.devices[0]!.id;
    type Api = { devices: Array<{ deviceId: string; battery: number | null; status: string; lastReading: { seq: number; readings: Record<string, number> } | null }> };
    // two readings in: the entities must follow the latest one, as the API reports it
    const device = await waitUntil(
      async () => {
        const d = ((await (await fetch(`${gw.url}/api/devices`)).json()) as Api).devices.find((x) => x.deviceId === id);
        const v = ha.view(id);
        if (!d?.lastReading || d.lastReading.seq < 1 || !v) return undefined;
        const expected = Object.entries(d.lastReading.readings).every(([k, value]) => v[k]?.state === String(value));
        return expected && v.status?.state === d.status ? { d, v } : undefined;
      },
      { timeoutMs: 60_000, message: `${id}'s entities at its latest reading` },
    );
    expect(Object.keys(device.d.lastReading!.readings).sort()).toEqual(["humidity", "temperature"]);
    expect(Object.keys(device.v).sort()).toEqual(
      [...Object.keys(device.d.lastReading!.readings), ...(device.d.battery === null ? [] : ["battery"]), "problem", "status"].sort(),
    );
    expect(Object.values(device.v).every((e) => e.available)).toBe(true);
  });
});

describe.skipIf(!mosquittoAvailable())("a gateway restart on Mosquitto (Home Assistant stays connected)", () => {
  test("goes offline and online again and republishes every config, state and alert, but not a deleted device's", async () => {
    const mosq = await startMosquitto();
    cleanups.push(() => mosq.close());
    const dataDir = tempDir("ha-restart-");
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const config = { homeAssistant: { enabled: true }, alerts: { mqtt: true } };
    const gw1 = await startTestGateway({ dataDir, brokerUrl: mosq.url, config });
    const ha = await homeAssistant(mosq.url);
    for (const id of ["kitchen-1", "attic-3"]) {
      const dev = await device(mosq.url, id);
      await dev.publishAsync(`sensors/${id}/status`, '{"v":1,"state":"online"}', { qos: 1, retain: true });
      await dev.publishAsync(`sensors/${id}/telemetry`, telemetry(1, { temperature: 20 }, 3.2), { qos: 1 });
      await dev.endAsync();
    }
    await waitUntil(() => ha.view("kitchen-1")?.problem?.state === "ON" && ha.view("attic-3")?.problem?.state === "ON", { message: "both devices with their alert" });
    expect((await fetch(`${gw1.url}/api/devices/attic-3`, { method: "DELETE" })).status).toBe(204);
    await waitUntil(() => ![...ha.retained.keys()].some((t) => t.includes("attic-3")), { message: "attic-3 cleared" });
    await gw1.close();
    // the gateway is gone: every entity is unavailable (its values are stale), not only the readings
    await waitUntil(() => ha.retained.get("sleepy/gateway/status") === "offline", { message: "gateway offline" });
    expect(Object.values(ha.view("kitchen-1")!).map((e) => e.available)).toEqual([false, false, false, false]);

    const live = new Map(ha.live);
    const gw2 = await startTestGateway({ dataDir, brokerUrl: mosq.url, config });
    cleanups.push(() => gw2.close());
    const republished = () => [...ha.live].filter(([t, n]) => n > (live.get(t) ?? 0)).map(([t]) => t);
    // the Home Assistant part republishes last (after the gateway status and the alerts): its state topic is the barrier
    await waitUntil(() => republished().includes("sleepy/devices/kitchen-1/state"), { message: "kitchen-1 republished" });
    expect(ha.retained.get("sleepy/gateway/status")).toBe("online");
    const configs = ha.entities("kitchen-1").map((e) => `homeassistant/${e.component}/${e.nodeId}/${e.objectId}/config`);
    expect(configs.length).toBe(4); // temperature, battery, status, problem
    expect(republished()).toEqual(expect.arrayContaining([...configs, "sleepy/alerts/kitchen-1/battery-low", "sleepy/gateway/status"]));
    expect(republished().filter((t) => t.includes("attic-3"))).toEqual([]);
    expect(ha.view("kitchen-1")).toMatchObject({ temperature: { state: "20", available: true }, problem: { state: "ON" } });
  });
});

describe.skipIf(!mosquittoAvailable())("DELETE /api/devices/:id when the broker does not acknowledge (Mosquitto behind a proxy)", () => {
  async function setup() {
    const mosq = await startMosquitto();
    cleanups.push(() => mosq.close());
    const proxy = await startMqttProxy(Number(new URL(mosq.url).port));
    cleanups.push(() => proxy.close());
    const gw = await startTestGateway({ brokerUrl: proxy.url, config: { homeAssistant: { enabled: true }, alerts: { mqtt: true } } });
    cleanups.push(() => gw.close());
    const ha = await homeAssistant(mosq.url);
    const dev = await device(mosq.url, "porch-5");
    await dev.publishAsync("sensors/porch-5/status", '{"v":1,"state":"online"}', { qos: 1, retain: true });
    await dev.publishAsync("sensors/porch-5/telemetry", telemetry(1, { temperature: 12 }, 3.2), { qos: 1 });
    await waitUntil(() => ha.view("porch-5")?.problem?.state === "ON" && ha.retained.has("sleepy/alerts/porch-5/battery-low"), { message: "porch-5 with its alert" });
    const health = async () => (await (await fetch(`${gw.url}/healthz`)).json()) as { ok: boolean; broker: string; publisher?: string };
    const listed = async () => ((await (await fetch(`${gw.url}/api/devices`)).json()) as { devices: Array<{ deviceId: string }> }).devices.map((d) => d.deviceId);
    return { mosq, proxy, gw, ha, dev, health, listed };
  }

  test("with the publisher kicked off (its client id taken) it answers 503 and keeps everything; once back, DELETE clears it all", async () => {
    const { proxy, gw, ha, health, listed } = await setup();
    const entities = ha.entities("porch-5").length;
    proxy.block((id) => id.endsWith("-out"));
    await waitUntil(async () => (await health()).publisher === "down", { message: "publisher down" });
    expect(await health()).toMatchObject({ ok: true, broker: "up", publisher: "down" });

    const res = await fetch(`${gw.url}/api/devices/porch-5`, { method: "DELETE" });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("broker_unavailable");
    expect(await listed()).toContain("porch-5");

    proxy.unblock();
    await waitUntil(async () => (await health()).publisher === "up", { message: "publisher up again" });
    // nothing was removed: the entities, state and alert are all still retained
    expect(ha.entities("porch-5").length).toBe(entities);
    expect(ha.retained.has("sleepy/devices/porch-5/state")).toBe(true);
    expect((await fetch(`${gw.url}/api/devices/porch-5`, { method: "DELETE" })).status).toBe(204);
    // the broker acknowledged every removal before the 204: nothing is left, no wait needed beyond delivery to HA
    await waitUntil(() => ![...ha.retained.keys()].some((t) => t.includes("porch-5")), { message: "every porch-5 topic cleared" });
    expect(await listed()).not.toContain("porch-5");
  });

  test("a reading that arrives while DELETE waits for the broker is forgotten with the device: no entity is left behind", async () => {
    const { proxy, gw, ha, dev, listed } = await setup();
    proxy.freeze((id) => id.endsWith("-out")); // the removals wait; the intake (the bridge) goes on
    cleanups.push(() => proxy.thaw());
    const deleted = fetch(`${gw.url}/api/devices/porch-5`, { method: "DELETE" });
    // the DELETE is under way once the first removals are held (4 configs, sent together)
    await waitUntil(() => proxy.heldPublishes() >= 4, { message: "the removals sent" });
    // while it waits, a reading with a new key (a new entity) is stored
    await dev.publishAsync("sensors/porch-5/telemetry", telemetry(2, { temperature: 12, humidity: 70 }, 3.2), { qos: 1 });
    type Api = { devices: Array<{ deviceId: string; lastReading: { readings: Record<string, number> } | null }> };
    await waitUntil(async () => ((await (await fetch(`${gw.url}/api/devices`)).json()) as Api).devices[0]?.lastReading?.readings.humidity === 70, { message: "the racing reading stored" });
    proxy.thaw();
    expect((await deleted).status).toBe(204);
    await waitUntil(() => ![...ha.retained.keys()].some((t) => t.includes("porch-5")), { message: "every porch-5 topic cleared" });
    expect(await listed()).toEqual([]);
    // nothing was published for it since the DELETE began: no humidity entity ever appeared
    expect(ha.live.get("homeassistant/sensor/sleepy_porch-5/humidity/config")).toBeUndefined();
  });

  test("on a stalled link (no PUBACK, no close) it answers 503 within the acknowledgement timeout, and the entities come back", async () => {
    const { proxy, gw, ha, listed } = await setup();
    proxy.freeze();
    cleanups.push(() => proxy.thaw()); // before the gateway closes (cleanups run newest first)
    const started = Date.now();
    const res = await fetch(`${gw.url}/api/devices/porch-5`, { method: "DELETE" });
    expect(res.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(8_000); // the 5 s timeout, not a hang
    expect(await listed()).toContain("porch-5");

    // the link recovers: the delayed removals arrive, then the configs published again after the failure
    const configs = ha.entities("porch-5").map((e) => `homeassistant/${e.component}/${e.nodeId}/${e.objectId}/config`);
    const before = configs.map((t) => ha.live.get(t) ?? 0);
    proxy.thaw();
    await waitUntil(() => configs.every((t, i) => (ha.live.get(t) ?? 0) > before[i]!), { message: "configs published again" });
    await waitUntil(() => ha.view("porch-5")?.problem?.state === "ON" && ha.view("porch-5"), { message: "porch-5 entities back" });
    expect(ha.view("porch-5")).toMatchObject({ temperature: { state: "12" }, battery: { state: "3.2" } });
  }, 20_000);
});
