/**
 * Issue 3 soak through the real stack: compiled firmware in the simulator → real broker → the gateway
 * (de-duplication on (device, seq), SQLite), on the embedded broker and on Mosquitto with persistence.
 * Per broker kind, a QoS 1 soak and a QoS 2 soak run at the same time (each with its own broker, gateway
 * and fleet: two cores are enough, and it halves the wall time), each 20 devices × 50 wakes with seeded
 * faults of every kind and broker restarts, then a calm drain. Every reading a device stored must be at
 * the gateway exactly once, none lost, no seq reused; QoS 2 must cause no MQTT-level duplicate.
 */
import { describe, expect, test } from "vitest";
import type { FaultPlan } from "../../simulator/src/index.ts";
import { clock, timeline } from "./fleet-record.ts";
import { runSoak, type SoakPlan, type SoakResult } from "./soak-run.ts";
import { soakBrokerKinds, type BrokerKindName, type RestartHow } from "./stack.ts";

const DEVICES = 20;
const WAKES = 50;
const INTERVAL_S = 5;
/**
 * 5 s sleeps last 100 ms: a wake cycle is then ≈ 5 s of awake time under the esp32 profile (the runtime's 1.2 s
 * start, the modelled Wi-Fi 3.5–6 s after boot).
 */
const TIME_SCALE = 50;
const FAULTS: FaultPlan = {
  cutBeforeConnack: 0.05,
  cutMidPublish: 0.03,
  cutBeforeAck: 0.04,
  powerCut: 0.06,
  // esp32 profile: the socket worker's connect hangs past the awake budget; Wi-Fi never associates
  connectHang: 0.02,
  wifiFail: 0.03,
  powerCutWindowMs: 5000,
  powerOffMs: 50,
};
/** Embedded: restarting the broker is restarting the gateway process, by SIGTERM and by SIGKILL. */
const RESTARTS: Record<BrokerKindName, RestartHow[]> = {
  embedded: ["graceful", "kill9", "graceful", "kill9"],
  mosquitto: ["graceful", "graceful", "graceful"],
};

function planFor(kind: BrokerKindName, qos: 1 | 2): SoakPlan {
  return {
    kind,
    qos,
    devices: DEVICES,
    wakes: WAKES,
    seed: 300 + qos,
    faults: FAULTS,
    restarts: RESTARTS[kind],
    intervalS: INTERVAL_S,
    timeScale: TIME_SCALE,
    faultyTimeoutMs: 10 * 60_000,
    drainTimeoutMs: 90_000,
    observerQos: [0, 2],
  };
}

/** What the QoS 0 observer saw of a device: each time the broker routed one of its readings. */
const routed = (d: SoakResult["devices"][number]) => d.observed[0] ?? [];
/** Readings the broker routed more than once (accepted twice from the device): a lower bound, see observer.ts. */
const routedDuplicates = (r: SoakResult): number =>
  r.devices.reduce((n, d) => n + routed(d).length - new Set(routed(d).map((m) => m.body.seq)).size, 0);
/** Readings a persistent QoS 2 subscriber got more than once (the broker → subscriber hop, across restarts). */
const qos2SubscriberDuplicates = (r: SoakResult): number =>
  r.devices.reduce((n, d) => n + (d.observed[2] ?? []).length - new Set((d.observed[2] ?? []).map((m) => m.body.seq)).size, 0);

function summary(r: SoakResult): string {
  const stored = r.devices.reduce((n, d) => n + d.record.stored.size, 0);
  const atGateway = r.devices.reduce((n, d) => n + d.atGateway.length, 0);
  const dupSent = r.devices.reduce((n, d) => n + d.record.telemetryDupSent, 0);
  const f = r.faults;
  return (
    `[soak] ${r.plan.kind} QoS ${r.plan.qos}: ${r.devices.length} devices, ${r.wakes} wakes under faults ` +
    `(≥ ${r.plan.wakes} each), faults cutBeforeConnack=${f["cut-before-connack"]} cutMidPublish=${f["cut-mid-publish"]} ` +
    `cutBeforeAck=${f["cut-before-ack"]} powerCut=${f["power-cut"]} connectHang=${f["connect-hang"]} wifiFail=${f["wifi-fail"]}, restarts ${r.restarts.graceful} graceful + ` +
    `${r.restarts.kill9} kill -9, readings stored ${stored} / at the gateway ${atGateway} (0 lost), ` +
    `MQTT-level duplicates: routed twice by the broker ${routedDuplicates(r)}, received twice by a QoS 2 ` +
    `subscriber ${qos2SubscriberDuplicates(r)}, by the gateway (QoS 1 subscription, de-duplicated) ${r.gatewayDuplicates} ` +
    `(device DUP re-sends ${dupSent}), ${Math.round(r.durationMs / 1000)} s ` +
    `(faulty ${Math.round(r.faultyMs / 1000)} s, calm drain ${Math.round(r.drainMs / 1000)} s with ${r.calmWakes} wakes)`
  );
}

/** For each reading routed twice: when, what the device did meanwhile, and the broker restarts. */
function explainRoutedDuplicates(r: SoakResult): string {
  const out: string[] = [];
  for (const d of r.devices) {
    const times = new Map<number, number[]>();
    for (const m of routed(d)) times.set(m.body.seq, [...(times.get(m.body.seq) ?? []), m.at]);
    for (const [seq, at] of times) {
      if (at.length < 2) continue;
      out.push(`${d.id} seq ${seq} routed at ${at.map(clock).join(", ")}; device timeline:`);
      out.push(timeline(d.record, at[0]! - 6000, at[at.length - 1]! + 1000));
    }
  }
  if (out.length === 0) return "";
  const restarts = r.restartLog.map((x) => `${x.how} at ${clock(x.at)}`).join(", ");
  return `${r.plan.kind} QoS ${r.plan.qos} readings routed twice (restarts: ${restarts}):\n${out.join("\n")}`;
}

function checkSoak(r: SoakResult): void {
  const label = `${r.plan.kind} QoS ${r.plan.qos}`;
  // every kind but torn-write: a torn write bricks the device by design (the runtime reformats its store), and the
  // soak is about losing nothing; torn writes have test/firmware and `npm run bench:torn`
  for (const [kind, n] of Object.entries(r.faults)) {
    if (kind !== "torn-write") expect(n, `${label}: ${kind} faults injected`).toBeGreaterThan(0);
  }
  expect(r.restarts.graceful + r.restarts.kill9, `${label}: restarts`).toBe(r.plan.restarts.length);
  for (const d of r.devices) {
    const at = `${label} device ${d.id}`;
    // the settings reached the firmware (a missing INTERVAL_S/QOS would make every other check meaningless)
    // INTERVAL_S is the wake period (devs/src/clock.ts): a sleep is what is left of one or more periods, at most
    // the few periods an AWAKE_MAX_S=10 wake can span; the firmware's default (60 s) would show here
    const period = r.plan.intervalS * 1000;
    expect(Math.min(...d.faultySleeps), `${at}: sleeps asked for (INTERVAL_S applied?)`).toBeGreaterThan(0);
    expect(Math.max(...d.faultySleeps), `${at}: sleeps asked for (INTERVAL_S applied?)`).toBeLessThanOrEqual(4 * period);
    expect(d.record.telemetryQos, `${at}: telemetry QoS (QOS applied?)`).toEqual(new Set([r.plan.qos]));
    expect(d.faultySleeps.length, `${at}: wakes under faults`).toBeGreaterThanOrEqual(r.plan.wakes);
    expect(d.record.reused, `${at}: a seq stored twice with different values`).toEqual([]);

    const seqs = d.atGateway.map((g) => g.seq);
    expect(new Set(seqs).size, `${at}: a seq stored twice at the gateway`).toBe(seqs.length);
    const sorted = [...seqs].sort((a, b) => a - b);
    // none lost: 1..max, also the readings whose log line a power cut swallowed
    expect(sorted, `${at}: seqs at the gateway`).toEqual(Array.from({ length: sorted.length }, (_, i) => i + 1));
    const byGateway = new Map(d.atGateway.map((g) => [g.seq, g]));
    for (const stored of d.record.stored.values()) {
      const g = byGateway.get(stored.seq);
      expect(g, `${at}: stored seq ${stored.seq} at the gateway`).toBeDefined();
      // the same reading, not another one under a reused seq
      expect(g!.readings, `${at}: values of seq ${stored.seq}`).toEqual(stored.readings);
    }
    // what the broker routed: however often a seq came through, always the same reading (`age` aside: a
    // re-send in a later wake says how old the reading is by then)
    const payloads = new Map<number, Set<string>>();
    for (const m of routed(d)) {
      const { age: _age, ...reading } = m.body as Record<string, unknown>;
      payloads.set(m.body.seq, (payloads.get(m.body.seq) ?? new Set()).add(JSON.stringify(reading)));
    }
    for (const [seq, set] of payloads) expect(set.size, `${at}: distinct readings routed for seq ${seq}`).toBe(1);
  }
  if (r.plan.qos === 2) {
    // the firmware's claim: the broker accepts each QoS 2 reading once, DUP re-sends and power cuts included
    expect(routedDuplicates(r), `${label}: readings the broker routed twice`).toBe(0);
    // and hands it once to a QoS 2 subscriber, broker restarts included (the embedded broker fails this
    // while it re-delivers acknowledged messages after a restart: test/soak/README.md)
    expect(qos2SubscriberDuplicates(r), `${label}: readings a persistent QoS 2 subscriber received twice`).toBe(0);
    // Not asserted: r.gatewayDuplicates. The gateway subscribes with QoS 1, so a broker restart may re-send it
    // a reading it already stored (at least once by design); it de-duplicates on (device, seq), checked above.
  }
}

describe.each(soakBrokerKinds())("soak through the real stack (%s broker)", (kind) => {
  test(`QoS 1 and QoS 2, ${DEVICES} devices × ${WAKES} wakes each, every fault kind, broker restarts: every stored reading once at the gateway`, async () => {
    const runs = await Promise.allSettled([runSoak(planFor(kind, 1)), runSoak(planFor(kind, 2))]);
    const failed = runs.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    const results = runs.map((r) => (r as PromiseFulfilledResult<SoakResult>).value);
    for (const r of results) console.log(summary(r));
    for (const r of results) if (r.plan.qos === 2 && routedDuplicates(r) > 0) console.log(explainRoutedDuplicates(r));
    for (const r of results) checkSoak(r);
  }, 14 * 60_000);
});
