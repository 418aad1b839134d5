/**
 * The scaled-out mode end to end: two whole gateways (startGateway) on one Redis and one Mosquitto, each with its
 * own MQTT session and local replica. Every reading reaches both (each gateway receives every message), is
 * stored once, and both serve the same ids on SSE and the same /api/devices; a Redis outage loses nothing.
 */
import { Redis } from "ioredis";
import mqtt, { type MqttClient } from "mqtt";
import { readFileSync } from "node:fs";
import type { GatewayConfigInput } from "../../gateway/src/config.ts";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { mosquittoAvailable, startMosquitto, type RunningMosquitto } from "../helpers/mosquitto.ts";
import { redisAvailable, startRedis, type RunningRedis } from "../helpers/redis.ts";
import { connectSse, type SseClient } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";

const telemetry = (seq: number) => JSON.stringify({ v: 1, seq, boot: 1, t: null, readings: { temperature: seq }, battery: 3.7 });
const ready = redisAvailable() && mosquittoAvailable();
let fleets = 0;

describe.skipIf(!ready)("Redis mode: two gateways on one Redis and one broker", () => {
  let redis: RunningRedis;
  let mosq: RunningMosquitto;
  const cleanups: Array<() => unknown> = [];
  beforeAll(async () => {
    redis = await startRedis();
    mosq = await startMosquitto();
  });
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });
  afterAll(async () => {
    await mosq?.close();
    await redis?.close();
  });

  async function fleet(
    auth: GatewayConfigInput["auth"] = { mode: "open" },
    summaries: GatewayConfigInput["summaries"] = {},
  ): Promise<{ gateways: TestGateway[]; streams: SseClient[]; pub: MqttClient }> {
    const keyPrefix = `fleet${++fleets}:`;
    const gateways: TestGateway[] = [];
    for (const name of ["a", "b"]) {
      const config = { auth, summaries, redis: { url: redis.url, keyPrefix }, mqtt: { clientId: `${keyPrefix.slice(0, -1)}-gw-${name}` } };
      const gw = await startTestGateway({ brokerUrl: mosq.url, config });
      cleanups.push(() => gw.close());
      gateways.push(gw);
    }
    const streams: SseClient[] = [];
    for (const gw of gateways) {
      const s = await connectSse(gw.url, { topics: ["sensors/+/telemetry"], token: gw.adminToken?.token });
      cleanups.push(() => s.close());
      streams.push(s);
    }
    const pub = await mqtt.connectAsync(mosq.url, { clientId: `${keyPrefix.slice(0, -1)}-dev`, clean: false, reconnectPeriod: 100 });
    cleanups.push(() => pub.endAsync(true));
    return { gateways, streams, pub };
  }

  const devices = async (gw: TestGateway) => ((await (await fetch(`${gw.url}/api/devices`)).json()) as { devices: unknown[] }).devices;

  it("each gateway's SSE and /api/devices see every reading exactly once, with the same ids", async () => {
    const { gateways, streams, pub } = await fleet();
    for (let seq = 1; seq <= 20; seq++) await pub.publishAsync("sensors/rm-1/telemetry", telemetry(seq), { qos: 1 });
    const seen = await Promise.all(streams.map((s) => s.waitForEvents(20)));
    for (const events of seen) {
      expect(events.map((e) => e.json.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(events.map((e) => Number(e.id))).toEqual(Array.from({ length: 20 }, (_, i) => i + 1)); // no copy took an id
    }
    const [onA, onB] = await Promise.all(gateways.map(devices));
    expect(onA).toEqual(onB);
    expect(onA).toMatchObject([{ deviceId: "rm-1", lastReading: { seq: 20 } }]);
    const health = (await (await fetch(`${gateways[1]!.url}/healthz`)).json()) as Record<string, unknown>;
    expect(health).toMatchObject({ ok: true, redis: "up" });
    // alerts are not shared yet: said so, not answered with an empty list
    const alerts = await fetch(`${gateways[0]!.url}/api/alerts`);
    expect(alerts.status).toBe(501);
    expect(await alerts.json()).toMatchObject({ error: { code: "not_shared" } });
    expect((await fetch(`${gateways[0]!.url}/api/alert-rules/r1`, { method: "DELETE" })).status).toBe(501);
  });

  it("a status stored by one gateway is a no-op when the other's session redelivers it later (past any time window)", async () => {
    const { gateways, pub } = await fleet();
    const [a, b] = gateways as [TestGateway, TestGateway];
    const deviceId = `rm-st-${fleets}`;
    expect(b.dataDir).toBeTruthy();
    const statuses = await connectSse(a.url, { topics: [`sensors/${deviceId}/status`] });
    cleanups.push(() => statuses.close());
    const report = (body: object) => pub.publishAsync(`sensors/${deviceId}/status`, JSON.stringify({ v: 1, ...body }), { qos: 1, retain: true });
    cleanups.push(() => pub.publishAsync(`sensors/${deviceId}/status`, "", { qos: 1, retain: true })); // not replayed to later fleets
    await report({ state: "online", boot: 7 });
    await statuses.waitForEvents(1);
    // b goes away; its persistent session keeps what the device sends meanwhile
    const bDir = b.dataDir;
    const keyPrefix = `fleet${fleets}:`;
    const bConfig = { auth: { mode: "open" as const }, redis: { url: redis.url, keyPrefix }, mqtt: { clientId: `fleet${fleets}-gw-b` } };
    await b.close();
    await report({ state: "online", boot: 8 });
    await report({ state: "sleeping", boot: 8, sleepMs: 60_000, wake: { total: 900 } });
    await statuses.waitForEvents(3);
    const before = (await (await fetch(`${a.url}/api/devices`)).json()) as { devices: Array<{ deviceId: string; status: string; nextWakeAt: number }> };
    // more than the 2 s de-duplication window of a Last Will: the copies must be recognised by what they say
    const stored = Date.now();
    await waitUntil(() => Date.now() > stored + 2_100, { message: "2 s to pass", timeoutMs: 5_000 });
    const again = await startTestGateway({ brokerUrl: mosq.url, dataDir: bDir, config: bConfig });
    cleanups.push(() => again.close());
    // b's session redelivered online(8) and sleeping(8); each is a copy of what a stored
    await waitUntil(async () => Number(/^gateway_mqtt_messages_in_total\{kind="status"\} (\d+)$/m.exec(await (await fetch(`${again.url}/metrics`)).text())?.[1] ?? 0) >= 2, {
      message: "b to receive the redelivered statuses",
    });
    // a marker after them (another device: a reading would end the sleep), applied once b handled them
    await pub.publishAsync(`sensors/${deviceId}-mark/telemetry`, telemetry(1), { qos: 1 });
    const devicesOn = async (gw: TestGateway) =>
      ((await (await fetch(`${gw.url}/api/devices`)).json()) as { devices: Array<{ deviceId: string; status: string; nextWakeAt: number | null }> }).devices;
    await waitUntil(async () => (await devicesOn(again)).some((d) => d.deviceId === `${deviceId}-mark`), { message: "b applied the marker" });
    expect(statuses.events.map((e) => e.json.state)).toEqual(["online", "online", "sleeping"]); // no copy stored
    const was = before.devices.find((d) => d.deviceId === deviceId)!;
    expect(was).toMatchObject({ status: "sleeping" });
    // the redelivery moved nothing: the wake is still the one announced when a received the report
    for (const gw of [a, again]) expect((await devicesOn(gw)).find((d) => d.deviceId === deviceId)).toMatchObject({ status: "sleeping", nextWakeAt: was.nextWakeAt });
  });

  it("summary events come from one gateway (the leader), not one per gateway, and both stream them", async () => {
    const { gateways, pub } = await fleet({ mode: "open" }, { coalesceMs: 100 });
    const summaries = await Promise.all(gateways.map((gw) => connectSse(gw.url, { topics: ["sensors/+/summary"] })));
    for (const s of summaries) cleanups.push(() => s.close());
    // summary events each gateway appended to the shared log (its own counter)
    const published = async (gw: TestGateway) =>
      Number(/^gateway_events_stored_total\{kind="summary"\} (\d+)$/m.exec(await (await fetch(`${gw.url}/metrics`)).text())?.[1] ?? 0);
    for (let n = 1; n <= 3; n++) {
      // a device per round: each round is one more change for every gateway's publisher to see
      await pub.publishAsync(`sensors/rm-sum-${fleets}-${n}/telemetry`, telemetry(n), { qos: 1 });
      for (const s of summaries) await waitUntil(() => s.events.some((e) => e.json.deviceId === `rm-sum-${fleets}-${n}`), { message: `summary ${n}` });
    }
    expect(summaries[0]!.events.map((e) => e.id)).toEqual(summaries[1]!.events.map((e) => e.id));
    const counts = await Promise.all(gateways.map(published));
    expect(counts.filter((c) => c > 0)).toHaveLength(1); // one publisher; every gateway had the changes
    expect(counts[0]! + counts[1]!).toBe(summaries[0]!.events.length);
    expect(new Set(summaries[0]!.events.map((e) => e.json.deviceId)).size).toBe(summaries[0]!.events.length); // one event per change
  });

  it("with token auth, every gateway has the first one's admin token: one login works on all", async () => {
    const { gateways } = await fleet({ mode: "tokens" });
    const [a, b] = gateways as [TestGateway, TestGateway];
    expect(a.adminToken!.token).toMatch(/^\S{16,}$/);
    expect(b.adminToken!.token).toBe(a.adminToken!.token);
    expect(readFileSync(b.adminToken!.file, "utf8").trim()).toBe(a.adminToken!.token);
    const onB = await fetch(`${b.url}/api/devices`, { headers: { Authorization: `Bearer ${a.adminToken!.token}` } });
    expect(onB.status).toBe(200);
    expect((await fetch(`${b.url}/api/devices`)).status).toBe(401);
  });

  it("a command created on one gateway is visible on the other and acked on both, each change stored once", async () => {
    const { gateways } = await fleet();
    const [a, b] = gateways as [TestGateway, TestGateway];
    const deviceId = `rm-cmd-${fleets}`;
    const commandStream = await connectSse(b.url, { topics: [`sensors/${deviceId}/cmd`] });
    cleanups.push(() => commandStream.close());
    const dev = await mqtt.connectAsync(mosq.url, { clientId: deviceId, clean: false, reconnectPeriod: 0 });
    cleanups.push(() => dev.endAsync(true));
    await dev.subscribeAsync(`sensors/${deviceId}/cmd`, { qos: 1 });
    dev.on("message", (_t, p) => {
      const cmd = JSON.parse(p.toString()) as { id: string; op: string };
      void dev.publishAsync(`sensors/${deviceId}/cmd/ack`, JSON.stringify({ v: 1, id: cmd.id, op: cmd.op, ok: true }), { qos: 1 });
    });
    const res = await fetch(`${a.url}/api/devices/${deviceId}/commands`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ op: "set-interval", seconds: 120 }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const command = async (gw: TestGateway) => (await (await fetch(`${gw.url}/api/devices/${deviceId}/commands/${id}`)).json()) as Record<string, unknown>;
    for (const gw of gateways) await waitUntil(async () => (await command(gw)).state === "acked", { message: "acked on every gateway" });
    expect(await command(b)).toEqual(await command(a));
    expect(await command(b)).toMatchObject({ id, deviceId, op: "set-interval", args: { seconds: 120 }, state: "acked", error: null });
    // both gateways received the ack and tried the change: one `acked` event
    await commandStream.waitForEvents(2);
    expect(commandStream.events.map((e) => e.json.state)).toEqual(["queued", "acked"]);
  });

  it("Redis at maxmemory: unhealthy and nothing acknowledged, no reconnect loop; once it takes writes the reading arrives", async () => {
    const { gateways, streams, pub } = await fleet();
    const [a] = gateways as [TestGateway, TestGateway];
    await pub.publishAsync("sensors/rm-oom/telemetry", telemetry(1), { qos: 1 });
    await Promise.all(streams.map((s) => s.waitForEvents(1)));
    const admin = new Redis(redis.url);
    cleanups.push(() => admin.quit());
    const metric = async (gw: TestGateway, name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(await (await fetch(`${gw.url}/metrics`)).text())?.[1] ?? 0);
    try {
      await admin.config("SET", "maxmemory-policy", "noeviction");
      await admin.config("SET", "maxmemory", "1");
      await pub.publishAsync("sensors/rm-oom/telemetry", telemetry(2), { qos: 1 });
      for (const gw of gateways) {
        await waitUntil(async () => (await fetch(`${gw.url}/healthz`)).status === 503, { message: "/healthz 503" });
        await waitUntil(async () => (await metric(gw, "gateway_redis_append_failures_total")) >= 1, { message: "the failed append counted" });
      }
      expect(await metric(a, "gateway_redis_up")).toBe(0);
      // a command that cannot be stored is refused as such, and nothing is sent
      const refused = await fetch(`${a.url}/api/devices/rm-oom/commands`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ op: "ping" }) });
      expect(refused.status).toBe(503);
      expect(await refused.json()).toMatchObject({ error: { code: "store_unavailable" } });
      // while Redis refuses writes the bridge does not reconnect for redelivery (before: every ~1.5 s, forever)
      const since = Date.now();
      await waitUntil(() => Date.now() > since + 3_000, { message: "3 s to pass", timeoutMs: 5_000 });
      for (const gw of gateways) expect(await metric(gw, "gateway_mqtt_redelivery_reconnects_total")).toBe(0);
    } finally {
      await admin.config("SET", "maxmemory", "0");
    }
    const all = await Promise.all(streams.map((s) => s.waitForEvents(2, () => true, 20_000)));
    for (const events of all) expect(events.map((e) => e.json.seq)).toEqual([1, 2]);
    for (const gw of gateways) {
      // the other gateway's copy may have arrived first: its own probe write makes it healthy within a second or so
      await waitUntil(async () => (await fetch(`${gw.url}/healthz`)).status === 200, { message: "/healthz 200 again" });
      expect(await metric(gw, "gateway_mqtt_redelivery_reconnects_total")).toBeLessThanOrEqual(1);
    }
  });

  it("while Redis is down the gateways say so and acknowledge nothing; after it restarts every reading arrives once", async () => {
    const { gateways, streams, pub } = await fleet();
    for (let seq = 1; seq <= 3; seq++) await pub.publishAsync("sensors/rm-2/telemetry", telemetry(seq), { qos: 1 });
    await Promise.all(streams.map((s) => s.waitForEvents(3)));
    await redis.kill();
    for (const gw of gateways) {
      await waitUntil(async () => (await fetch(`${gw.url}/healthz`)).status === 503, { message: "/healthz 503" });
      expect(await (await fetch(`${gw.url}/healthz`)).json()).toMatchObject({ ok: false, redis: "down", db: "up" });
      expect(await (await fetch(`${gw.url}/metrics`)).text()).toMatch(/^gateway_redis_up 0$/m);
    }
    for (let seq = 4; seq <= 8; seq++) await pub.publishAsync("sensors/rm-2/telemetry", telemetry(seq), { qos: 1 }); // the broker holds them
    await redis.start();
    const all = await Promise.all(streams.map((s) => s.waitForEvents(8, () => true, 20_000)));
    for (const events of all) {
      expect(events.map((e) => e.json.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(events.map((e) => Number(e.id))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    }
    for (const gw of gateways) {
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      expect(metrics).toMatch(/^gateway_redis_up 1$/m);
      // they were refused while Redis was down (no PUBACK), and came back as redeliveries
      expect(Number(/^gateway_mqtt_messages_not_acked_total\{reason="store_failed"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    }
  });
});
