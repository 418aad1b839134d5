/**
 * Reading time (docs/protocol.md "Telemetry" → "Reading time"): devices without a wall clock send `age`, the
 * gateway reports each reading at `t = receivedAt - age`, in SSE, GET /api/devices and the readings API; bad
 * ages are rejected and counted; readings stored before `age` existed still read back.
 */
import Database from "better-sqlite3";
import mqtt, { type MqttClient } from "mqtt";
import { join } from "node:path";
import { rmSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MAX_AGE_MS } from "../../gateway/src/protocol/payloads.ts";
import { startTestGateway, tempDir, type TestGateway } from "../helpers/gateway.ts";
import { connectSse, type SseClient } from "../helpers/sse.ts";
import { brokerKinds } from "./broker-kinds.ts";

const HOUR = 3_600_000;
const DEVICE_T = 1_764_081_000_000;

const telemetry = (seq: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ v: 1, seq, boot: 1, t: null, readings: { temperature: 20 + seq / 10 }, battery: 3.7, ...extra });

async function getJson<T = any>(url: string): Promise<T> {
  const res = await fetch(url);
  expect(res.status, url).toBe(200);
  return (await res.json()) as T;
}

async function rejected(gw: TestGateway, reason: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  return Number(new RegExp(`^gateway_mqtt_messages_rejected_total\\{reason="${reason}"\\} (\\d+)`, "m").exec(text)?.[1] ?? 0);
}

describe.each(brokerKinds())("reading time via $name broker", (kind) => {
  let gw: TestGateway;
  let pub: MqttClient;
  const streams: SseClient[] = [];
  const open = async (deviceId: string) => {
    const s = await connectSse(gw.url, { topics: [`sensors/${deviceId}/telemetry`] });
    streams.push(s);
    return s;
  };

  beforeAll(async () => {
    gw = await kind.startGateway();
    pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: `reading-time-pub-${kind.name}`, reconnectPeriod: 0 });
  });
  afterAll(async () => {
    for (const s of streams) s.close();
    await pub?.endAsync();
    await gw?.close();
  });

  it("places a reading that waited an hour at receivedAt - age (timeSource age), everywhere it is reported", async () => {
    const sse = await open("aged");
    await pub.publishAsync("sensors/aged/telemetry", telemetry(1, { age: HOUR }), { qos: 1 });
    const [ev] = await sse.waitForEvents(1);
    const d = ev!.json;
    expect(d).toMatchObject({ deviceId: "aged", seq: 1, age: HOUR, timeSource: "age" });
    expect(typeof d.receivedAt).toBe("number");
    expect(d.t).toBe(d.receivedAt - HOUR);

    const { devices } = await getJson<{ devices: any[] }>(`${gw.url}/api/devices`);
    expect(devices.find((x) => x.deviceId === "aged").lastReading).toEqual({
      seq: 1,
      t: d.t,
      age: HOUR,
      timeSource: "age",
      receivedAt: d.receivedAt,
      readings: { temperature: 20.1 },
    });
    const { readings } = await getJson<{ readings: any[] }>(`${gw.url}/api/devices/aged/readings`);
    expect(readings).toEqual([
      { eventId: Number(ev!.id), seq: 1, boot: 1, t: d.t, age: HOUR, timeSource: "age", receivedAt: d.receivedAt, readings: { temperature: 20.1 }, battery: 3.7 },
    ]);
  });

  it("uses receivedAt without age (timeSource received) and the device's t when it sent one (timeSource device)", async () => {
    const sse = await open("clocks");
    await pub.publishAsync("sensors/clocks/telemetry", telemetry(1), { qos: 1 });
    await pub.publishAsync("sensors/clocks/telemetry", telemetry(2, { t: DEVICE_T }), { qos: 1 });
    await pub.publishAsync("sensors/clocks/telemetry", telemetry(3, { t: DEVICE_T + 1000, age: 5000 }), { qos: 1 });
    await pub.publishAsync("sensors/clocks/telemetry", telemetry(4, { age: 0 }), { qos: 1 });
    const [received, device, deviceWithAge, zero] = (await sse.waitForEvents(4)).map((e) => e.json);
    expect(received).toMatchObject({ seq: 1, age: null, timeSource: "received" });
    expect(received.t).toBe(received.receivedAt);
    expect(device).toMatchObject({ seq: 2, t: DEVICE_T, age: null, timeSource: "device" });
    expect(deviceWithAge).toMatchObject({ seq: 3, t: DEVICE_T + 1000, age: 5000, timeSource: "device" });
    expect(zero).toMatchObject({ seq: 4, age: 0, timeSource: "age" });
    expect(zero.t).toBe(zero.receivedAt);
  });

  it("rejects and counts a bad age with the other bad payloads, without relaying it", async () => {
    const sse = await open("bad-age");
    const before = await rejected(gw, "bad_shape");
    const bad = [-1, 1.5, MAX_AGE_MS + 1, "3600000", null, true, {}];
    for (const [i, age] of bad.entries()) await pub.publishAsync("sensors/bad-age/telemetry", telemetry(i + 1, { age }), { qos: 1 });
    // The largest allowed age is valid; arriving after the bad ones, it also proves they were handled.
    await pub.publishAsync("sensors/bad-age/telemetry", telemetry(100, { age: MAX_AGE_MS }), { qos: 1 });
    const events = await sse.waitForEvents(1);
    expect(events).toHaveLength(1);
    expect(events[0]!.json).toMatchObject({ seq: 100, age: MAX_AGE_MS, timeSource: "age" });
    expect(events[0]!.json.t).toBe(events[0]!.json.receivedAt - MAX_AGE_MS);
    expect((await rejected(gw, "bad_shape")) - before).toBe(bad.length);
    const { readings } = await getJson<{ readings: any[] }>(`${gw.url}/api/devices/bad-age/readings`);
    expect(readings.map((r) => r.seq)).toEqual([100]);
  });

  it("orders the readings API by reading time, then seq: a late reading lands at its own time", async () => {
    const sse = await open("late");
    await pub.publishAsync("sensors/late/telemetry", telemetry(1), { qos: 1 });
    await pub.publishAsync("sensors/late/telemetry", telemetry(2), { qos: 1 });
    // Published last, taken an hour before the others.
    await pub.publishAsync("sensors/late/telemetry", telemetry(3, { age: HOUR }), { qos: 1 });
    const byseq = new Map((await sse.waitForEvents(3)).map((e) => [e.json.seq as number, e.json]));
    const late = byseq.get(3)!;
    expect(late.t).toBe(late.receivedAt - HOUR);

    const readings = async (query = "") =>
      (await getJson<{ readings: any[] }>(`${gw.url}/api/devices/late/readings${query}`)).readings;
    const all = await readings();
    expect(all.map((r) => r.seq)).toEqual([3, 1, 2]);
    expect(all.map((r) => r.t)).toEqual([late.t, byseq.get(1)!.t, byseq.get(2)!.t]);
    // The latest by reading time, not by arrival.
    expect((await readings("?limit=2")).map((r) => r.seq)).toEqual([1, 2]);
    // from/to filter on t; since still filters on receivedAt.
    expect((await readings(`?to=${late.t}`)).map((r) => r.seq)).toEqual([3]);
    expect((await readings(`?from=${late.t + 1}`)).map((r) => r.seq)).toEqual([1, 2]);
    // seq 1 and 2 may share a millisecond, so which of them `to` keeps depends on their times.
    const t1 = byseq.get(1)!.t;
    expect((await readings(`?from=${late.t}&to=${t1}`)).map((r) => r.seq)).toEqual([3, 1, 2].filter((s) => byseq.get(s)!.t <= t1));
    expect((await readings(`?since=${late.receivedAt}`)).map((r) => r.seq)).toEqual(
      [3, 1, 2].filter((s) => byseq.get(s)!.receivedAt >= late.receivedAt),
    );
    for (const bad of ["?from=-1", "?to=x", "?from=1.5"]) {
      const res = await fetch(`${gw.url}/api/devices/late/readings${bad}`);
      expect(res.status, bad).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "invalid_query" } });
    }

    // The device's last reading is the one with the highest seq, at its own time.
    const { devices } = await getJson<{ devices: any[] }>(`${gw.url}/api/devices`);
    expect(devices.find((x) => x.deviceId === "late").lastReading).toMatchObject({ seq: 3, t: late.t, timeSource: "age" });

    // A redelivered (deviceId, seq) is still a duplicate whatever its age; the first time stays.
    await pub.publishAsync("sensors/late/telemetry", telemetry(3), { qos: 1 });
    await pub.publishAsync("sensors/late/telemetry", telemetry(4), { qos: 1 });
    await sse.waitForEvents(4);
    expect(sse.events.map((e) => e.json.seq)).toEqual([1, 2, 3, 4]);
    expect((await readings()).map((r) => [r.seq, r.t])).toEqual([
      [3, late.t],
      [1, byseq.get(1)!.t],
      [2, byseq.get(2)!.t],
      [4, sse.events[3]!.json.t],
    ]);
  });
});

describe("readings stored before the reading time existed", () => {
  let gw: TestGateway | undefined;
  let sse: SseClient | undefined;
  const dataDir = tempDir("gw-legacy-");
  afterEach(async () => {
    sse?.close();
    await gw?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("read back with t = receivedAt (or the device's t) after the migration, in REST and SSE replay", async () => {
    // A database as the gateway wrote it before: no `t` column, data without age/timeSource, t null.
    const old = new Database(join(dataDir, "gateway.sqlite"));
    old.exec(`
      CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, topic TEXT NOT NULL,
        device_id TEXT NOT NULL, seq INTEGER, received_at INTEGER NOT NULL, data TEXT NOT NULL);
      CREATE UNIQUE INDEX events_reading ON events(device_id, seq) WHERE kind = 'telemetry';
      CREATE INDEX events_device_kind ON events(device_id, kind, id);
      CREATE INDEX events_received_at ON events(received_at);
      CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      CREATE TABLE devices (device_id TEXT PRIMARY KEY, state TEXT NOT NULL DEFAULT 'unknown', sleep_ms INTEGER,
        next_wake_at INTEGER, status_at INTEGER, last_seen INTEGER, battery REAL, last_reading TEXT);
    `);
    const now = Date.now();
    const legacy = [
      { seq: 1, t: null, receivedAt: now - 2000 },
      { seq: 2, t: DEVICE_T, receivedAt: now - 1000 },
      { seq: 3, t: null, receivedAt: now - 500 },
    ];
    const insert = old.prepare("INSERT INTO events (kind, topic, device_id, seq, received_at, data) VALUES ('telemetry', ?, 'old', ?, ?, ?)");
    for (const r of legacy) {
      const data = { deviceId: "old", topic: "sensors/old/telemetry", seq: r.seq, boot: 1, t: r.t, receivedAt: r.receivedAt, readings: { temperature: r.seq }, battery: null, dropped: 0, corrupt: 0 };
      insert.run("sensors/old/telemetry", r.seq, r.receivedAt, JSON.stringify(data));
    }
    old.prepare("INSERT INTO devices (device_id, state, last_seen, last_reading) VALUES ('old', 'online', ?, ?)").run(
      now - 500,
      JSON.stringify({ seq: 3, t: null, receivedAt: now - 500, readings: { temperature: 3 } }),
    );
    old.close();

    gw = await startTestGateway({ dataDir });
    const { readings } = await getJson<{ readings: any[] }>(`${gw.url}/api/devices/old/readings`);
    // Ordered by reading time: the device-clock reading (2025) comes before the ones at their arrival.
    expect(readings.map((r) => [r.seq, r.t, r.age, r.timeSource])).toEqual([
      [2, DEVICE_T, null, "device"],
      [1, now - 2000, null, "received"],
      [3, now - 500, null, "received"],
    ]);
    const { devices } = await getJson<{ devices: any[] }>(`${gw.url}/api/devices`);
    expect(devices[0].lastReading).toEqual({ seq: 3, t: now - 500, age: null, timeSource: "received", receivedAt: now - 500, readings: { temperature: 3 } });

    sse = await connectSse(gw.url, { lastEventId: 0 });
    const replayed = await sse.waitForEvents(3, (e) => e.event === "telemetry");
    expect(replayed.map((e) => [e.json.seq, e.json.t, e.json.age, e.json.timeSource])).toEqual([
      [1, now - 2000, null, "received"],
      [2, DEVICE_T, null, "device"],
      [3, now - 500, null, "received"],
    ]);

    // New readings still go in after the migrated ones.
    const pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: "legacy-pub", reconnectPeriod: 0 });
    await pub.publishAsync("sensors/old/telemetry", telemetry(4, { age: HOUR }), { qos: 1 });
    await pub.publishAsync("sensors/old/telemetry", telemetry(3), { qos: 1 }); // a duplicate of a migrated row
    await pub.publishAsync("sensors/old/telemetry", telemetry(5), { qos: 1 });
    await sse.waitFor((ev) => ev.some((e) => e.json?.seq === 5));
    await pub.endAsync();
    const after = (await getJson<{ readings: any[] }>(`${gw.url}/api/devices/old/readings`)).readings;
    expect(after.map((r) => r.seq)).toEqual([2, 4, 1, 3, 5]);
  });
});
