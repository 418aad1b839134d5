/**
 * The hostile-input run shared by the CI test (test/hostile/hostile.test.ts, short) and the benchmark
 * (gateway/bench/hostile.ts, long): batches of MQTT and HTTP cases in parallel pools, and between
 * batches a normal client that must still connect, subscribe and receive (mqtt.js publishes telemetry,
 * it arrives over MQTT and on an SSE stream), plus /healthz. Memory is measured after a forced GC.
 *
 * Replay: every case comes from its own seed, drawn in order from the run's seed (one stream for MQTT,
 * one for HTTP), so `only: "mqtt:1234"` regenerates exactly case 1234 of that seed.
 */
import mqtt from "mqtt";
import { connectSse } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";
import { HOSTILE_TOKENS, httpCase, indexDist, type HttpCase, type HttpCaseResult, type HttpContext } from "./http.ts";
import { mqttCase, type CaseContext, type MqttCase, type MqttCaseResult } from "./mqtt.ts";
import { Rng } from "./prng.ts";

export interface Memory {
  heapUsed: number;
  rss: number;
  external: number;
}

/** The gateway under attack, however it runs (in this process or a child). */
export interface Target {
  url: string;
  mqttUrl: string;
  mqtt: { host: string; port: number };
  http: { host: string; port: number };
  /** Memory after a forced GC. */
  memory(): Promise<Memory>;
  /** MQTT clients connected to the embedded broker. */
  brokerClients(): Promise<number>;
  /** Throws if the gateway process died. */
  assertAlive(): void;
}

export interface RunOptions {
  seed: number;
  mqttCases: number;
  httpCases: number;
  /** Batches after the warm-up; a probe and a health check follow each. */
  batches: number;
  /** Cases of each kind in the warm-up batch (counted, but before the memory baseline). */
  warmup: number;
  mqttConcurrency: number;
  httpConcurrency: number;
  long: boolean;
  answerMs: number;
  holdMs: number;
  distDir: string;
  root: string;
  /** Run just one case: "mqtt:<index>" or "http:<index>". */
  only?: string;
  log?: (line: string) => void;
}

export interface CategoryCount {
  cases: number;
  /** MQTT: hostile packets sent; HTTP: requests. */
  units: number;
  outcomes: Record<string, number>;
}

export interface Failure {
  kind: "hang" | "5xx" | "leak" | "contract" | "probe" | "crash" | "memory" | "stream-leak" | "internal-error" | "error";
  line: string;
}

export interface Report {
  seed: number;
  durationMs: number;
  mqtt: { cases: number; packets: number; byCategory: Record<string, CategoryCount>; outcomes: Record<string, number> };
  http: {
    cases: number;
    requests: number;
    byCategory: Record<string, CategoryCount>;
    classes: Record<string, number>;
    statuses: Record<string, number>;
    /** Requests this side abandoned mid-body (each may count one "internal" error: see hostile.test.ts). */
    abortedBodies: number;
  };
  /** MQTT 3.1.1 rules the broker did not follow: "category | rule | outcome" -> count (reported, not failed). */
  nonConformant: Record<string, number>;
  /** Cases skipped for conformance because the behaviour is a known issue owned elsewhere. */
  known: Record<string, number>;
  probes: Array<{ afterBatch: number; ms: number }>;
  batches: Array<{ batch: number; mqttCases: number; httpCases: number; ms: number }>;
  memory: { start: Memory; baseline: Memory; end: Memory; peakRss?: number };
  failures: Failure[];
  failureCounts: Record<string, number>;
  /** Gateway counters (from /metrics) over the run. */
  gateway: Record<string, number>;
}

const MAX_FAILURE_LINES = 40;

/** The gateway config under attack (merged over the test defaults): HTTP tokens mode, open embedded broker. */
export const hostileConfig = {
  auth: { mode: "tokens" as const, tokens: Object.values(HOSTILE_TOKENS).map((t) => ({ ...t, read: [...t.read] })) },
  broker: { auth: { mode: "open" as const } },
  // A 1 s heartbeat: stalled SSE readers are found and dropped within the run.
  sse: { heartbeatMs: 1000 },
};

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

export async function metrics(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const sum = (m: Map<string, number>, prefix: string) => [...m].filter(([k]) => k === prefix || k.startsWith(`${prefix}{`)).reduce((s, [, v]) => s + v, 0);

/** A normal device and a normal browser: mqtt.js publishes telemetry; it must arrive over MQTT and SSE. */
export async function probe(target: Target, seq: number, timeoutMs = 15_000): Promise<number> {
  const t0 = performance.now();
  const deviceId = "hx-probe";
  const topic = `sensors/${deviceId}/telemetry`;
  const sse = await connectSse(target.url, { topics: [topic], token: HOSTILE_TOKENS.full.token });
  try {
    const client = await mqtt.connectAsync(target.mqttUrl, { clientId: `hx-probe-${seq}`, reconnectPeriod: 0, connectTimeout: timeoutMs, clean: true });
    try {
      const received = new Promise<void>((resolve) => {
        client.on("message", (t, payload) => {
          try {
            if (t === topic && (JSON.parse(payload.toString()) as { seq: number }).seq === seq) resolve();
          } catch {
            // not the probe's message
          }
        });
      });
      await client.subscribeAsync(topic, { qos: 1 });
      const payload = { v: 1, seq, boot: 1, t: null, readings: { temperature: 20 + (seq % 10) }, battery: 3.7 };
      await client.publishAsync(topic, JSON.stringify(payload), { qos: 1 });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        received,
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`the probe's own subscription got nothing in ${timeoutMs} ms`)), timeoutMs))),
      ]).finally(() => clearTimeout(timer));
      await sse.waitForEvents(1, (e) => e.event === "telemetry" && e.json?.seq === seq && e.json?.deviceId === deviceId, timeoutMs);
    } finally {
      await client.endAsync(true);
    }
  } finally {
    sse.close();
  }
  const health = await fetch(`${target.url}/healthz`);
  if (health.status !== 200) throw new Error(`/healthz answered ${health.status}: ${await health.text()}`);
  return performance.now() - t0;
}

export function generateMqtt(seed: number, from: number, n: number, long: boolean): MqttCase[] {
  const master = new Rng(seed ^ 0x6d717474);
  for (let i = 0; i < from; i++) master.u32();
  return Array.from({ length: n }, (_, k) => {
    const caseSeed = master.u32();
    return mqttCase(new Rng(caseSeed), from + k, caseSeed, long);
  });
}

export function generateHttp(seed: number, from: number, n: number): HttpCase[] {
  const master = new Rng(seed ^ 0x68747470);
  for (let i = 0; i < from; i++) master.u32();
  return Array.from({ length: n }, (_, k) => {
    const caseSeed = master.u32();
    return httpCase(new Rng(caseSeed), from + k, caseSeed);
  });
}

const hex = (b: Buffer, n = 96) => b.subarray(0, n).toString("hex") + (b.length > n ? "…" : "");
const printable = (b: Buffer, n = 200) => JSON.stringify(b.subarray(0, n).toString("latin1")) + (b.length > n ? "…" : "");

export async function runHostile(target: Target, o: RunOptions): Promise<Report> {
  const log = o.log ?? (() => undefined);
  const t0 = performance.now();
  const dist = indexDist(o.distDir, o.root);
  const mctx: CaseContext = { target: target.mqtt, long: o.long, answerMs: o.answerMs };
  const hctx: HttpContext = { target: target.http, dist, answerMs: o.answerMs, holdMs: o.holdMs };

  const report: Report = {
    seed: o.seed,
    durationMs: 0,
    mqtt: { cases: 0, packets: 0, byCategory: {}, outcomes: {} },
    http: { cases: 0, requests: 0, byCategory: {}, classes: {}, statuses: {}, abortedBodies: 0 },
    nonConformant: {},
    known: {},
    probes: [],
    batches: [],
    memory: { start: await target.memory(), baseline: undefined as unknown as Memory, end: undefined as unknown as Memory },
    failures: [],
    failureCounts: {},
    gateway: {},
  };
  const fail = (kind: Failure["kind"], line: string) => {
    report.failureCounts[kind] = (report.failureCounts[kind] ?? 0) + 1;
    if (report.failures.filter((f) => f.kind === kind).length < MAX_FAILURE_LINES) report.failures.push({ kind, line });
  };
  const bump = (rec: Record<string, number>, key: string, n = 1) => (rec[key] = (rec[key] ?? 0) + n);
  const catOf = (rec: Record<string, CategoryCount>, c: string) => (rec[c] ??= { cases: 0, units: 0, outcomes: {} });

  const replayHint = (kind: "mqtt" | "http", index: number) => `replay: HOSTILE_SEED=${o.seed} HOSTILE_ONLY=${kind}:${index}`;
  const mqttLine = (c: MqttCase, r: MqttCaseResult | undefined, why: string) =>
    `seed ${o.seed} mqtt#${c.index} [${c.category}] ${c.label}: ${why}${r?.detail ? ` (${r.detail})` : ""}; bytes after setup ${hex(c.wire)}; ${replayHint("mqtt", c.index)}`;
  const httpLine = (c: HttpCase, why: string) => `seed ${o.seed} http#${c.index} [${c.category}] ${c.label}: ${why}; request ${printable(c.wire)}; ${replayHint("http", c.index)}`;

  const held: Array<() => void> = [];

  const runMqtt = async (c: MqttCase) => {
    let r: MqttCaseResult;
    try {
      r = await c.run(mctx);
    } catch (e) {
      r = { outcome: "error", packets: 0 };
      fail("error", mqttLine(c, undefined, `threw ${(e as Error).message}`));
    }
    report.mqtt.cases++;
    report.mqtt.packets += r.packets;
    const cc = catOf(report.mqtt.byCategory, c.category);
    cc.cases++;
    cc.units += r.packets;
    bump(cc.outcomes, r.outcome);
    bump(report.mqtt.outcomes, r.outcome);
    if (r.hang) fail("hang", mqttLine(c, r, r.hang));
    if (c.known) bump(report.known, `${c.category} | ${c.known} | ${r.outcome}`);
    else if (c.must && !c.must.outcomes.includes(r.outcome) && r.outcome !== "error" && !r.hang) bump(report.nonConformant, `${c.category} | ${c.must.rule}: must ${c.must.outcomes.join("/")} | got ${r.outcome}`);
  };

  const runHttp = async (c: HttpCase) => {
    let r: HttpCaseResult;
    try {
      r = await c.run(hctx);
    } catch (e) {
      r = { statuses: [], outcome: "error", requests: 0, violations: [], contract: [] };
      fail("error", httpLine(c, `threw ${(e as Error).message}`));
    }
    if (r.release) held.push(r.release);
    report.http.cases++;
    report.http.requests += r.requests;
    const cc = catOf(report.http.byCategory, c.category);
    cc.cases++;
    cc.units += r.requests;
    bump(cc.outcomes, r.outcome);
    for (const s of r.statuses) {
      const cls = s === 0 ? "no response (closed)" : `${Math.floor(s / 100)}xx`;
      bump(report.http.classes, cls);
      bump(report.http.statuses, String(s));
    }
    const unanswered = r.requests - r.statuses.length;
    if (r.outcome === "incomplete" && c.category === "commands: body that never ends") report.http.abortedBodies++;
    if (unanswered > 0) bump(report.http.classes, r.outcome === "incomplete" ? "no response (body never finished)" : r.outcome === "held" ? "held (slow reader)" : "no response");
    if (r.hang) fail("hang", httpLine(c, r.hang));
    for (const v of r.violations) fail(v.includes("served ") || v.includes("not a file") ? "leak" : "5xx", httpLine(c, v));
    for (const v of r.contract) fail("contract", httpLine(c, v));
  };

  const m0 = await metrics(target.url);

  if (o.only) {
    const [kind, idx] = o.only.split(":");
    const i = Number(idx);
    if (kind === "mqtt") {
      const [c] = generateMqtt(o.seed, i, 1, o.long);
      log(`replaying mqtt#${i} [${c.category}] ${c.label}; bytes ${hex(c.wire, 400)}`);
      await runMqtt(c);
    } else {
      const [c] = generateHttp(o.seed, i, 1);
      log(`replaying http#${i} [${c.category}] ${c.label}; request ${printable(c.wire, 400)}`);
      await runHttp(c);
    }
    for (const r of held.splice(0)) r();
    report.memory.baseline = report.memory.end = await target.memory();
    report.durationMs = performance.now() - t0;
    return report;
  }

  let probeSeq = 0;
  const doProbe = async (afterBatch: number) => {
    try {
      target.assertAlive();
      const ms = await probe(target, ++probeSeq);
      report.probes.push({ afterBatch, ms: Math.round(ms) });
    } catch (e) {
      fail("probe", `after batch ${afterBatch}: a normal client failed: ${(e as Error).message}`);
    }
  };

  await doProbe(-1);
  let mqttNext = 0;
  let httpNext = 0;
  const sizes: Array<[number, number]> = [[Math.min(o.warmup, o.mqttCases), Math.min(o.warmup, o.httpCases)]];
  const mqttRest = o.mqttCases - sizes[0][0];
  const httpRest = o.httpCases - sizes[0][1];
  for (let b = 0; b < o.batches; b++) {
    const m = Math.floor(((b + 1) * mqttRest) / o.batches) - Math.floor((b * mqttRest) / o.batches);
    const h = Math.floor(((b + 1) * httpRest) / o.batches) - Math.floor((b * httpRest) / o.batches);
    sizes.push([m, h]);
  }

  for (let b = 0; b < sizes.length; b++) {
    const [m, h] = sizes[b];
    const tb = performance.now();
    const mqttCases = generateMqtt(o.seed, mqttNext, m, o.long);
    const httpCases = generateHttp(o.seed, httpNext, h);
    mqttNext += m;
    httpNext += h;
    await Promise.all([pool(mqttCases, o.mqttConcurrency, runMqtt), pool(httpCases, o.httpConcurrency, runHttp)]);
    // The probe runs while this batch's slow SSE readers are still connected.
    await doProbe(b);
    for (const release of held.splice(0)) release();
    const ms = Math.round(performance.now() - tb);
    report.batches.push({ batch: b, mqttCases: m, httpCases: h, ms });
    log(
      `batch ${b}${b === 0 ? " (warm-up)" : ""}: ${m} MQTT + ${h} HTTP cases in ${(ms / 1000).toFixed(1)} s; totals ${report.mqtt.packets} packets, ${report.http.requests} requests; failures ${JSON.stringify(report.failureCounts)}`,
    );
    if (b === 0) report.memory.baseline = await target.memory();
  }

  // Everything this side opened is closed: the gateway must let go of it too.
  const streamsBefore = sum(m0, "gateway_sse_clients");
  try {
    await waitUntil(async () => sum(await metrics(target.url), "gateway_sse_clients") <= streamsBefore, { timeoutMs: 15_000, message: "SSE streams back to the start count" });
  } catch (e) {
    fail("stream-leak", (e as Error).message);
  }
  const brokerStart = 1; // the gateway's own bridge
  try {
    await waitUntil(async () => (await target.brokerClients()) <= brokerStart, { timeoutMs: 15_000, message: "broker clients back to the gateway's own" });
  } catch (e) {
    fail("stream-leak", `${(e as Error).message}: ${await target.brokerClients()} connected`);
  }
  await doProbe(sizes.length);
  try {
    target.assertAlive();
  } catch (e) {
    fail("crash", (e as Error).message);
  }

  const m1 = await metrics(target.url);
  const delta = (name: string) => sum(m1, name) - sum(m0, name);
  report.gateway = {
    mqttMessagesIn: delta("gateway_mqtt_messages_in_total"),
    mqttRejected: delta("gateway_mqtt_messages_rejected_total"),
    brokerClientErrors: delta("gateway_broker_client_errors_total"),
    brokerRefusals: delta("gateway_broker_refusals_total"),
    httpErrors: delta("gateway_http_errors_total"),
    httpInternalErrors: [...m1].filter(([k]) => k.startsWith("gateway_http_errors_total{") && k.includes('code="internal"')).reduce((s, [, v]) => s + v, 0),
    sseDropped: delta("gateway_sse_dropped_clients_total"),
    eventsStored: delta("gateway_events_stored_total"),
  };
  // A body abandoned mid-way counts one "internal" error today (a known finding with a test of its own);
  // any internal error beyond those is new.
  if (report.gateway.httpInternalErrors > report.http.abortedBodies) {
    fail("internal-error", `the gateway counted ${report.gateway.httpInternalErrors} internal errors (500) in gateway_http_errors_total{code="internal"}, ${report.http.abortedBodies} of them explained by abandoned request bodies`);
  }

  report.memory.end = await target.memory();
  report.durationMs = Math.round(performance.now() - t0);
  return report;
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ")).join("\n");
}

export function formatReport(r: Report): string {
  const out: string[] = [];
  out.push(`hostile input, seed ${r.seed} (replay with HOSTILE_SEED=${r.seed}), ${(r.durationMs / 1000).toFixed(1)} s`);
  out.push("", `MQTT: ${r.mqtt.cases} cases, ${r.mqtt.packets} hostile packets; outcomes ${JSON.stringify(r.mqtt.outcomes)}`);
  out.push(
    table([
      ["category", "cases", "packets", "outcomes"],
      ...Object.entries(r.mqtt.byCategory)
        .sort()
        .map(([c, v]) => [c, String(v.cases), String(v.units), Object.entries(v.outcomes).map(([k, n]) => `${k} ${n}`).join(", ")]),
    ]),
  );
  out.push("", `HTTP: ${r.http.cases} cases, ${r.http.requests} requests; by class ${JSON.stringify(r.http.classes)}`);
  out.push(`statuses ${JSON.stringify(r.http.statuses)}; request bodies abandoned mid-way: ${r.http.abortedBodies}`);
  out.push(
    table([
      ["category", "cases", "requests", "outcomes"],
      ...Object.entries(r.http.byCategory)
        .sort()
        .map(([c, v]) => [c, String(v.cases), String(v.units), Object.entries(v.outcomes).map(([k, n]) => `${k} ${n}`).join(", ")]),
    ]),
  );
  if (Object.keys(r.nonConformant).length) {
    out.push("", "MQTT 3.1.1 rules the broker did not follow (reported, not failed):");
    for (const [k, n] of Object.entries(r.nonConformant).sort()) out.push(`  ${n} x ${k}`);
  }
  if (Object.keys(r.known).length) {
    out.push("", "known, not asserted:");
    for (const [k, n] of Object.entries(r.known).sort()) out.push(`  ${n} x ${k}`);
  }
  out.push("", `probes (normal client, ms): ${r.probes.map((p) => `${p.afterBatch}:${p.ms}`).join(" ")}`);
  const { start, baseline, end } = r.memory;
  out.push(
    `memory after GC: start heap ${mb(start.heapUsed)} rss ${mb(start.rss)}; after warm-up heap ${mb(baseline.heapUsed)} rss ${mb(baseline.rss)}; end heap ${mb(end.heapUsed)} rss ${mb(end.rss)}${r.memory.peakRss ? `; peak rss ${mb(r.memory.peakRss)}` : ""}`,
  );
  out.push(`gateway counters: ${JSON.stringify(r.gateway)}`);
  if (r.failures.length) {
    out.push("", `FAILURES ${JSON.stringify(r.failureCounts)}:`);
    for (const f of r.failures) out.push(`  [${f.kind}] ${f.line}`);
  } else out.push("", "no failures");
  return out.join("\n");
}
