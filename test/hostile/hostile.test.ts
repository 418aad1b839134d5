/**
 * Issue 10, "MQTT conformance and hostile input": a short seeded run of the hostile generator in CI
 * (the long one is `npm run bench:hostile`). The gateway runs in this process: embedded broker in open
 * auth, HTTP in tokens mode. Fails on a crash, a hang, any 5xx, a file served from outside
 * gateway/web/dist, a broken documented status, a normal client that cannot get through between
 * batches, leaked streams or connections, and heap growth after a forced GC.
 *
 * A failure prints its seed and case; replay one case with
 *   HOSTILE_SEED=<seed> HOSTILE_ONLY=mqtt:<index> npx vitest run test/hostile
 * or a whole run with another seed: HOSTILE_SEED=<seed> npx vitest run test/hostile
 *
 * The three tests after the random run are findings of this generator reduced to a few steps each; they fail
 * until the gateway or broker is fixed (see their comments).
 */
import { connect } from "node:net";
import { resolve } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitUntil } from "../helpers/wait.ts";
import { HOSTILE_TOKENS } from "./http.ts";
import { MAX_REMAINING_LENGTH, oversizedBeforeConnect, stalledBySlowSubscriber } from "./mqtt.ts";
import { seedFrom } from "./prng.ts";
import { formatReport, hostileConfig, metrics, runHostile, type Memory, type Target } from "./run.ts";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const SEED = seedFrom(process.env.HOSTILE_SEED, 0x1e55_0010);
/** Heap after a forced GC may grow this much over the post-warm-up baseline (SQLite and caches settle). */
const HEAP_TOLERANCE = 24 * 1024 * 1024;

function forcedGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

const gc = forcedGc();

async function memoryAfterGc(): Promise<Memory> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external };
}

function inProcess(gw: TestGateway): Target {
  const u = new URL(gw.url);
  const m = new URL(gw.mqttUrl);
  return {
    url: gw.url,
    mqttUrl: gw.mqttUrl,
    http: { host: u.hostname, port: Number(u.port) },
    mqtt: { host: m.hostname, port: Number(m.port) },
    memory: memoryAfterGc,
    brokerClients: async () => gw.broker!.connectedClients,
    assertAlive: () => undefined, // an uncaught error in this process fails the test run itself
  };
}

describe("hostile input (short seeded run)", () => {
  let gw: TestGateway | undefined;
  afterAll(async () => {
    await gw?.close();
  });

  it(`survives 2,000 hostile MQTT packets and 2,000 hostile HTTP requests (seed ${SEED})`, async () => {
    gw = await startTestGateway({ config: hostileConfig });
    const only = process.env.HOSTILE_ONLY || undefined;
    const report = await runHostile(inProcess(gw), {
      seed: SEED,
      mqttCases: 2000,
      httpCases: 2000,
      batches: 2,
      warmup: 200,
      mqttConcurrency: 24,
      httpConcurrency: 24,
      long: false,
      answerMs: 10_000,
      holdMs: 300,
      distDir: resolve(ROOT, "gateway/web/dist"),
      root: ROOT,
      only,
      log: (line) => console.log(line),
    });
    console.log(formatReport(report));

    const failures = report.failures.map((f) => `[${f.kind}] ${f.line}`).join("\n");
    expect(report.failureCounts, `seed ${SEED}:\n${failures}`).toEqual({});
    if (only) return;
    expect(report.mqtt.cases).toBe(2000);
    expect(report.http.cases).toBe(2000);
    expect(report.http.classes["5xx"] ?? 0).toBe(0);
    expect(report.probes.length).toBe(report.batches.length + 2);
    const growth = report.memory.end.heapUsed - report.memory.baseline.heapUsed;
    expect(
      growth,
      `heap after GC grew ${(growth / 1048576).toFixed(1)} MB over the post-warm-up baseline ` +
        `(${(report.memory.baseline.heapUsed / 1048576).toFixed(1)} -> ${(report.memory.end.heapUsed / 1048576).toFixed(1)} MB; ` +
        `tolerance ${HEAP_TOLERANCE / 1048576} MB): something keeps hostile connections or requests alive`,
    ).toBeLessThan(HEAP_TOLERANCE);
  }, 180_000);

  // Findings of this generator, seed-independent, as tests of their own (each fails until fixed).

  // aedes parses with mqtt-packet's default parser, which has no maximum packet size: a client that has not
  // even sent CONNECT makes the broker buffer up to 268,435,455 bytes per connection (a connected client the
  // same per PUBLISH). A few such sockets exhaust a Raspberry Pi. Expected: the broker closes the connection
  // once a declared remaining length exceeds what it accepts (payloads are at most 1024 bytes, topics 64 KB).
  it("closes a connection whose first packet declares the maximum remaining length, before buffering it", async () => {
    gw ??= await startTestGateway({ config: hostileConfig });
    const m = new URL(gw.mqttUrl);
    const externalBefore = (await memoryAfterGc()).external;
    let externalMb = 0;
    const r = await oversizedBeforeConnect({ host: m.hostname, port: Number(m.port) }, 64, async () => {
      externalMb = ((await memoryAfterGc()).external - externalBefore) / 1048576;
    });
    expect(
      r.closed && r.acceptedMb <= 8,
      `the broker took ${r.acceptedMb} MB of a ${MAX_REMAINING_LENGTH}-byte PUBLISH sent before CONNECT ` +
        `(${r.closed ? "then closed" : `and kept the connection; external memory +${externalMb.toFixed(0)} MB after GC, the socket still open`}). Repro: open a TCP connection to the broker, send 30 ff ff ff 7f 00 01 61, then stream bytes.`,
    ).toBe(true);
  }, 60_000);

  // A client that gives up in the middle of a POST body (closes the socket) is answered with Hono's onError:
  // logged at error level as "request failed" (Error: aborted, ECONNRESET) and counted as
  // gateway_http_errors_total{code="internal"}, i.e. as a 500 nobody receives. Anyone can inflate the
  // internal-error count and the error log this way. Expected: an aborted request is not an internal error.
  it("does not count a request body the client abandoned as an internal error", async () => {
    gw ??= await startTestGateway({ config: hostileConfig });
    const internal = async () => [...(await metrics(gw!.url))].filter(([k]) => k.includes('code="internal"')).reduce((n, [, v]) => n + v, 0);
    const before = await internal();
    const u = new URL(gw.url);
    const socket = connect(Number(u.port), u.hostname);
    socket.on("error", () => undefined);
    await new Promise((r) => socket.once("connect", r));
    const continued = new Promise((r) => socket.once("data", r)); // "100 Continue": the route has the request
    socket.write(
      `POST /api/devices/hx-1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${HOSTILE_TOKENS.full.token}\r\n` +
        `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\n{"op"\r\n`,
    );
    await continued;
    socket.destroy();
    // The error, if any, is counted as soon as the server sees the close; if it never is, this just ends.
    await waitUntil(async () => (await internal()) > before, { timeoutMs: 2000 }).catch(() => undefined);
    expect(await internal(), "internal errors counted for one abandoned request body").toBe(before);
  });

  // A subscriber to sensors/# that stops reading, with its socket full (4 x 1 MB status messages), freezes
  // every publisher whose read batch holds a QoS 1 message for it: a device that sends two QoS 1 readings in
  // one TCP write gets their PUBACKs, then its PINGREQ is not read for up to aedes' drainTimeout (60 s), and
  // with keepalive 30 s the broker drops the device after 45 s although it kept sending. Found by seed
  // 508887056 (mqtt cases 1127, 1230, 1247, 1375, 1390, then 1395 hangs); reduced to the steps in
  // stalledBySlowSubscriber (test/hostile/mqtt.ts).
  it("keeps serving a device while another subscriber stops reading", async () => {
    gw ??= await startTestGateway({ config: hostileConfig });
    const m = new URL(gw.mqttUrl);
    const r = await stalledBySlowSubscriber({ host: m.hostname, port: Number(m.port) }, { fillMb: 4, keepalive: 30, waitMs: 10_000 });
    expect(r.pubacks).toBe(2);
    expect(
      typeof r.pingMs === "number" && r.pingMs < 5000,
      `the device's PINGREQ after two QoS 1 readings in one write got ${typeof r.pingMs === "number" ? `its PINGRESP after ${r.pingMs.toFixed(0)} ms` : `no PINGRESP within 10 s (${r.pingMs})`} ` +
        `while a subscriber to sensors/# with a full socket was ${r.subscriberStillOpen ? "still connected" : "gone"}`,
    ).toBe(true);
  }, 60_000);
});
