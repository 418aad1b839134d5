/**
 * One soak run through the real stack: a fleet running the compiled firmware with seeded faults of every
 * kind, broker restarts at fixed points of its progress, then a calm fleet on the same flash images that
 * drains every outbox. Returns what the devices stored, what the gateway kept and what the broker routed;
 * the test file decides what must hold.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFleet, type FaultCounters, type FaultPlan, type Fleet } from "../../simulator/src/index.ts";
import { assertFleetHealthy } from "../helpers/fleet-health.ts";
import { waitUntil } from "../helpers/wait.ts";
import { clock, FleetRecord, timeline } from "./fleet-record.ts";
import { allReadings, type StoredReading } from "./gateway-api.ts";
import { startObserver, type Observed, type Observer } from "./observer.ts";
import { startStack, type BrokerKindName, type RestartHow } from "./stack.ts";

export interface SoakPlan {
  kind: BrokerKindName;
  qos: 1 | 2;
  devices: number;
  /** completed wakes (standby requests) every device must reach under faults */
  wakes: number;
  seed: number;
  faults: FaultPlan;
  /** restarts, spread evenly over the faulty phase */
  restarts: RestartHow[];
  intervalS: number;
  timeScale: number;
  /** deadline of the faulty phase */
  faultyTimeoutMs: number;
  /** deadline of the calm drain */
  drainTimeoutMs: number;
  /**
   * Subscription QoS of the independent observers, default [0]: a QoS 0 subscriber gets each message once per
   * time the broker routes it (no redelivery of its own), so a seq seen twice was accepted twice from the
   * device. It misses what is routed while it reconnects after a restart: a lower bound. See observer.ts.
   */
  observerQos?: (0 | 1 | 2)[];
}

export interface DeviceOutcome {
  id: string;
  record: ReturnType<FleetRecord["device"]>;
  /** what the gateway stored for this device */
  atGateway: StoredReading[];
  /** telemetry each observer (by its subscription QoS) got from the broker for this device */
  observed: Partial<Record<0 | 1 | 2, Observed[]>>;
  /** standby requests of the faulty phase (sleep ms asked for) */
  faultySleeps: number[];
}

export interface SoakResult {
  plan: SoakPlan;
  devices: DeviceOutcome[];
  faults: FaultCounters;
  restarts: Record<RestartHow, number>;
  /** when each restart began (Date.now()) */
  restartLog: { how: RestartHow; at: number }[];
  wakes: number;
  /** gateway_duplicate_readings_total over every gateway process */
  gatewayDuplicates: number;
  /** wakes the calm fleet needed until every stored reading was at the gateway (one per device at best) */
  calmWakes: number;
  faultyMs: number;
  drainMs: number;
  durationMs: number;
}

/** Long enough that every device is asleep at once after its calm wake (at timeScale 50: 72 s). */
const CALM_INTERVAL_S = 3600;

export async function runSoak(plan: SoakPlan): Promise<SoakResult> {
  const started = Date.now();
  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    const stack = await startStack(plan.kind);
    cleanups.push(() => stack.close());
    const observers = new Map<0 | 1 | 2, Observer>();
    for (const qos of plan.observerQos ?? [0]) {
      const observer = await startObserver(stack.brokerUrl, ["sensors/+/telemetry"], { qos });
      cleanups.push(() => observer.close());
      observers.set(qos, observer);
    }
    const flashDir = mkdtempSync(join(tmpdir(), `soak-flash-${plan.kind}-qos${plan.qos}-`));
    cleanups.push(() => rmSync(flashDir, { recursive: true, force: true }));
    const record = new FleetRecord();
    const fleetOptions = { devices: plan.devices, brokerUrl: stack.brokerUrl, seed: plan.seed, timeScale: plan.timeScale, flashDir };

    const faulty: Fleet = await startFleet({
      ...fleetOptions,
      eraseFlash: true,
      settings: { INTERVAL_S: plan.intervalS, QOS: plan.qos, AWAKE_MAX_S: 10 },
      faults: plan.faults,
    });
    cleanups.push(() => faulty.stop());
    record.attach(faulty);
    const ids = faulty.devices.map((d) => d.id);
    const totalWakes = () => ids.reduce((n, id) => n + record.wakes(id), 0);
    const context = () => `${plan.kind} QoS ${plan.qos}: ${totalWakes()} wakes, min ${Math.min(...ids.map((id) => record.wakes(id)))}`;
    // A stalled faulty phase says where each of the slowest devices stands, and what the broker said.
    const stalled = (e: Error): never => {
      const slowest = [...faulty.devices].sort((a, b) => record.wakes(a.id) - record.wakes(b.id)).slice(0, 3);
      const lines = slowest.map((d) => {
        const last = record.device(d.id).standbys.at(-1)?.at ?? started;
        return `${d.id}: ${record.wakes(d.id)} wakes, state ${d.state}, boots ${d.boots}, last standby ${clock(last)}\n` +
          timeline(record.device(d.id), last - 1000, Date.now());
      });
      const restarts = restartLog.map((x) => `${x.how} at ${clock(x.at)}`).join(", ") || "none";
      throw new Error(`${e.message}; restarts: ${restarts}\n${lines.join("\n")}\n--- gateway/broker ---\n${stack.gatewayOutput().slice(-4000)}`);
    };

    const restartLog: SoakResult["restartLog"] = [];
    // restarts at evenly spaced fractions of the expected wakes, while devices are mid-cycle
    for (const [i, how] of plan.restarts.entries()) {
      const at = Math.round(((i + 1) * plan.devices * plan.wakes) / (plan.restarts.length + 1));
      await waitUntil(() => totalWakes() >= at, { timeoutMs: plan.faultyTimeoutMs, intervalMs: 100, message: `${at} wakes before restart ${i + 1} (${context()})` }).catch(stalled);
      restartLog.push({ how, at: Date.now() });
      await stack.restartBroker(how);
    }
    await waitUntil(() => ids.every((id) => record.wakes(id) >= plan.wakes), {
      timeoutMs: plan.faultyTimeoutMs,
      intervalMs: 200,
      message: `${plan.wakes} wakes per device (${context()})`,
    }).catch(stalled);
    const faults = faulty.counters().faults;
    const faultySleeps = new Map(ids.map((id) => [id, record.devices.get(id)!.standbys.map((s) => s.ms)]));
    const wakes = totalWakes();
    const faultyMs = Date.now() - started;
    // stopping mid-wake is one more power cut for the devices that are awake
    await faulty.stop();
    assertFleetHealthy(faulty);

    // calm drain: same flash, no faults, a long sleep after one wake so the whole fleet comes to rest
    const calm = await startFleet({ ...fleetOptions, settings: { INTERVAL_S: CALM_INTERVAL_S, QOS: plan.qos, AWAKE_MAX_S: 10 } });
    cleanups.push(() => calm.stop());
    const calmFrom = new Map(ids.map((id) => [id, record.wakes(id)]));
    record.attach(calm);
    const missingAtGateway = async (): Promise<string[]> => {
      const missing: string[] = [];
      for (const id of ids) {
        const have = new Set((await allReadings(stack.gatewayUrl, id)).map((r) => r.seq));
        for (const seq of record.device(id).stored.keys()) if (!have.has(seq)) missing.push(`${id}#${seq}`);
      }
      return missing;
    };
    let lastMissing: string[] = [];
    await waitUntil(
      async () => {
        const resting = calm.devices.every((d) => d.state === "sleeping" && record.wakes(d.id) > calmFrom.get(d.id)!);
        if (!resting) return false;
        lastMissing = await missingAtGateway();
        return lastMissing.length === 0;
      },
      { timeoutMs: plan.drainTimeoutMs, intervalMs: 500, message: "the calm drain" },
    ).catch((e: Error) => {
      const awake = calm.devices.filter((d) => d.state !== "sleeping").map((d) => `${d.id} (${d.state})`);
      throw new Error(
        `${e.message}: every device asleep after a calm wake and every stored reading at the gateway (${context()}); ` +
          `not resting: ${awake.join(" ") || "none"}; missing at the gateway (${lastMissing.length}): ${lastMissing.slice(0, 20).join(" ") || "none"}\n` +
          `--- gateway ---\n${stack.gatewayOutput().slice(-4000)}`,
      );
    });
    const calmWakes = totalWakes() - wakes;
    const drainMs = Date.now() - started - faultyMs;
    await calm.stop();

    const devices: DeviceOutcome[] = [];
    for (const id of ids) {
      devices.push({
        id,
        record: record.device(id),
        atGateway: await allReadings(stack.gatewayUrl, id),
        observed: Object.fromEntries([...observers].map(([qos, o]) => [qos, o.on(`sensors/${id}/telemetry`)])),
        faultySleeps: faultySleeps.get(id)!,
      });
    }
    return {
      plan,
      devices,
      faults,
      restarts: { ...stack.restarts },
      restartLog,
      wakes,
      gatewayDuplicates: await stack.duplicateReadings(),
      calmWakes,
      faultyMs,
      drainMs,
      durationMs: Date.now() - started,
    };
  } finally {
    for (const c of cleanups.reverse()) await c();
  }
}
