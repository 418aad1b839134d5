import { afterEach, describe, expect, it } from "vitest";
import { startEmbeddedBroker, type EmbeddedBroker, type DeliveredEvent } from "../../gateway/src/broker/index.ts";
import { connect, endAllClients, recordMessages, waitFor } from "./support.ts";

let broker: EmbeddedBroker | undefined;
afterEach(async () => {
  await endAllClients();
  await broker?.close();
  broker = undefined;
});

describe("embedded broker basics (open mode, in memory)", () => {
  it("listens on a free port and relays QoS 1 between clients", async () => {
    broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0, auth: { mode: "open" } });
    expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
    const sub = await connect(broker.url, { clientId: "sub" });
    const received = recordMessages(sub);
    await sub.subscribeAsync("sensors/+/telemetry", { qos: 1 });
    const pub = await connect(broker.url, { clientId: "pub" });
    await pub.publishAsync("sensors/d1/telemetry", '{"v":1}', { qos: 1 });
    await waitFor(() => received.length === 1, "the message");
    expect(received[0]).toMatchObject({ topic: "sensors/d1/telemetry", payload: '{"v":1}', qos: 1 });
  });

  it("emits clientConnected / clientDisconnected with the client id", async () => {
    broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0, auth: { mode: "open" } });
    const events: string[] = [];
    broker.on("clientConnected", ({ clientId }) => events.push(`+${clientId}`));
    broker.on("clientDisconnected", ({ clientId }) => events.push(`-${clientId}`));
    const client = await connect(broker.url, { clientId: "dev-7" });
    await waitFor(() => events.includes("+dev-7"), "clientConnected");
    await client.endAsync();
    await waitFor(() => events.includes("-dev-7"), "clientDisconnected");
    expect(events).toEqual(["+dev-7", "-dev-7"]);
  });

  it.each([1, 2] as const)("emits delivered when a persistent subscriber completes QoS %i", async (qos) => {
    broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0, auth: { mode: "open" } });
    const delivered: DeliveredEvent[] = [];
    broker.on("delivered", (event) => delivered.push(event));
    const device = await connect(broker.url, { clientId: "dev-1", clean: false });
    const received = recordMessages(device);
    await device.subscribeAsync("sensors/dev-1/cmd", { qos });
    const gateway = await connect(broker.url, { clientId: "gw", ...broker.serviceCredentials });
    await gateway.publishAsync("sensors/dev-1/cmd", '{"id":"c-1","op":"ping"}', { qos });
    await waitFor(() => delivered.length === 1, "the delivered event");
    expect(received).toHaveLength(1);
    expect(delivered[0]).toMatchObject({ clientId: "dev-1", topic: "sensors/dev-1/cmd", qos });
    expect(delivered[0]!.payload.toString()).toBe('{"id":"c-1","op":"ping"}');
  });

  it("close() is idempotent and frees the port", async () => {
    broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0, auth: { mode: "open" } });
    const port = broker.port;
    await Promise.all([broker.close(), broker.close()]);
    expect(broker.closed).toBe(true);
    broker = await startEmbeddedBroker({ host: "127.0.0.1", port, auth: { mode: "open" } });
    expect(broker.port).toBe(port);
  });

  it("fails to start with a clear error when the port is taken", async () => {
    broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0, auth: { mode: "open" } });
    await expect(startEmbeddedBroker({ host: "127.0.0.1", port: broker.port, auth: { mode: "open" } })).rejects.toThrow(
      /EADDRINUSE/,
    );
  });
});
