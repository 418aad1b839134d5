import mqtt from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { startEmbeddedBroker, type EmbeddedBroker } from "./index.ts";

describe("granted QoS", () => {
  let broker: EmbeddedBroker | undefined;
  const clients: mqtt.MqttClient[] = [];
  afterEach(async () => {
    for (const c of clients) await c.endAsync(true);
    await broker?.close();
  });

  it("a QoS 1 wildcard subscriber gets a QoS 2 publish at QoS 1, live and queued while offline", async () => {
    broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0, auth: { mode: "open" } });
    const subscriber = await mqtt.connectAsync(broker.url, { clientId: "sub", clean: false });
    clients.push(subscriber);
    await subscriber.subscribeAsync("sensors/+/telemetry", { qos: 1 });
    const received: number[] = [];
    subscriber.on("message", (_topic, _payload, packet) => received.push(packet.qos));
    const publisher = await mqtt.connectAsync(broker.url, { clientId: "pub" });
    clients.push(publisher);
    await publisher.publishAsync("sensors/d1/telemetry", "live", { qos: 2 });
    await expect.poll(() => received.length).toBe(1);

    await subscriber.endAsync();
    await publisher.publishAsync("sensors/d1/telemetry", "queued", { qos: 2 });
    const again = await mqtt.connectAsync(broker.url, { clientId: "sub", clean: false });
    clients.push(again);
    again.on("message", (_topic, _payload, packet) => received.push(packet.qos));
    await expect.poll(() => received.length).toBe(2);
    expect(received).toEqual([1, 1]);
  });
});
