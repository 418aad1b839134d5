/**
 * Resume after Last-Event-ID: replay then live with no gap and no duplicate, `event: reset` for
 * evicted ids, and the same across gateway restarts (SIGTERM and kill -9) on one data dir.
 */
import mqtt, { type MqttClient } from "mqtt";
import { rmSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../helpers/ports.ts";
import { spawnGateway, startTestGateway, tempDir, type GatewayProcess, type TestGateway } from "../helpers/gateway.ts";
import { connectSse, type SseClient, type SseEvent } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";

const telemetry = (seq: number) =>
  JSON.stringify({ v: 1, seq, boot: 1, t: null, readings: { temperature: seq }, battery: null });

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function publisher(url: string, clientId: string): Promise<MqttClient> {
  // Persistent session + QoS 1: like the firmware, it re-sends unacknowledged readings after a reconnect.
  const c = await mqtt.connectAsync(url, { clientId, clean: false, reconnectPeriod: 100, connectTimeout: 2000 });
  cleanups.push(() => c.endAsync(true));
  return c;
}

function track<T extends { close(): unknown }>(x: T): T {
  cleanups.push(() => x.close());
  return x;
}

/** Asserts strictly increasing ids and each seq exactly once; returns the seqs. */
function assertNoGapNoDuplicate(events: SseEvent[], expectedSeqs: number[]): void {
  const ids = events.map((e) => Number(e.id));
  for (let i = 1; i < ids.length; i++) expect(ids[i], `id order at ${i}`).toBeGreaterThan(ids[i - 1]);
  expect(events.map((e) => e.json.seq)).toEqual(expectedSeqs);
}

describe("resume in one gateway", () => {
  it("replays after Last-Event-ID (header wins over query) and then continues live", async () => {
    const gw = track(await startTestGateway());
    const pub = await publisher(gw.mqttUrl, "resume-pub-1");
    const all = track(await connectSse(gw.url, { topics: ["sensors/+/telemetry"] }));
    for (let seq = 1; seq <= 10; seq++) await pub.publishAsync("sensors/r1/telemetry", telemetry(seq), { qos: 1 });
    const first = await all.waitForEvents(10);
    const from = first[3].id!;

    const byHeader = track(await connectSse(gw.url, { topics: ["sensors/+/telemetry"], lastEventId: from, lastEventIdQuery: first[8].id! }));
    const byQuery = track(await connectSse(gw.url, { topics: ["sensors/+/telemetry"], lastEventIdQuery: from }));
    await byHeader.waitForEvents(6);
    await byQuery.waitForEvents(6);
    for (let seq = 11; seq <= 12; seq++) await pub.publishAsync("sensors/r1/telemetry", telemetry(seq), { qos: 1 });
    await byHeader.waitForEvents(8);
    await byQuery.waitForEvents(8);
    assertNoGapNoDuplicate(byHeader.events, [5, 6, 7, 8, 9, 10, 11, 12]);
    assertNoGapNoDuplicate(byQuery.events, [5, 6, 7, 8, 9, 10, 11, 12]);
  });

  it("has no gap or duplicate when resuming while events keep arriving", async () => {
    // A small replay page and queue force many replay rounds interleaved with live publishes.
    const gw = track(await startTestGateway({ config: { sse: { replayPageSize: 7, maxQueueEvents: 400 } } }));
    const pub = await publisher(gw.mqttUrl, "resume-pub-2");
    const reference = track(await connectSse(gw.url, { topics: ["sensors/r2/telemetry"] }));
    for (let seq = 1; seq <= 100; seq++) pub.publish("sensors/r2/telemetry", telemetry(seq), { qos: 1 });
    await reference.waitForEvents(40);
    const resumeFrom = reference.events[20].id!;
    const publishing = (async () => {
      for (let seq = 101; seq <= 300; seq++) await pub.publishAsync("sensors/r2/telemetry", telemetry(seq), { qos: 1 });
    })();
    const resumed = track(await connectSse(gw.url, { topics: ["sensors/r2/telemetry"], lastEventId: resumeFrom }));
    await publishing;
    await resumed.waitForEvents(300 - 21);
    await reference.waitForEvents(300);
    assertNoGapNoDuplicate(reference.events, Array.from({ length: 300 }, (_, i) => i + 1));
    assertNoGapNoDuplicate(resumed.events, Array.from({ length: 300 - 21 }, (_, i) => i + 22));
  });

  it("sends event: reset first when the id was evicted, then replays from the earliest kept", async () => {
    const dataDir = tempDir();
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    // ids are counted below: no summary event may take one (the hourly coalescing period never ends in this test)
    const config = { history: { maxEvents: 5 }, summaries: { coalesceMs: 3_600_000 } };
    let gw: TestGateway = await startTestGateway({ dataDir, config });
    const pub0 = await mqtt.connectAsync(gw.mqttUrl, { clientId: "reset-pub", reconnectPeriod: 0 });
    for (let seq = 1; seq <= 20; seq++) await pub0.publishAsync("sensors/r3/telemetry", telemetry(seq), { qos: 1 });
    await pub0.endAsync();
    await waitUntil(async () => ((await (await fetch(`${gw.url}/api/devices/r3/readings?limit=1000`)).json()) as any).readings.length === 20);
    await gw.close();
    gw = track(await startTestGateway({ dataDir, config })); // retention runs at start

    const sse = track(await connectSse(gw.url, { lastEventId: 2 }));
    const events = await sse.waitForEvents(6);
    expect(events[0].event).toBe("reset");
    expect(events[0].json).toEqual({ reason: "history_evicted", requestedId: 2, earliestId: 16 });
    expect(events[0].id).toBe("15"); // a reconnect with this id does not reset again
    assertNoGapNoDuplicate(events.slice(1), [16, 17, 18, 19, 20]);

    const again = track(await connectSse(gw.url, { lastEventId: 15 }));
    await again.waitForEvents(5);
    expect(again.ofKind("reset")).toHaveLength(0);

    const future = track(await connectSse(gw.url, { lastEventId: 999 }));
    const f = await future.waitForEvents(6);
    expect(f[0].json).toMatchObject({ reason: "unknown_id", requestedId: 999, earliestId: 16 });
  });
});

describe.each([
  ["graceful stop (SIGTERM)", (p: GatewayProcess) => p.stop()],
  ["kill -9", (p: GatewayProcess) => p.kill9()],
])("resume across a gateway restart: %s", (_name, stopGateway) => {
  it("delivers every reading exactly once, in id order, to a client that resumes", async () => {
    const dataDir = tempDir();
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const port = await freePort();
    const mqttPort = await freePort();
    let gw = await spawnGateway({ dataDir, port, mqttPort });
    cleanups.push(() => gw.kill9());
    const pub = await publisher(gw.mqttUrl, "restart-pub");

    const received: SseEvent[] = [];
    let sse: SseClient = track(await connectSse(gw.url, { topics: ["sensors/+/telemetry"] }));
    const TOTAL = 150;
    const acked = new Set<number>();
    const publishing = (async () => {
      for (let seq = 1; seq <= TOTAL; seq++) {
        pub.publish("sensors/rs/telemetry", telemetry(seq), { qos: 1 }, (err) => err || acked.add(seq));
        if (seq % 10 === 0) await new Promise((r) => setTimeout(r, 10)); // a steady stream, not one burst
      }
    })();
    await sse.waitForEvents(40);
    await stopGateway(gw);
    await sse.waitForEnd();
    received.push(...sse.events);

    gw = await spawnGateway({ dataDir, port, mqttPort });
    await publishing;
    // The guarantee under test: a reading the broker acknowledged (PUBACK) is never lost, kill -9 included;
    // the publisher re-sends the rest after it reconnects, so in the end every reading is acknowledged.
    // Two bugs broke it: aedes sent PUBACK before queueing the message (broker/persistence/queue-before-ack.ts) and reused
    // in-flight packet ids after the restart, so a PUBACK deleted another message (broker/persistence/unique-packet-ids.ts).
    await waitUntil(() => acked.size === TOTAL, { timeoutMs: 10_000, message: "PUBACKs for every reading" });
    sse = track(await connectSse(gw.url, { topics: ["sensors/+/telemetry"], lastEventId: received.at(-1)!.id! }));
    await sse.waitFor(() => received.length + sse.events.length >= TOTAL, { timeoutMs: 20_000, message: `${TOTAL} readings` });
    received.push(...sse.events);
    // Across a restart the broker's redelivery and the publisher's re-sends interleave, so seqs may
    // arrive out of order; ids stay strictly increasing and each reading arrives exactly once.
    assertNoGapNoDuplicate(received, received.map((e) => e.json.seq));
    expect(received.map((e) => e.json.seq).sort((a: number, b: number) => a - b)).toEqual(Array.from({ length: TOTAL }, (_, i) => i + 1));
    expect(received.filter((e) => e.event === "reset")).toHaveLength(0);
  });
});
