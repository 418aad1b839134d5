/**
 * GET /events through app.request(), with no Node response: the stream becomes a ReadableStream body
 * (hub/sink.ts WebStreamSink). Real HTTP takes the ServerResponse path, covered by the other suites.
 */
import mqtt from "mqtt";
import { afterEach, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitUntil } from "../helpers/wait.ts";

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const clients = async (g: TestGateway) =>
  Number(/^gateway_sse_clients (\d+)/m.exec(await g.metrics.registry.metrics())?.[1]);

it("streams retry, then live events, and releases the stream when the reader cancels", async () => {
  gw = await startTestGateway();
  const res = await gw.app.request("/events?topic=sensors/%2B/telemetry");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const readUntil = async (needle: string) => {
    while (!text.includes(needle)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended before ${needle}: ${text}`);
      text += decoder.decode(value);
    }
  };
  await readUntil("retry: ");
  expect(await clients(gw)).toBe(1);

  const pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: "in-process-pub", reconnectPeriod: 0 });
  const payload = JSON.stringify({ v: 1, seq: 7, boot: 1, t: null, readings: { temperature: 21 }, battery: null });
  await pub.publishAsync("sensors/ip/telemetry", payload, { qos: 1 });
  await pub.endAsync();
  await readUntil("\n\n" + "id: ");
  await readUntil('"seq":7');
  expect(text).toMatch(/id: \d+\nevent: telemetry\ndata: \{.*"deviceId":"ip".*\}\n\n/);

  await reader.cancel();
  await waitUntil(async () => (await clients(gw!)) === 0, { message: "the stream released" });
});
