/**
 * The scaled-out mode end to end: two whole gateways (startGateway) on one Redis and one Mosquitto, each with its
 * own MQTT session and local replica. Every reading reaches both (each gateway receives every message), is
 * stored once, and both serve the same ids on SSE and the same /api/devices; alerts are decided once (the
 * leader's engine) and read, acknowledged and deleted alike on either; a Redis outage loses nothing.
 */
import { Redis } from "ioredis";
import mqtt, { type MqttClient } from "mqtt";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { GatewayConfigInput } from "../../gateway/src/config.ts";
import type { AlertData } from "../../gateway/src/protocol/events.ts";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { mosquittoAvailable, startMosquitto, type RunningMosquitto } from "../helpers/mosquitto.ts";
import { redisAvailable, startRedis, type RunningRedis } from "../helpers/redis.ts";
import { connectSse, type SseClient } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";

const telemetry = (seq: number, battery = 3.7, temperature = seq) => JSON.stringify({ v: 1, seq, boot: 1, t: null, readings: { temperature }, battery });
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
    alerts: GatewayConfigInput["alerts"] = {},
  ): Promise<{ gateways: TestGateway[]; streams: SseClient[]; pub: MqttClient }> {
    const keyPrefix = `fleet${++fleets}:`;
    const gateways: TestGateway[] = [];
    for (const name of ["a", "b"]) {
      const config = { auth, summaries, alerts, redis: { url: redis.url, keyPrefix }, mqtt: { clientId: `${keyPrefix.slice(0, -1)}-gw-${name}` } };
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

  const alertsOf = async (gw: TestGateway, query = "state=all") =>
    ((await (await fetch(`${gw.url}/api/alerts?${query}`)).json()) as { alerts: AlertData[] }).alerts;
  /** Alert changes this gateway decided (its engine's), by change: only the leader's engine decides. */
  const decided = async (gw: TestGateway, change: "firing" | "resolved" | "acked") =>
    [...(await (await fetch(`${gw.url}/metrics`)).text()).matchAll(new RegExp(`^gateway_alert_transitions_total\\{[^}]*change="${change}"[^}]*\\} (\\d+)$`, "gm"))]
      .reduce((sum, m) => sum + Number(m[1]), 0);

  /** A webhook receiver on loopback: the alerts POSTed to it, in order. */
  async function hookReceiver(): Promise<{ url: string; got: AlertData[] }> {
    const got: AlertData[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        got.push((JSON.parse(Buffer.concat(chunks).toString()) as { alert: AlertData }).alert);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got };
  }

  it("an alert fires once (the leader's engine), with the same id on both gateways' API and SSE; acked on one, acked on both; a device deleted on one is gone on both", async () => {
    const hook = await hookReceiver();
    const { gateways, pub } = await fleet({ mode: "open" }, {}, { webhooks: [{ url: hook.url, secret: "webhook-secret-0123456789" }] });
    const deviceId = `rm-alert-${fleets}`;
    const alertStreams = await Promise.all(gateways.map((gw) => connectSse(gw.url, { topics: [`sensors/${deviceId}/alert`] })));
    for (const s of alertStreams) cleanups.push(() => s.close());
    await pub.publishAsync(`sensors/${deviceId}/telemetry`, telemetry(1, 3.1), { qos: 1 }); // below battery-low's 3.4 V
    for (const gw of gateways) await waitUntil(async () => (await alertsOf(gw)).length === 1, { message: "the battery alert on every gateway" });
    const [onA, onB] = await Promise.all(gateways.map((gw) => alertsOf(gw)));
    expect(onA).toEqual(onB);
    expect(onA).toMatchObject([{ ruleId: "battery-low", kind: "battery", deviceId, state: "firing", value: 3.1, ackedAt: null }]);
    const alertId = onA![0]!.alertId;
    for (const s of alertStreams) {
      const [event] = await s.waitForEvents(1);
      expect(event!.json).toEqual(onA![0]);
    }
    expect(alertStreams[0]!.events.map((e) => e.id)).toEqual(alertStreams[1]!.events.map((e) => e.id));
    // both gateways received the reading; one decided
    const fired = await Promise.all(gateways.map((gw) => decided(gw, "firing")));
    expect(fired.sort()).toEqual([0, 1]);
    const follower = gateways[(await decided(gateways[0]!, "firing")) === 1 ? 1 : 0]!;
    const leader = gateways.find((gw) => gw !== follower)!;

    // acknowledged on the follower: an `alert` event through the shared log, seen by the leader's table too
    const ack = await fetch(`${follower.url}/api/alerts/${alertId}/ack`, { method: "POST" });
    expect(ack.status).toBe(200);
    const acked = ((await ack.json()) as { alert: AlertData }).alert;
    expect(acked).toMatchObject({ alertId, state: "firing", ackedBy: "open" });
    await waitUntil(async () => (await alertsOf(leader))[0]?.ackedAt === acked.ackedAt, { message: "acked on the leader" });
    expect(await alertsOf(leader)).toEqual(await alertsOf(follower));
    const again = ((await (await fetch(`${leader.url}/api/alerts/${alertId}/ack`, { method: "POST" })).json()) as { alert: AlertData }).alert;
    expect(again).toEqual(acked); // the first ack stays

    // the reading that clears it, on the leader's engine (which had the ack from the other gateway)
    await pub.publishAsync(`sensors/${deviceId}/telemetry`, telemetry(2, 3.7), { qos: 1 });
    for (const gw of gateways) await waitUntil(async () => (await alertsOf(gw))[0]?.state === "resolved", { message: "resolved on every gateway" });
    expect(await alertsOf(follower)).toEqual(await alertsOf(leader));
    expect(await alertsOf(leader)).toMatchObject([{ alertId, state: "resolved", ackedAt: acked.ackedAt, ackedBy: "open" }]);
    for (const s of alertStreams) await s.waitForEvents(3);
    expect(alertStreams[0]!.events.map((e) => [e.id, e.json.state])).toEqual(alertStreams[1]!.events.map((e) => [e.id, e.json.state]));
    expect(await Promise.all(gateways.map((gw) => decided(gw, "resolved")))).toEqual(leader === gateways[0] ? [1, 0] : [0, 1]);

    // webhooks: the leader's sinks only, each change once, the ack made on the follower included
    await waitUntil(() => hook.got.length === 3, { message: "three webhook deliveries" });
    expect(hook.got.map((a) => [a.alertId, a.state, a.ackedBy])).toEqual([
      [alertId, "firing", null],
      [alertId, "firing", "open"],
      [alertId, "resolved", "open"],
    ]);
    const delivered = async (gw: TestGateway) => Number(/^gateway_webhook_deliveries_total (\d+)$/m.exec(await (await fetch(`${gw.url}/metrics`)).text())?.[1] ?? 0);
    expect(await delivered(leader)).toBe(3);
    expect(await delivered(follower)).toBe(0);

    // deleted on the follower: gone from both gateways
    expect((await fetch(`${follower.url}/api/devices/${deviceId}`, { method: "DELETE" })).status).toBe(204);
    for (const gw of gateways) await waitUntil(async () => (await fetch(`${gw.url}/api/devices/${deviceId}`)).status === 404, { message: "deleted everywhere" });
    for (const gw of gateways) expect(((await devices(gw)) as Array<{ deviceId: string }>).map((d) => d.deviceId)).not.toContain(deviceId);
  });

  it("a rule set on the follower is every gateway's and the leader's engine applies it", async () => {
    const { gateways, pub } = await fleet({ mode: "open" }, {}, { checkIntervalMs: 100 });
    const [a, b] = gateways as [TestGateway, TestGateway]; // a started first and holds the lease
    const deviceId = `rm-rule-${fleets}`;
    const put = await fetch(`${b.url}/api/alert-rules/hot`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ kind: "threshold", metric: "temperature", above: 30 }),
    });
    expect(put.status).toBe(200);
    const rules = async (gw: TestGateway) => (await (await fetch(`${gw.url}/api/alert-rules`)).json()) as { rules: Array<{ id: string; source: string }> };
    expect(await rules(a)).toEqual(await rules(b));
    expect((await rules(a)).rules).toContainEqual(expect.objectContaining({ id: "hot", source: "api", above: 30 }));
    // the leader reads the rules again every checkIntervalMs: send readings until one is evaluated with the rule
    let seq = 0;
    await waitUntil(
      async () => {
        await pub.publishAsync(`sensors/${deviceId}/telemetry`, telemetry(++seq, 3.7, 35), { qos: 1 });
        return (await alertsOf(b, "state=firing")).some((x) => x.ruleId === "hot");
      },
      { intervalMs: 100, message: "the rule set on b fires" },
    );
    await waitUntil(async () => (await alertsOf(a, "state=firing")).length === 1, { message: "the same alert on a" });
    expect(await alertsOf(a)).toEqual(await alertsOf(b));
    expect(await alertsOf(a)).toMatchObject([{ ruleId: "hot", deviceId, value: 35, threshold: 30 }]);
    expect(await decided(a, "firing")).toBe(1);
    expect(await decided(b, "firing")).toBe(0);
    // removed on a: its alert resolves (the rule is gone), everywhere
    expect((await fetch(`${a.url}/api/alert-rules/hot`, { method: "DELETE" })).status).toBe(200);
    for (const gw of gateways) await waitUntil(async () => (await alertsOf(gw, "state=firing")).length === 0, { message: "resolved with its rule" });
  });

  it("when the leader closes, the other gateway takes the engine over from the table: a firing alert resolves, an overdue one fires", async () => {
    const { gateways, pub } = await fleet({ mode: "open" }, {}, { checkIntervalMs: 100, rules: [{ id: "overdue", factor: 1, graceS: 0 }] });
    const [a, b] = gateways as [TestGateway, TestGateway];
    const low = `rm-takeover-${fleets}`;
    const sleepy = `rm-sleepy-${fleets}`;
    await pub.publishAsync(`sensors/${low}/telemetry`, telemetry(1, 3.1), { qos: 1 });
    await waitUntil(async () => (await alertsOf(b, "state=firing")).length === 1, { message: "battery alert" });
    expect(await decided(a, "firing")).toBe(1);
    const [battery] = await alertsOf(b);
    // a sleeper due in 3 s: by then a is gone
    await pub.publishAsync(`sensors/${sleepy}/status`, JSON.stringify({ v: 1, state: "sleeping", sleepMs: 3_000 }), { qos: 1, retain: true });
    await waitUntil(async () => (await devices(b)).some((d) => (d as { deviceId: string }).deviceId === sleepy), { message: "the sleeper on b" });
    await a.close();
    // b becomes leader at its next lease round (≤ 10 s): readings before that are not evaluated, so keep sending
    let seq = 1;
    await waitUntil(
      async () => {
        await pub.publishAsync(`sensors/${low}/telemetry`, telemetry(++seq, 3.7), { qos: 1 });
        return (await alertsOf(b)).find((x) => x.alertId === battery!.alertId)?.state === "resolved";
      },
      { timeoutMs: 20_000, intervalMs: 250, message: "the battery alert resolved by b" },
    );
    await waitUntil(async () => (await alertsOf(b, "state=firing")).some((x) => x.deviceId === sleepy && x.kind === "overdue"), {
      timeoutMs: 20_000,
      message: "b's clock finds the sleeper overdue",
    });
    expect(await decided(b, "resolved")).toBe(1);
    expect(await decided(b, "firing")).toBe(1); // the overdue alert; the battery one was not fired again
    expect((await alertsOf(b)).filter((x) => x.deviceId === low)).toHaveLength(1);
    await pub.publishAsync(`sensors/${sleepy}/status`, "", { qos: 1, retain: true });
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

  it("only the leader publishes for other tools (Home Assistant, gateway status); a follower stopping leaves it online", async () => {
    const keyPrefix = `fleet${++fleets}:`;
    const name = keyPrefix.slice(0, -1);
    const start = async (gw: string) => {
      const config = {
        auth: { mode: "open" as const },
        redis: { url: redis.url, keyPrefix },
        mqtt: { clientId: `${name}-gw-${gw}` },
        homeAssistant: { enabled: true, discoveryPrefix: `ha-${name}` },
      };
      const started = await startTestGateway({ brokerUrl: mosq.url, config });
      cleanups.push(() => started.close());
      return started;
    };
    const a = await start("a"); // opens first: takes the leader lease
    const b = await start("b");
    const retainedStatus = async () => {
      const c = await mqtt.connectAsync(mosq.url, { clientId: `${name}-status-${Date.now()}`, clean: true, reconnectPeriod: 0 });
      try {
        const got = new Promise<string>((r) => c.on("message", (_t, p) => r(p.toString())));
        await c.subscribeAsync("sleepy/gateway/status", { qos: 1 });
        return await got;
      } finally {
        await c.endAsync(true);
      }
    };
    await waitUntil(async () => (await retainedStatus()) === "online", { message: "the leader's status online" });
    const pub = await mqtt.connectAsync(mosq.url, { clientId: `${name}-dev`, reconnectPeriod: 0 });
    cleanups.push(() => pub.endAsync(true));
    const watcher = await mqtt.connectAsync(mosq.url, { clientId: `${name}-watch`, clean: true, reconnectPeriod: 0 });
    cleanups.push(() => watcher.endAsync(true));
    const discovery: string[] = [];
    watcher.on("message", (topic) => discovery.push(topic));
    await watcher.subscribeAsync(`ha-${name}/#`, { qos: 1 });
    await pub.publishAsync(`sensors/${name}-ha/telemetry`, telemetry(1), { qos: 1 });
    await waitUntil(() => discovery.some((t) => t.includes(`${name}-ha`)), { message: "Home Assistant discovery for the device" });
    for (const gw of [a, b]) await waitUntil(async () => (await devices(gw)).length === 1, { message: "both replicas have the device" });
    // the follower's publisher never connected: nothing it could have published twice
    expect(mosq.log()).toContain(`as ${name}-gw-a-out`);
    expect(mosq.log()).not.toContain(`as ${name}-gw-b-out`);
    await b.close();
    expect(await retainedStatus()).toBe("online"); // a follower stopping is not the service going offline
    await a.close();
    expect(await retainedStatus()).toBe("offline"); // the last gateway (the leader) stopping is
  });
});
