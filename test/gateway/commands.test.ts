/** Commands API: POST → QoS 1 publish → queued → delivered → acked | failed, persisted and streamed. */
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestGateway } from "../helpers/gateway.ts";
import { connectSse, type SseClient } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";
import { brokerKinds } from "./broker-kinds.ts";

const post = (gw: TestGateway, device: string, body: unknown) =>
  fetch(`${gw.url}/api/devices/${device}/commands`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

const getCommand = async (gw: TestGateway, device: string, id: string) =>
  (await (await fetch(`${gw.url}/api/devices/${device}/commands/${id}`)).json()) as Record<string, any>;

describe.each(brokerKinds())("commands via $name broker", (kind) => {
  let gw: TestGateway;
  let sse: SseClient;
  beforeAll(async () => {
    gw = await kind.startGateway();
    sse = await connectSse(gw.url, { topics: ["sensors/+/cmd", "sensors/+/cmd/ack"] });
  });
  afterAll(async () => {
    sse?.close();
    await gw?.close();
  });

  it("queues a command for a sleeping device and tracks it to acked on its next wake", async () => {
    const deviceId = `sleepy-${kind.name}`;
    // The device subscribed once with a persistent session, then went to sleep (disconnected).
    const first = await mqtt.connectAsync(gw.mqttUrl, { clientId: deviceId, clean: false, reconnectPeriod: 0 });
    await first.subscribeAsync(`sensors/${deviceId}/cmd`, { qos: 1 });
    await first.endAsync();

    const res = await post(gw, deviceId, { op: "set-interval", seconds: 300 });
    expect(res.status).toBe(202);
    const { id, state } = (await res.json()) as { id: string; state: string };
    expect(state).toBe("queued");
    expect(id).toMatch(/^[A-Za-z0-9_-]{1,40}$/);
    // The broker accepted it (our PUBACK) but the device is asleep: still queued.
    await sse.waitFor((ev) => ev.some((e) => e.event === "command" && e.json.commandId === id && e.json.state === "queued"));
    expect((await getCommand(gw, deviceId, id)).state).toBe("queued");

    // Wake: the broker delivers the queued command; the device acks it.
    // Listen before CONNECT: the broker may send the queued command right behind its CONNACK.
    const awake = mqtt.connect(gw.mqttUrl, { clientId: deviceId, clean: false, reconnectPeriod: 0 });
    const received = await new Promise<any>((resolve) => awake.once("message", (_t, p) => resolve(JSON.parse(p.toString()))));
    expect(received).toEqual({ id, op: "set-interval", seconds: 300 });
    if (kind.name === "embedded") {
      // Only the embedded broker reports the device's PUBACK to the gateway.
      await waitUntil(async () => (await getCommand(gw, deviceId, id)).state === "delivered", { message: "delivered" });
    }
    await awake.publishAsync(`sensors/${deviceId}/cmd/ack`, JSON.stringify({ v: 1, id, op: "set-interval", ok: true }), { qos: 1 });
    await awake.endAsync();

    await waitUntil(async () => (await getCommand(gw, deviceId, id)).state === "acked", { message: "acked" });
    const view = await getCommand(gw, deviceId, id);
    expect(view).toMatchObject({ id, deviceId, op: "set-interval", args: { seconds: 300 }, state: "acked", error: null });
    expect(view.ackedAt).toBeGreaterThanOrEqual(view.createdAt);
    await sse.waitFor((ev) => ev.some((e) => e.event === "command-ack" && e.json.commandId === id));
    const ack = sse.events.find((e) => e.event === "command-ack" && e.json.commandId === id)!;
    expect(ack.json).toMatchObject({ deviceId, topic: `sensors/${deviceId}/cmd/ack`, op: "set-interval", ok: true, error: null });
    const states = sse.events.filter((e) => e.event === "command" && e.json.commandId === id).map((e) => e.json.state);
    expect(states).toEqual(kind.name === "embedded" ? ["queued", "delivered", "acked"] : ["queued", "acked"]);
  });

  it("marks a command failed when the device refuses it", async () => {
    const deviceId = `refuser-${kind.name}`;
    const dev = await mqtt.connectAsync(gw.mqttUrl, { clientId: deviceId, clean: false, reconnectPeriod: 0 });
    await dev.subscribeAsync(`sensors/${deviceId}/cmd`, { qos: 1 });
    dev.on("message", (_t, p) => {
      const cmd = JSON.parse(p.toString()) as { id: string; op: string };
      void dev.publishAsync(`sensors/${deviceId}/cmd/ack`, JSON.stringify({ v: 1, id: cmd.id, op: cmd.op, ok: false, error: "busy" }), { qos: 1 });
    });
    const { id } = (await (await post(gw, deviceId, { op: "reboot" })).json()) as { id: string };
    await waitUntil(async () => (await getCommand(gw, deviceId, id)).state === "failed", { message: "failed" });
    expect((await getCommand(gw, deviceId, id)).error).toBe("busy");
    await dev.endAsync();
  });

  it("validates command bodies and ids", async () => {
    const cases: Array<[unknown, number, string]> = [
      ["{not json", 400, "invalid_json"],
      [{ op: "set-interval", seconds: 2 }, 400, "invalid_command"],
      [{ op: "set-interval", seconds: 86401 }, 400, "invalid_command"],
      [{ op: "stay-awake", seconds: 0 }, 400, "invalid_command"],
      [{ op: "self-destruct" }, 400, "invalid_command"],
      [{ op: "ping", extra: 1 }, 400, "invalid_command"],
      [{ op: "ping", pad: "x".repeat(5000) }, 413, "body_too_large"],
    ];
    for (const [body, status, code] of cases) {
      const res = await post(gw, "dev-x", body);
      expect(res.status, JSON.stringify(body).slice(0, 60)).toBe(status);
      expect(((await res.json()) as any).error.code).toBe(code);
    }
    expect((await post(gw, "bad%20id", { op: "ping" })).status).toBe(400);
    expect((await fetch(`${gw.url}/api/devices/dev-x/commands/nope`)).status).toBe(404);
    expect((await post(gw, "dev-x", { op: "ping" })).status).toBe(202);
  });
});
