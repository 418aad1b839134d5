/**
 * Bad input and bad clients: 10,000 malformed MQTT payloads and HTTP requests without a crash,
 * and a stalled SSE client that is dropped with a bounded queue while another client keeps up.
 */
import mqtt from "mqtt";
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { metric, startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { connectSse } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function gateway(config = {}): Promise<TestGateway> {
  const gw = await startTestGateway({ config });
  cleanups.push(() => gw.close());
  return gw;
}

describe("robustness", () => {
  it("survives 10,000 malformed MQTT payloads, counting every one", async () => {
    const gw = await gateway();
    const pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: "fuzz-pub", reconnectPeriod: 0 });
    cleanups.push(() => pub.endAsync(true));
    const sse = await connectSse(gw.url);
    cleanups.push(() => sse.close());
    const samples: Array<string | Buffer> = [
      "",
      "{",
      "null",
      "42",
      '"str"',
      "[1,2]",
      Buffer.from([0xc3, 0x28]),
      JSON.stringify({ v: 2, seq: 1, boot: 1, t: null, readings: {}, battery: null }),
      JSON.stringify({ v: 1, seq: 1.5, boot: 1, t: null, readings: {}, battery: null }),
      JSON.stringify({ v: 1, seq: 1, boot: 1, t: null, readings: { a: "x" }, battery: null }),
      JSON.stringify({ v: 1, seq: 1, boot: 1, t: null, readings: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i])), battery: null }),
      JSON.stringify({ v: 1, state: "dreaming" }),
      "x".repeat(2000),
      JSON.stringify({ __proto__: { polluted: true }, constructor: { prototype: { polluted: true } } }),
    ];
    const topics = ["sensors/fz/telemetry", "sensors/fz/status", "sensors/fz/cmd/ack"];
    for (let i = 0; i < 10_000; i++) {
      pub.publish(topics[i % topics.length], samples[i % samples.length], { qos: 0 });
      if (i % 500 === 499) await new Promise((r) => setImmediate(r)); // let the socket drain
    }
    await pub.publishAsync("sensors/fz/telemetry", JSON.stringify({ v: 1, seq: 1, boot: 1, t: null, readings: { ok: 1 }, battery: null }), { qos: 1 });
    await sse.waitFor((ev) => ev.some((e) => e.json?.readings?.ok === 1), { timeoutMs: 30_000, message: "the valid reading" });
    expect(sse.events.filter((e) => e.event !== "reset")).toHaveLength(1);
    // every one counted: as rejected, or (an empty status payload, a deleted retained status) as retained_cleared
    const rejected = await metric(gw, /^gateway_mqtt_messages_rejected_total\{[^}]*\} (\d+)/);
    const cleared = await metric(gw, /^gateway_mqtt_retained_cleared_total (\d+)/);
    expect(cleared).toBeGreaterThan(0);
    expect(rejected + cleared).toBe(10_000);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  });

  it("answers 10,000 malformed HTTP requests with 4xx JSON errors and keeps serving", async () => {
    const gw = await gateway();
    const requests: Array<() => Promise<Response>> = [
      () => fetch(`${gw.url}/events?topic=a/%23/b`),
      () => fetch(`${gw.url}/events?topic=`),
      () => fetch(`${gw.url}/events?lastEventId=-1`),
      () => fetch(`${gw.url}/events`, { headers: { "Last-Event-ID": "9".repeat(40) } }),
      () => fetch(`${gw.url}/api/devices/${"x".repeat(100)}/readings`),
      () => fetch(`${gw.url}/api/devices/d/readings?limit=0`),
      () => fetch(`${gw.url}/api/devices/d/readings?since=abc`),
      () => fetch(`${gw.url}/api/devices/d/commands`, { method: "POST", body: "\u0000\u0001" }),
      () => fetch(`${gw.url}/api/devices/d/commands`, { method: "POST", body: '{"op":"ping","x":' }),
      () => fetch(`${gw.url}/api/devices/d/commands`, { method: "POST", body: JSON.stringify({ op: ["ping"] }) }),
      () => fetch(`${gw.url}/api/devices/d/commands/${"%ff".repeat(10)}`),
      () => fetch(`${gw.url}/api/nope`),
      () => fetch(`${gw.url}/api/devices/d/commands`, { method: "DELETE" }),
    ];
    const statuses = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < 10_000) {
        const res = await requests[next++ % requests.length]();
        await res.body?.cancel();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 20 }, worker));
    const total = [...statuses.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(10_000);
    expect([...statuses.keys()].every((s) => s >= 400 && s < 500), JSON.stringify([...statuses])).toBe(true);
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    expect(await metric(gw, /^gateway_sse_clients (\d+)/)).toBe(0);
  });

  it("drops a stalled client with a bounded queue while another client keeps low latency", async () => {
    const maxQueueBytes = 256 * 1024;
    const gw = await gateway({ sse: { maxQueueBytes, maxQueueEvents: 100_000, heartbeatMs: 1000 } });
    const pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: "slow-pub", reconnectPeriod: 0 });
    cleanups.push(() => pub.endAsync(true));

    // The stalled client: sends the request, then never reads a byte.
    const url = new URL(gw.url);
    const stalled = connect(Number(url.port), url.hostname);
    cleanups.push(() => stalled.destroy());
    stalled.write(`GET /events HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n\r\n`);
    stalled.pause();
    const fast = await connectSse(gw.url, { topics: ["sensors/+/telemetry"] }); // readings only: no summary events
    cleanups.push(() => fast.close());
    await waitUntil(async () => (await metric(gw, /^gateway_sse_clients (\d+)/)) === 2, { message: "both streams open" });

    const heapBefore = process.memoryUsage().heapUsed;
    const TOTAL = 8_000;
    // 16 readings with 32-character keys: ~800-byte payloads, valid per docs/protocol.md.
    const readings = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}_`.padEnd(32, "x"), i + 0.5]));
    const sentAt: number[] = [];
    for (let seq = 1; seq <= TOTAL; seq++) {
      sentAt[seq] = performance.now();
      pub.publish("sensors/slow/telemetry", JSON.stringify({ v: 1, seq, boot: 1, t: null, readings, battery: null }), { qos: 0 });
      // ~2,500 msg/s: the publisher, gateway and fast client share this one thread.
      if (seq % 25 === 0) await new Promise((r) => setTimeout(r, 10));
    }
    await fast.waitForEvents(TOTAL, () => true, 60_000);
    await waitUntil(async () => (await metric(gw, /^gateway_sse_dropped_clients_total\{[^}]*\} (\d+)/)) >= 1, {
      timeoutMs: 10_000,
      message: "the stalled client to be dropped",
    });
    await waitUntil(async () => (await metric(gw, /^gateway_sse_clients (\d+)/)) === 1, { message: "stalled stream released" });
    const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 1e6;
    expect(heapGrowthMb).toBeLessThan(100);

    const seqs = fast.events.map((e) => e.json.seq);
    expect(seqs).toEqual(Array.from({ length: TOTAL }, (_, i) => i + 1));
    const latencies = fast.events.map((e) => e.receivedAt - (performance.timeOrigin + sentAt[e.json.seq])).sort((a, b) => a - b);
    const p99 = latencies[Math.floor(latencies.length * 0.99)];
    expect(p99).toBeLessThan(500);
  });
});
