/**
 * Per-device gauges (GET /api/metrics/devices) through a real gateway and its embedded broker: values after
 * readings and status reports, the caps on devices and reading keys (left out and shown in
 * gateway_device_series_skipped), a deleted device's series gone, token auth and read scope; and
 * docs/grafana/sleepy-sensors.json parses and queries only metrics the gateway exports.
 */
import { readFileSync } from "node:fs";
import mqtt from "mqtt";
import { afterEach, describe, expect, test } from "vitest";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitUntil } from "../helpers/wait.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function gateway(config: Record<string, unknown> = {}): Promise<TestGateway> {
  const gw = await startTestGateway({ config });
  cleanups.push(() => gw.close());
  return gw;
}

async function send(gw: TestGateway, deviceId: string, seq: number, readings: Record<string, number>, battery: number | null) {
  const c = await mqtt.connectAsync(gw.mqttUrl, { clientId: deviceId, reconnectPeriod: 0 });
  await c.publishAsync(`sensors/${deviceId}/telemetry`, JSON.stringify({ v: 1, seq, boot: 1, t: null, readings, battery }), { qos: 1 });
  await c.publishAsync(`sensors/${deviceId}/status`, '{"v":1,"state":"sleeping","sleepMs":60000}', { qos: 1, retain: true });
  await c.endAsync();
}

const DEVICES = "/api/metrics/devices";

/** Parses the Prometheus text format into "name{labels}" → value (labels as printed). */
async function scrape(gw: TestGateway, headers: Record<string, string> = {}): Promise<Map<string, number>> {
  const res = await fetch(`${gw.url}${DEVICES}`, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) samples.set(m[1]!, Number(m[2]));
  }
  return samples;
}

const statusOf = async (gw: TestGateway, deviceId: string) =>
  ((await (await fetch(`${gw.url}/api/devices`)).json()) as { devices: Array<{ deviceId: string; status: string; lastSeen: number }> }).devices.find((d) => d.deviceId === deviceId);

describe("per-device gauges", () => {
  test("last reading, battery, last seen and status of each device", async () => {
    const gw = await gateway();
    await send(gw, "kitchen-1", 1, { temperature: 21.5, humidity: 40 }, 3.71);
    await send(gw, "kitchen-1", 2, { temperature: 22.25, humidity: 41 }, 3.7);
    await send(gw, "porch-2", 1, { temperature: -3.5 }, null);
    await waitUntil(async () => (await statusOf(gw, "porch-2"))?.status === "sleeping" && (await statusOf(gw, "kitchen-1"))?.status === "sleeping", { message: "both asleep" });

    const m = await scrape(gw);
    expect(m.get('sensor_reading{device="kitchen-1",metric="temperature"}')).toBe(22.25);
    expect(m.get('sensor_reading{device="kitchen-1",metric="humidity"}')).toBe(41);
    expect(m.get('sensor_reading{device="porch-2",metric="temperature"}')).toBe(-3.5);
    expect(m.get('sensor_battery_volts{device="kitchen-1"}')).toBe(3.7);
    expect(m.has('sensor_battery_volts{device="porch-2"}')).toBe(false); // it sends no battery
    expect(m.get('sensor_last_seen_timestamp_seconds{device="kitchen-1"}')).toBe((await statusOf(gw, "kitchen-1"))!.lastSeen / 1000);
    expect(m.get('sensor_status{device="porch-2",status="sleeping"}')).toBe(1);
    expect(m.get('sensor_status{device="porch-2",status="online"}')).toBe(0);
    expect(m.get('gateway_device_series_skipped{kind="device"}')).toBe(0);

    expect((await fetch(`${gw.url}/api/devices/porch-2`, { method: "DELETE" })).status).toBe(204);
    const after = await scrape(gw);
    expect([...after.keys()].filter((k) => k.includes('device="porch-2"'))).toEqual([]);
    expect(after.get('sensor_reading{device="kitchen-1",metric="temperature"}')).toBe(22.25);
  });

  test("devices and reading keys over the caps are left out and counted", async () => {
    const gw = await gateway({ metrics: { maxDevices: 2, maxMetrics: 1 } });
    for (const id of ["a-1", "b-2", "c-3"]) await send(gw, id, 1, { humidity: 50, temperature: 20 }, 3.6);
    await waitUntil(async () => (await statusOf(gw, "c-3"))?.status === "sleeping", { message: "c-3 stored" });
    const m = await scrape(gw);
    const devices = new Set([...m.keys()].filter((k) => k.startsWith("sensor_status{")).map((k) => /device="([^"]+)"/.exec(k)![1]));
    expect(devices).toEqual(new Set(["a-1", "b-2"])); // the first maxDevices by id
    expect([...m.keys()].filter((k) => k.startsWith("sensor_reading{"))).toEqual([
      'sensor_reading{device="a-1",metric="humidity"}',
      'sensor_reading{device="b-2",metric="humidity"}',
    ]);
    expect(m.get('gateway_device_series_skipped{kind="device"}')).toBe(1);
    expect(m.get('gateway_device_series_skipped{kind="metric"}')).toBe(2);
  });
});

describe("device metrics auth", () => {
  test("needs a token, and shows only the devices whose telemetry the token may read; /metrics has no readings", async () => {
    const token = "kitchen-reader-0123456789";
    const gw = await gateway({ auth: { mode: "tokens", adminToken: false, tokens: [{ name: "kitchen", token, read: ["sensors/kitchen-1/#"] }] } });
    await send(gw, "kitchen-1", 1, { temperature: 21 }, 3.7);
    await send(gw, "porch-2", 1, { temperature: 5 }, 3.7);
    const auth = { authorization: `Bearer ${token}` };
    await waitUntil(async () => (await scrape(gw, auth)).get('sensor_status{device="kitchen-1",status="sleeping"}') === 1, { message: "kitchen-1 asleep" });
    expect((await fetch(`${gw.url}${DEVICES}`)).status).toBe(401);
    const m = await scrape(gw, auth);
    expect(m.get('sensor_reading{device="kitchen-1",metric="temperature"}')).toBe(21);
    expect([...m.keys()].filter((k) => k.includes("porch-2"))).toEqual([]);
    expect(await (await fetch(`${gw.url}/metrics`)).text()).not.toContain("sensor_reading");
    // deleting a device needs the write right
    const refused = await fetch(`${gw.url}/api/devices/kitchen-1`, { method: "DELETE", headers: auth });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toBe("the token may not change devices");
  });
});

describe("docs/grafana/sleepy-sensors.json", () => {
  test("parses, has a Prometheus datasource variable, and every metric its queries use is in /metrics", async () => {
    const dashboard = JSON.parse(readFileSync(new URL("../../docs/grafana/sleepy-sensors.json", import.meta.url), "utf8"));
    const variables = dashboard.templating.list as Array<{ name: string; type: string; query: unknown; definition?: string }>;
    expect(variables.find((v) => v.type === "datasource")?.query).toBe("prometheus");
    const exprs = [
      ...dashboard.panels.flatMap((p: { targets: Array<{ expr: string }> }) => p.targets.map((t) => t.expr)),
      ...variables.filter((v) => v.definition).map((v) => v.definition!),
    ];
    expect(exprs.length).toBeGreaterThan(5);
    const used = new Set(exprs.flatMap((e: string) => e.match(/\b(?:sensor|gateway)_[a-z_]+\b/g) ?? []));
    expect(used.size).toBeGreaterThan(4);

    const gw = await gateway();
    await send(gw, "kitchen-1", 1, { temperature: 21 }, 3.7);
    await waitUntil(async () => (await statusOf(gw, "kitchen-1"))?.status === "sleeping", { message: "kitchen-1 stored" });
    const text = (await (await fetch(`${gw.url}/metrics`)).text()) + (await (await fetch(`${gw.url}${DEVICES}`)).text());
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    expect([...used].filter((name) => !exported.has(name))).toEqual([]);
  });
});
