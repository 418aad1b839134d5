/** MQTT → gateway → SSE relay: payloads, filters, dedupe, bad input (issue 2 gateway part, issue 4). */
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestGateway } from "../helpers/gateway.ts";
import { connectSse, ErrSseHttp, type SseClient } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";
import { brokerKinds } from "./broker-kinds.ts";

const telemetry = (seq: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ v: 1, seq, boot: 1, t: 1764081000000 + seq, readings: { temperature: 20 + seq / 10, humidity: 40 }, battery: 3.7, ...extra });

describe.each(brokerKinds())("relay via $name broker", (kind) => {
  let gw: TestGateway;
  let pub: MqttClient;
  const streams: SseClient[] = [];
  const open = async (...args: Parameters<typeof connectSse>) => {
    const s = await connectSse(...args);
    streams.push(s);
    return s;
  };

  beforeAll(async () => {
    gw = await kind.startGateway();
    pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: `relay-pub-${kind.name}`, reconnectPeriod: 0 });
  });
  afterAll(async () => {
    for (const s of streams) s.close();
    await pub?.endAsync();
    await gw?.close();
  });

  it("relays telemetry and status with ids, kinds and the documented fields", async () => {
    const sse = await open(gw.url);
    expect(sse.response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(sse.response.headers.get("x-accel-buffering")).toBe("no");
    expect(sse.response.headers.get("cache-control")).toBe("no-cache");
    expect(sse.response.headers.get("content-encoding")).toBeNull();
    await pub.publishAsync("sensors/dev-a/status", JSON.stringify({ v: 1, state: "online", boot: 1 }), { qos: 1, retain: true });
    await pub.publishAsync("sensors/dev-a/telemetry", telemetry(1), { qos: 1 });
    const [status, tele] = await sse.waitForEvents(2, (e) => e.event === "status" || e.event === "telemetry");
    expect(sse.retry).toBe(2000);
    expect(status.event).toBe("status");
    expect(status.json).toMatchObject({ deviceId: "dev-a", topic: "sensors/dev-a/status", state: "online", sleepMs: null, nextWakeAt: null });
    expect(tele.json).toMatchObject({ deviceId: "dev-a", topic: "sensors/dev-a/telemetry", seq: 1, boot: 1, battery: 3.7, dropped: 0, corrupt: 0 });
    expect(tele.json.readings).toEqual({ temperature: 20.1, humidity: 40 });
    expect(typeof tele.json.receivedAt).toBe("number");
    expect(Number(tele.id)).toBeGreaterThan(Number(status.id));

    await pub.publishAsync("sensors/dev-a/status", JSON.stringify({ v: 1, state: "sleeping", sleepMs: 60000, boot: 1 }), { qos: 1, retain: true });
    await sse.waitFor((ev) => ev.some((e) => e.event === "status" && e.json.state === "sleeping"));
    const sleeping = sse.ofKind("status").find((e) => e.json.state === "sleeping")!;
    expect(sleeping.json.nextWakeAt).toBe(sleeping.json.receivedAt + 60000);

    const devices = (await (await fetch(`${gw.url}/api/devices`)).json()) as { devices: any[] };
    const dev = devices.devices.find((d) => d.deviceId === "dev-a");
    expect(dev).toMatchObject({ status: "sleeping", battery: 3.7, lastReading: { seq: 1, readings: { temperature: 20.1, humidity: 40 } } });
    expect(dev.nextWakeAt).toBe(sleeping.json.nextWakeAt);
  });

  it("de-duplicates readings on (deviceId, seq) and counts the duplicates", async () => {
    const sse = await open(gw.url, { topics: ["sensors/dup-dev/telemetry"] });
    for (const seq of [1, 2, 2, 1, 3]) await pub.publishAsync("sensors/dup-dev/telemetry", telemetry(seq), { qos: 1 });
    await sse.waitForEvents(3);
    await pub.publishAsync("sensors/dup-dev/telemetry", telemetry(4), { qos: 1 });
    const events = await sse.waitForEvents(4);
    expect(events.map((e) => e.json.seq)).toEqual([1, 2, 3, 4]);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/gateway_duplicate_readings_total (\d+)/);
    expect(Number(/gateway_duplicate_readings_total (\d+)/.exec(metrics)![1])).toBeGreaterThanOrEqual(2);
  });

  it("applies topic filters with MQTT wildcard semantics", async () => {
    const plus = await open(gw.url, { topics: ["sensors/+/telemetry"] });
    const hash = await open(gw.url, { topics: ["sensors/f1/#"] });
    const exact = await open(gw.url, { topics: ["sensors/f2/status"] });
    const two = await open(gw.url, { topics: ["sensors/f1/status", "sensors/f2/telemetry"] });
    await pub.publishAsync("sensors/f1/telemetry", telemetry(1), { qos: 1 });
    await pub.publishAsync("sensors/f1/status", JSON.stringify({ v: 1, state: "online" }), { qos: 1 });
    await pub.publishAsync("sensors/f2/telemetry", telemetry(1), { qos: 1 });
    await pub.publishAsync("sensors/f2/status", JSON.stringify({ v: 1, state: "offline" }), { qos: 1 });
    // A marker that every stream below can see proves the earlier events were delivered (or filtered).
    await pub.publishAsync("sensors/f1/telemetry", telemetry(2), { qos: 1 });
    await plus.waitForEvents(3);
    await hash.waitForEvents(3);
    await exact.waitForEvents(1);
    await two.waitForEvents(2);
    await hash.waitFor((ev) => ev.some((e) => e.json?.seq === 2));
    const topics = (s: SseClient) => s.events.map((e) => e.json.topic);
    expect(topics(plus)).toEqual(["sensors/f1/telemetry", "sensors/f2/telemetry", "sensors/f1/telemetry"]);
    expect(topics(hash)).toEqual(["sensors/f1/telemetry", "sensors/f1/status", "sensors/f1/telemetry"]);
    expect(topics(exact)).toEqual(["sensors/f2/status"]);
    expect(topics(two)).toEqual(["sensors/f1/status", "sensors/f2/telemetry"]);
  });

  it("answers 400 with a JSON error for invalid filters", async () => {
    for (const bad of ["sensors/#/x", "sensors/a+", "", "a/b#", "#/a"]) {
      const err = await connectSse(gw.url, { topics: [bad] }).catch((e: unknown) => e);
      expect(err, bad).toBeInstanceOf(ErrSseHttp);
      expect((err as ErrSseHttp).status).toBe(400);
      expect(JSON.parse((err as ErrSseHttp).body)).toMatchObject({ error: { code: "invalid_topic_filter" } });
    }
    const badId = await connectSse(gw.url, { lastEventId: "abc" }).catch((e: unknown) => e);
    expect((badId as ErrSseHttp).status).toBe(400);
  });

  it("rejects and counts malformed payloads without relaying them", async () => {
    const sse = await open(gw.url, { topics: ["sensors/bad-dev/#"] });
    const bad: Array<[string, string | Buffer]> = [
      ["sensors/bad-dev/telemetry", "not json"],
      ["sensors/bad-dev/telemetry", Buffer.from([0xff, 0xfe, 0x00])],
      ["sensors/bad-dev/telemetry", JSON.stringify({ v: 1, seq: -1, boot: 0, t: null, readings: {}, battery: null })],
      ["sensors/bad-dev/telemetry", JSON.stringify({ v: 1, seq: 1, boot: 0, t: null, readings: { Temp: 1 }, battery: null })],
      ["sensors/bad-dev/telemetry", telemetry(5, { pad: "x".repeat(1100) })],
      ["sensors/bad-dev/status", JSON.stringify({ v: 1, state: "sleeping" })],
      ["sensors/bad-dev/cmd/ack", JSON.stringify({ v: 1, id: "bad id!", op: "ping", ok: true })],
      ["sensors/bad-dev/telemetry", "[]"],
      ["sensors/bad-dev/telemetry", "null"],
    ];
    for (const [topic, payload] of bad) await pub.publishAsync(topic, payload, { qos: 1 });
    await pub.publishAsync("sensors/bad-dev/telemetry", telemetry(7), { qos: 1 });
    const events = await sse.waitForEvents(1);
    expect(events).toHaveLength(1);
    expect(events[0].json.seq).toBe(7);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    const rejected = [...metrics.matchAll(/gateway_mqtt_messages_rejected_total\{reason="(\w+)"\} (\d+)/g)];
    const byReason = Object.fromEntries(rejected.map((m) => [m[1], Number(m[2])]));
    expect(byReason.not_json).toBeGreaterThanOrEqual(2);
    expect(byReason.too_large).toBeGreaterThanOrEqual(1);
    expect(byReason.bad_shape).toBeGreaterThanOrEqual(6);
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  });

  it("releases a disconnected SSE client (client gauge back to its previous value)", async () => {
    const clients = async () => Number(/^gateway_sse_clients (\d+)/m.exec(await (await fetch(`${gw.url}/metrics`)).text())![1]);
    const before = await clients();
    const s = await connectSse(gw.url);
    await waitUntil(async () => (await clients()) === before + 1, { message: "client counted" });
    s.close();
    await waitUntil(async () => (await clients()) === before, { message: "client released" });
    expect(await clients()).toBe(before);
  });
});
