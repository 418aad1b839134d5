/**
 * The Node response sink (transport/hub/sink.ts NodeResponseSink) on the wire, read with raw sockets: a
 * close-delimited HTTP/1.1 body (no chunked framing), the same bytes for every stream, a client that stops
 * reading cut off and counted and then resuming without gap or duplicate, and a clean end on shutdown.
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";
import mqtt from "mqtt";
import { connect, type Socket } from "node:net";
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

const telemetry = (seq: number, readings: Record<string, number> = { temperature: seq }) =>
  JSON.stringify({ v: 1, seq, boot: 1, t: null, readings, battery: null });

/** GET /events on a raw socket: the response exactly as sent (head and body bytes) and when the server closed it. */
class RawStream {
  readonly socket: Socket;
  private buf = Buffer.alloc(0);
  ended = false;

  constructor(gw: TestGateway) {
    const url = new URL(gw.url);
    this.socket = connect(Number(url.port), url.hostname);
    this.socket.write(`GET /events HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n\r\n`);
    this.socket.on("data", (d: Buffer) => (this.buf = Buffer.concat([this.buf, d])));
    this.socket.on("end", () => (this.ended = true));
    this.socket.on("error", () => (this.ended = true));
    cleanups.push(() => this.socket.destroy());
  }

  get head(): string {
    const end = this.buf.indexOf("\r\n\r\n");
    return end < 0 ? "" : this.buf.subarray(0, end).toString("latin1");
  }

  get body(): Buffer {
    const end = this.buf.indexOf("\r\n\r\n");
    return end < 0 ? Buffer.alloc(0) : this.buf.subarray(end + 4);
  }

  /** Complete events of the body (an event cut off by a dropped connection has no blank line: not dispatched). */
  events(): EventSourceMessage[] {
    const out: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (m) => out.push(m) });
    parser.feed(this.body.toString("utf8"));
    return out;
  }
}

describe("SSE on the wire (Node response sink)", () => {
  it("sends a close-delimited body, the same bytes to every stream, and ends it cleanly on shutdown", async () => {
    const gw = await gateway({ sse: { heartbeatMs: 60_000 } });
    const a = new RawStream(gw);
    const b = new RawStream(gw);
    await waitUntil(async () => (await metric(gw, /^gateway_sse_clients (\d+)/)) === 2, { message: "both streams open" });
    const pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: "wire-pub", reconnectPeriod: 0 });
    cleanups.push(() => pub.endAsync(true));
    const N = 200;
    await Promise.all(Array.from({ length: N }, (_, i) => pub.publishAsync("sensors/wire/telemetry", telemetry(i + 1), { qos: 1 })));
    const telemetryOf = (s: RawStream) => s.events().filter((e) => e.event === "telemetry");
    await waitUntil(() => telemetryOf(a).length === N && telemetryOf(b).length === N, { message: `${N} readings on both` });

    expect(a.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(a.head).toMatch(/^content-type: text\/event-stream/im);
    expect(a.head).toMatch(/^connection: close$/im);
    expect(a.head).not.toMatch(/^transfer-encoding:/im);
    expect(a.body.toString("utf8")).toMatch(/^retry: \d+\n\n/); // raw SSE, no chunk-size line
    expect(telemetryOf(a).map((e) => JSON.parse(e.data).seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(b.body.equals(a.body)).toBe(true);

    await gw.close();
    await waitUntil(() => a.ended && b.ended, { message: "both streams ended by the server" });
    for (const s of [a, b]) {
      expect(s.body.toString("utf8").endsWith("\n\n")).toBe(true); // ends after a whole event, not cut
      expect(telemetryOf(s)).toHaveLength(N);
    }
  });

  it("cuts off a client that stops reading, counts it, and the client resumes without gap or duplicate", async () => {
    const gw = await gateway({ sse: { maxQueueBytes: 64 * 1024, maxQueueEvents: 100_000, heartbeatMs: 60_000 } });
    const stalled = new RawStream(gw);
    stalled.socket.pause();
    await waitUntil(async () => (await metric(gw, /^gateway_sse_clients (\d+)/)) === 1, { message: "the stream open" });
    const pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: "wire-slow-pub", reconnectPeriod: 0 });
    cleanups.push(() => pub.endAsync(true));

    // ~1 KB events: the socket buffers on both ends fill, then the 64 KB queue, and the stream is dropped.
    const readings = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}_`.padEnd(32, "x"), i + 0.5]));
    const dropped = () => metric(gw, /^gateway_sse_dropped_clients_total\{[^}]*\} (\d+)/);
    let seq = 0;
    while ((await dropped()) === 0) {
      if (seq >= 60_000) throw new Error("the stalled stream was never dropped");
      for (let i = 0; i < 500; i++) pub.publish("sensors/wire-slow/telemetry", telemetry(++seq, readings), { qos: 0 });
      await new Promise((r) => setImmediate(r)); // let the publisher's socket drain
    }
    const total = seq + 100; // and more after the drop, which only the resumed stream can get
    while (seq < total) pub.publish("sensors/wire-slow/telemetry", telemetry(++seq, readings), { qos: 0 });
    await pub.publishAsync("sensors/wire-slow/telemetry", telemetry(++seq, readings), { qos: 1 });

    stalled.socket.resume(); // read what reached the socket before the cut
    await waitUntil(() => stalled.ended, { timeoutMs: 30_000, message: "the cut connection to end" });
    expect(await metric(gw, /^gateway_sse_clients (\d+)/)).toBe(0);
    const before = stalled.events().filter((e) => e.event === "telemetry");
    expect(before.length).toBeGreaterThan(0);
    expect(before.length).toBeLessThan(seq);

    const resumed = await connectSse(gw.url, { lastEventId: before.at(-1)!.id });
    cleanups.push(() => resumed.close());
    await resumed.waitForEvents(seq - before.length, (e) => e.event === "telemetry", 30_000);
    const after = resumed.events.filter((e) => e.event === "telemetry");
    const seqs = [...before.map((e) => JSON.parse(e.data).seq), ...after.map((e) => e.json.seq)];
    expect(seqs).toEqual(Array.from({ length: seq }, (_, i) => i + 1));
  });
});
