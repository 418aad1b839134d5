/** HTTP auth and read/write rules, allowed and refused, on a real gateway (issue 4 "Auth"). */
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { connectSse, ErrSseHttp } from "../helpers/sse.ts";

const ADMIN = "admin-token-aaaaaaaaaaaa";
const KITCHEN = "kitchen-token-bbbbbbbbbb";

const telemetry = (seq: number) => JSON.stringify({ v: 1, seq, boot: 1, t: null, readings: { temperature: 1 }, battery: null });

describe("HTTP auth with tokens", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({
      config: {
        auth: {
          mode: "tokens",
          tokens: [
            { name: "admin", token: ADMIN, read: ["#"], write: true },
            { name: "kitchen", token: KITCHEN, read: ["sensors/kitchen/#"], write: false },
          ],
        },
      },
    });
    const pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: "auth-pub", reconnectPeriod: 0 });
    await pub.publishAsync("sensors/kitchen/telemetry", telemetry(1), { qos: 1 });
    await pub.publishAsync("sensors/garage/telemetry", telemetry(1), { qos: 1 });
    await pub.endAsync();
  });
  afterAll(() => gw?.close());

  const get = (path: string, token?: string) =>
    fetch(`${gw.url}${path}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });

  it("refuses requests without a valid token with 401 JSON", async () => {
    for (const path of ["/events", "/api/devices", "/api/devices/kitchen/readings"]) {
      for (const token of [undefined, "wrong-token-cccccccccccc"]) {
        const res = await get(path, token);
        expect(res.status, `${path} ${token}`).toBe(401);
        expect(await res.json()).toMatchObject({ error: { code: "unauthorized" } });
      }
    }
    const cmd = await fetch(`${gw.url}/api/devices/kitchen/commands`, { method: "POST", body: '{"op":"ping"}' });
    expect(cmd.status).toBe(401);
  });

  it("keeps /healthz, /metrics and the page public", async () => {
    expect((await get("/healthz")).status).toBe(200);
    expect((await get("/metrics")).status).toBe(200);
    expect((await get("/")).status).toBe(200);
  });

  it("streams only what a token's read filters cover, via header, query or cookie", async () => {
    for (const tokenVia of ["header", "query", "cookie"] as const) {
      const sse = await connectSse(gw.url, { token: KITCHEN, tokenVia, lastEventId: 0 });
      const events = await sse.waitForEvents(1);
      sse.close();
      expect(events.every((e) => e.json.deviceId === "kitchen"), tokenVia).toBe(true);
    }
    const admin = await connectSse(gw.url, { token: ADMIN, lastEventId: 0 });
    await admin.waitForEvents(2);
    admin.close();
    expect(new Set(admin.events.map((e) => e.json.deviceId))).toEqual(new Set(["kitchen", "garage"]));
  });

  it("answers 403 when requested filters exceed the token's read filters", async () => {
    for (const topics of [["#"], ["sensors/+/telemetry"], ["sensors/garage/telemetry"], ["sensors/kitchen/#", "sensors/garage/#"]]) {
      const err = await connectSse(gw.url, { token: KITCHEN, topics }).catch((e: unknown) => e);
      expect((err as ErrSseHttp).status, topics.join()).toBe(403);
      expect(JSON.parse((err as ErrSseHttp).body)).toMatchObject({ error: { code: "forbidden" } });
    }
    const ok = await connectSse(gw.url, { token: KITCHEN, topics: ["sensors/kitchen/telemetry"] });
    expect(ok.status).toBe(200);
    ok.close();
  });

  it("limits devices, readings and commands to the token's rights", async () => {
    const kitchenDevices = (await (await get("/api/devices", KITCHEN)).json()) as { devices: any[] };
    expect(kitchenDevices.devices.map((d) => d.deviceId)).toEqual(["kitchen"]);
    const adminDevices = (await (await get("/api/devices", ADMIN)).json()) as { devices: any[] };
    expect(adminDevices.devices.map((d) => d.deviceId).sort()).toEqual(["garage", "kitchen"]);

    expect((await get("/api/devices/kitchen/readings", KITCHEN)).status).toBe(200);
    const refused = await get("/api/devices/garage/readings", KITCHEN);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: "forbidden" } });

    const send = (token: string, device: string) =>
      fetch(`${gw.url}/api/devices/${device}/commands`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ op: "ping" }),
      });
    expect((await send(KITCHEN, "kitchen")).status).toBe(403); // no write right
    expect((await send(ADMIN, "kitchen")).status).toBe(202);
  });
});

describe("MQTT device auth of the embedded broker in /metrics", () => {
  it("exports the broker's refusal and client-error counters", async () => {
    const gw = await startTestGateway({ config: { broker: { auth: { mode: "devices" } } } });
    try {
      const scrape = async () => await (await fetch(`${gw.url}/metrics`)).text();
      expect(await scrape()).toMatch(/^gateway_broker_refusals_total\{kind="connect"\} 0$/m);
      await expect(
        mqtt.connectAsync(gw.mqttUrl, { clientId: "intruder", username: "intruder", password: "nope", reconnectPeriod: 0 }),
      ).rejects.toThrow();
      const text = await scrape();
      expect(text).toMatch(/^gateway_broker_refusals_total\{kind="connect"\} 1$/m);
      expect(text).toMatch(/^gateway_broker_refusals_total\{kind="publish"\} 0$/m);
      expect(text).toMatch(/^gateway_broker_refusals_total\{kind="subscribe"\} 0$/m);
      expect(text).toMatch(/^gateway_broker_client_errors_total \d+$/m);
    } finally {
      await gw.close();
    }
  });
});
