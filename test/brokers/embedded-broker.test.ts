import { afterEach, describe, expect, it } from "vitest";
import { startEmbeddedBroker, type EmbeddedBroker, type DeliveredEvent } from "../../gateway/src/broker/index.ts";
import { SqlitePersistence } from "../../gateway/src/broker/index.ts";
import { connect, connectRecording, endAllClients, recordMessages, waitFor } from "./support.ts";

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

describe("embedded broker: a PUBACK means the message is stored", () => {
  it("queues a QoS 1 message for persistent subscribers before it sends PUBACK (a crash in between loses nothing)", async () => {
    // Regression (resume.test.ts kill -9 lost bursts of readings): aedes sent PUBACK, then queued. A failing
    // queue write stands for the process dying at that point: the publisher must not have its PUBACK yet.
    const persistence = new SqlitePersistence({ file: ":memory:" });
    const enqueue = persistence.outgoingEnqueueCombi.bind(persistence);
    let writes = 0;
    persistence.outgoingEnqueueCombi = async (subs, packet) => {
      if (++writes === 1) throw new Error("injected: the process died before the message was queued");
      return enqueue(subs, packet);
    };
    broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0, auth: { mode: "open" }, persistence });
    const [gateway, received] = await connectRecording(broker.url, { clientId: "gw", clean: false });
    await gateway.subscribeAsync("sensors/+/telemetry", { qos: 1 });

    // Auto-reconnect on: with no PUBACK the publisher keeps the message and sends it again.
    const device = await connect(broker.url, { clientId: "dev-1", clean: false, reconnectPeriod: 20 });
    await device.publishAsync("sensors/dev-1/telemetry", '{"seq":1}', { qos: 1 });
    await waitFor(() => received.length === 1, "the reading");
    expect(received.map((m) => m.payload)).toEqual(['{"seq":1}']);
    expect(writes).toBe(2); // the failed write and the retry's; aedes' own queue step only adopted the rows
    expect(broker.counters.clientErrors).toBe(1); // the publisher's connection, closed without PUBACK
  });
});
