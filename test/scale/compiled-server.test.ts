/**
 * Issue 12: production runs compiled JavaScript. The built server (node gateway/dist/server.js with the flags
 * of `npm run gateway`, started outside the repository) answers /healthz, serves the dashboard from
 * gateway/web/dist, and streams a reading published to its embedded broker over SSE.
 */
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectSse } from "../helpers/sse.ts";
import { startCompiledGateway, type CompiledGateway } from "./compiled-gateway.ts";

const telemetry = (seq: number) => JSON.stringify({ v: 1, seq, boot: 1, t: null, readings: { temperature: 20 + seq }, battery: null });

describe("the compiled gateway (gateway/dist/server.js)", () => {
  let gw: CompiledGateway;
  beforeAll(async () => {
    gw = await startCompiledGateway();
  });
  afterAll(async () => {
    expect(await gw?.stop()).toBe(0); // graceful SIGTERM shutdown
  });

  it("is healthy and serves the built dashboard", async () => {
    const health = await fetch(`${gw.url}/healthz`);
    expect(await health.json()).toEqual({ ok: true, broker: "up", db: "up" });
    const page = await fetch(`${gw.url}/index.html`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("app.js");
  });

  it("streams a published reading over SSE, with token auth", async () => {
    const sse = await connectSse(gw.url, { topics: ["sensors/+/telemetry"], token: gw.adminToken });
    const pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: "compiled-test-pub" });
    try {
      await pub.publishAsync("sensors/compiled-1/telemetry", telemetry(1), { qos: 1 });
      const [event] = await sse.waitForEvents(1, (e) => e.event === "telemetry");
      expect(event.json).toMatchObject({ deviceId: "compiled-1", seq: 1 });
      expect(event.id).toBeDefined();
    } finally {
      sse.close();
      await pub.endAsync();
    }
  });
});
