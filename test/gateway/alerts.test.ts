/**
 * Alerts through the real gateway: readings and status reports over MQTT → rules → stored alerts with their
 * lifecycle (firing → acknowledged → resolved), `alert` SSE events, the overdue timer and the device list's
 * `overdue` state, Last Will → offline, rules through the API with the write right, a restart that keeps
 * everything, and webhooks to a real local HTTP server with a verified signature.
 */
import { createHmac } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import mqtt from "mqtt";
import { afterEach, describe, expect, test } from "vitest";
import { startTestGateway, tempDir, type TestGateway } from "../helpers/gateway.ts";
import { connectSse } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";
import { rmSync } from "node:fs";

const SECRET = "webhook-secret-0123456789";
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const json = async (url: string, init?: RequestInit) => {
  const res = await fetch(url, { ...init, headers: { "content-type": "application/json", ...init?.headers } });
  return { status: res.status, body: (await res.json()) as any };
};

/** A webhook receiver: keeps every POST whose signature is right, counts the others. */
async function startReceiver() {
  const got: Array<{ delivery: string; body: any }> = [];
  let badSignatures = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const signed = Buffer.concat([Buffer.from(`${req.headers["x-sensors-timestamp"]}.`), raw]);
      const expected = `sha256=${createHmac("sha256", SECRET).update(signed).digest("hex")}`;
      if (req.headers["x-sensors-signature"] !== expected) badSignatures++;
      else got.push({ delivery: String(req.headers["x-sensors-delivery"]), body: JSON.parse(raw.toString()) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook?token=abc`, got, bad: () => badSignatures };
}

async function gateway(config: Record<string, unknown>, dataDir?: string): Promise<TestGateway> {
  const gw = await startTestGateway({ dataDir, config: { summaries: { coalesceMs: 3_600_000 }, ...config } });
  cleanups.push(() => gw.close());
  return gw;
}

async function client(gw: TestGateway, clientId: string, opts: mqtt.IClientOptions = {}) {
  const c = await mqtt.connectAsync(gw.mqttUrl, { clientId, reconnectPeriod: 0, ...opts });
  cleanups.push(() => c.endAsync(true));
  return c;
}

const reading = (seq: number, temperature: number, battery: number | null = 3.9) =>
  JSON.stringify({ v: 1, seq, boot: 1, t: Date.now(), readings: { temperature }, battery });

const alertsOf = async (gw: TestGateway, q = "state=all") => (await json(`${gw.url}/api/alerts?${q}`)).body.alerts as any[];

describe("alerts", () => {
  test("threshold with hysteresis: fires once, is acknowledged (who, when), resolves; streamed, stored, sent to a webhook", async () => {
    const hook = await startReceiver();
    const gw = await gateway({
      alerts: {
        rules: [{ id: "hot", name: "Freezer warm", kind: "threshold", metric: "temperature", above: -10, hysteresis: 3, severity: "critical", scope: { devices: "freezer-*" } }],
        webhooks: [{ url: hook.url, secret: SECRET }],
      },
    });
    const sse = await connectSse(gw.url, { topics: ["sensors/+/alert"] });
    const dev = await client(gw, "freezer-1");
    const other = await client(gw, "kitchen-1");
    await other.publishAsync("sensors/kitchen-1/telemetry", reading(1, 5), { qos: 1 }); // out of the rule's scope
    // -18, then warm (fires), flapping inside the band (-9.5 ↔ -12: neither resolves nor fires again), cold again
    const temps = [-18, -9, -9.5, -12, -8, -11, -13.5];
    for (const [i, t] of temps.entries()) await dev.publishAsync("sensors/freezer-1/telemetry", reading(i + 1, t), { qos: 1 });
    await waitUntil(async () => (await alertsOf(gw)).some((a) => a.state === "resolved"), { message: "the alert resolved" });
    const all = await alertsOf(gw);
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ ruleId: "hot", ruleName: "Freezer warm", kind: "threshold", severity: "critical", deviceId: "freezer-1", metric: "temperature", value: -9, threshold: -10, state: "resolved" });
    expect(all[0].message).toBe("temperature -9 above -10");

    const ack = await json(`${gw.url}/api/alerts/${all[0].alertId}/ack`, { method: "POST" });
    expect(ack.status).toBe(200);
    expect(ack.body.alert).toMatchObject({ ackedBy: "open", state: "resolved" });
    expect(ack.body.alert.ackedAt).toBeGreaterThanOrEqual(all[0].resolvedAt);
    const again = await json(`${gw.url}/api/alerts/${all[0].alertId}/ack`, { method: "POST" });
    expect(again.body.alert.ackedAt).toBe(ack.body.alert.ackedAt); // the first ack stays
    expect((await json(`${gw.url}/api/alerts/999/ack`, { method: "POST" })).status).toBe(404);

    // SSE: firing, resolved, acked (each the whole alert, in id order)
    await sse.waitForEvents(3);
    expect(sse.events.map((e) => [e.event, e.json.state, e.json.ackedBy])).toEqual([
      ["alert", "firing", null],
      ["alert", "resolved", null],
      ["alert", "resolved", "open"],
    ]);
    // webhooks: the same three changes, in order, each signed
    await waitUntil(() => hook.got.length === 3, { message: "three webhook deliveries" });
    expect(hook.got.map((g) => [g.body.type, g.body.alert.state, g.body.alert.ackedBy])).toEqual([
      ["alert", "firing", null],
      ["alert", "resolved", null],
      ["alert", "resolved", "open"],
    ]);
    expect(hook.bad()).toBe(0);
    expect(new Set(hook.got.map((g) => g.delivery)).size).toBe(3);
    expect(await alertsOf(gw, "state=firing")).toEqual([]);
    expect((await alertsOf(gw, "state=resolved")).map((a) => a.alertId)).toEqual([all[0].alertId]);
    expect((await json(`${gw.url}/api/alerts?state=maybe`)).status).toBe(400);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/gateway_alert_transitions_total\{kind="threshold",change="firing"\} 1/);
    expect(metrics).toMatch(/gateway_webhook_deliveries_total 3/);
  });

  test("overdue by the timer (device list `overdue`), then resolved by its next report; offline by Last Will", async () => {
    const gw = await gateway({ alerts: { checkIntervalMs: 50, rules: [{ id: "overdue", factor: 1.5, graceS: 0.3 }] } });
    const sse = await connectSse(gw.url, { topics: ["sensors/sleepy/#"] });
    const dev = await client(gw, "sleepy");
    await dev.publishAsync("sensors/sleepy/status", JSON.stringify({ v: 1, state: "sleeping", sleepMs: 200 }), { qos: 1, retain: true });
    const status = async () => (await json(`${gw.url}/api/devices`)).body.devices.find((d: any) => d.deviceId === "sleepy")?.status;
    await waitUntil(async () => (await status()) === "overdue", { message: "status overdue" });
    const [fired] = await alertsOf(gw, "state=firing");
    expect(fired).toMatchObject({ ruleId: "overdue", kind: "overdue", deviceId: "sleepy", topic: "sensors/sleepy/status" });
    expect(fired.firedAt - (await json(`${gw.url}/api/devices`)).body.devices[0].statusAt).toBeGreaterThanOrEqual(200 * 1.5 + 300);
    await dev.publishAsync("sensors/sleepy/telemetry", reading(1, 20), { qos: 1 });
    await waitUntil(async () => (await alertsOf(gw, "state=resolved")).length === 1, { message: "overdue resolved" });
    expect(await status()).toBe("online");
    // the stream saw it in order: status sleeping, alert firing, telemetry, alert resolved
    await sse.waitFor((ev) => ev.filter((e) => e.event === "alert").length === 2);
    expect(sse.events.map((e) => (e.event === "alert" ? `alert:${e.json.state}` : e.event))).toEqual(["status", "alert:firing", "telemetry", "alert:resolved"]);

    // a connection that drops without a goodbye: the broker publishes its Last Will
    const will = { topic: "sensors/gone/status", payload: Buffer.from(JSON.stringify({ v: 1, state: "offline" })), qos: 1 as const, retain: true };
    const gone = await mqtt.connectAsync(gw.mqttUrl, { clientId: "gone", reconnectPeriod: 0, will });
    await gone.publishAsync("sensors/gone/status", JSON.stringify({ v: 1, state: "online" }), { qos: 1, retain: true });
    gone.stream.destroy();
    await waitUntil(async () => (await alertsOf(gw, "state=firing")).some((a) => a.kind === "offline" && a.deviceId === "gone"), { message: "offline alert" });
    gone.end(true);
  });

  test("a restart replays every retained status: an overdue device stays overdue, its alert firing, until it reports", async () => {
    const dataDir = tempDir();
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const config = { alerts: { checkIntervalMs: 50, rules: [{ id: "overdue", factor: 1, graceS: 0.2 }] }, mqtt: { clientId: "gw-replay" } };
    let gw = await gateway(config, dataDir);
    const mqttPort = Number(new URL(gw.mqttUrl).port);
    const dev = await client(gw, "napper");
    await dev.publishAsync("sensors/napper/status", JSON.stringify({ v: 1, state: "sleeping", sleepMs: 100 }), { qos: 1, retain: true });
    await dev.endAsync();
    await waitUntil(async () => (await alertsOf(gw, "state=firing")).length === 1, { message: "overdue" });
    await gw.close();
    gw = await gateway({ ...config, mqtt: { ...config.mqtt, port: mqttPort } }, dataDir);
    // the bridge subscribes again and the broker replays the retained `sleeping`: not a report
    await waitUntil(async () => /gateway_mqtt_retained_replays_total 1/.test(await (await fetch(`${gw.url}/metrics`)).text()), { message: "the replay seen" });
    const devices = (await json(`${gw.url}/api/devices`)).body.devices;
    expect(devices.find((d: any) => d.deviceId === "napper").status).toBe("overdue");
    expect((await alertsOf(gw)).map((a) => [a.kind, a.state])).toEqual([["overdue", "firing"]]);
  });

  test("a gateway that was down makes nobody overdue: the clock counts from when it listens again", async () => {
    const dataDir = tempDir();
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const config = { alerts: { checkIntervalMs: 50, rules: [{ id: "overdue", factor: 1, graceS: 0.5 }] }, mqtt: { clientId: "gw-outage" } };
    let gw = await gateway(config, dataDir);
    const mqttPort = Number(new URL(gw.mqttUrl).port);
    const dev = await client(gw, "dozer");
    await dev.publishAsync("sensors/dozer/status", JSON.stringify({ v: 1, state: "sleeping", sleepMs: 200 }), { qos: 1, retain: true });
    await dev.endAsync();
    await waitUntil(async () => (await json(`${gw.url}/api/devices`)).body.devices.length === 1);
    const sleptAt = Date.now();
    await gw.close();
    // down for longer than the device's deadline (200 ms × 1 + 0.5 s)
    await waitUntil(() => Date.now() > sleptAt + 1500, { message: "the outage" });
    const restarted = Date.now();
    gw = await gateway({ ...config, mqtt: { ...config.mqtt, port: mqttPort } }, dataDir);
    await waitUntil(async () => (await alertsOf(gw, "state=firing")).length === 1, { message: "overdue, counted from the restart" });
    const [fired] = await alertsOf(gw, "state=firing");
    expect(fired.firedAt - restarted).toBeGreaterThanOrEqual(700);
  });

  test("rules through the API need the write right, are validated, take effect at once and survive a restart, as do alerts", async () => {
    const dataDir = tempDir();
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const tokens = {
      mode: "tokens",
      adminToken: false,
      tokens: [
        { name: "ops", token: "ops-token-0123456789", read: ["#"], write: true },
        { name: "viewer", token: "viewer-token-0123456789", read: ["#"] },
      ],
    };
    const as = (token: string) => ({ authorization: `Bearer ${token}` });
    let gw = await gateway({ auth: tokens }, dataDir);
    const rule = { kind: "threshold", metric: "humidity", above: 80, forReadings: 2 };
    const put = (token: string, body: unknown, id = "damp") => json(`${gw.url}/api/alert-rules/${id}`, { method: "PUT", headers: as(token), body: JSON.stringify(body) });

    expect((await put("viewer-token-0123456789", rule)).status).toBe(403);
    const bad = await put("ops-token-0123456789", { kind: "threshold", metric: "humidity", above: 80, below: 10 });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toEqual({ code: "invalid_rule", message: "rule: a threshold rule needs exactly one of above and below" });
    const ok = await put("ops-token-0123456789", rule);
    expect(ok.status).toBe(200);
    expect(ok.body.rule).toMatchObject({ id: "damp", source: "api", enabled: true, hysteresis: 0 });
    // a partial body changes the default of that id
    expect((await put("ops-token-0123456789", { enabled: false }, "battery-low")).body.rule).toMatchObject({ id: "battery-low", kind: "battery", enabled: false, source: "api" });

    const dev = await client(gw, "bath", { username: undefined });
    const send = (seq: number, humidity: number) =>
      dev.publishAsync("sensors/bath/telemetry", JSON.stringify({ v: 1, seq, boot: 1, t: Date.now(), readings: { humidity }, battery: 3.0 }), { qos: 1 });
    await send(1, 85); // one reading in breach: not yet (forReadings 2)
    await send(2, 86);
    await waitUntil(async () => (await json(`${gw.url}/api/alerts?state=firing`, { headers: as("viewer-token-0123456789") })).body.alerts.length === 1);
    const [alert] = (await json(`${gw.url}/api/alerts?state=firing`, { headers: as("viewer-token-0123456789") })).body.alerts;
    expect(alert).toMatchObject({ ruleId: "damp", value: 86, message: "humidity 86 above 80 for 2 readings" }); // battery 3.0: the disabled default stayed quiet
    expect((await json(`${gw.url}/api/alerts/${alert.alertId}/ack`, { method: "POST", headers: as("viewer-token-0123456789") })).status).toBe(403);
    expect((await json(`${gw.url}/api/alerts/${alert.alertId}/ack`, { method: "POST", headers: as("ops-token-0123456789") })).body.alert.ackedBy).toBe("ops");

    await dev.endAsync();
    await gw.close();
    gw = await gateway({ auth: tokens }, dataDir);
    // after the restart: the API rules and the firing, acknowledged alert are still there
    const rules = (await json(`${gw.url}/api/alert-rules`, { headers: as("viewer-token-0123456789") })).body.rules;
    expect(rules.find((r: any) => r.id === "damp")).toMatchObject({ source: "api", above: 80 });
    const kept = (await json(`${gw.url}/api/alerts?state=firing`, { headers: as("ops-token-0123456789") })).body.alerts;
    expect(kept).toEqual([{ ...alert, ackedBy: "ops", ackedAt: expect.any(Number), updatedAt: expect.any(Number) }]);
    // and the loaded alert resolves (not a second one firing) when the value comes down
    const dev2 = await client(gw, "bath");
    await dev2.publishAsync("sensors/bath/telemetry", JSON.stringify({ v: 1, seq: 3, boot: 1, t: Date.now(), readings: { humidity: 60 }, battery: 3.0 }), { qos: 1 });
    await waitUntil(async () => (await json(`${gw.url}/api/alerts?state=all`, { headers: as("ops-token-0123456789") })).body.alerts[0]?.state === "resolved");
    expect((await json(`${gw.url}/api/alerts?state=all`, { headers: as("ops-token-0123456789") })).body.alerts).toHaveLength(1);

    const del = await json(`${gw.url}/api/alert-rules/damp`, { method: "DELETE", headers: as("ops-token-0123456789") });
    expect(del).toEqual({ status: 200, body: { rule: null } });
    const delDefault = await json(`${gw.url}/api/alert-rules/battery-low`, { method: "DELETE", headers: as("ops-token-0123456789") });
    expect(delDefault.body.rule).toMatchObject({ id: "battery-low", enabled: true, source: "default" });
    expect((await json(`${gw.url}/api/alert-rules/damp`, { method: "DELETE", headers: as("ops-token-0123456789") })).status).toBe(404);
  });
});
