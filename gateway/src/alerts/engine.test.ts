/** The alert state machine on its own: hysteresis, for-duration, flapping, late readings, overdue, offline. */
import { describe, expect, test } from "vitest";
import type { AlertData, StatusData, TelemetryData } from "../protocol/events.ts";
import { newDevice } from "../protocol/device-state.ts";
import { AlertEngine, type Transition } from "./engine.ts";
import { parseRule } from "./rules.ts";

const T0 = 1_800_000_000_000;

function reading(seq: number, temperature: number, opts: { t?: number; battery?: number | null; device?: string } = {}): TelemetryData {
  const deviceId = opts.device ?? "d1";
  const t = opts.t ?? T0 + seq * 10_000;
  return {
    deviceId,
    topic: `sensors/${deviceId}/telemetry`,
    seq,
    boot: 1,
    t,
    age: null,
    timeSource: "device",
    receivedAt: t,
    readings: { temperature },
    battery: opts.battery ?? null,
    dropped: 0,
    corrupt: 0,
  };
}

/** Runs readings through the engine like alerts.ts does: fires get ids, and the engine is told. */
function run(engine: AlertEngine, inputs: TelemetryData[]): string[] {
  let id = 0;
  const log: string[] = [];
  for (const r of inputs) {
    for (const t of engine.onTelemetry(r)) log.push(applied(engine, t, () => ++id, r.seq));
  }
  return log;
}

function applied(engine: AlertEngine, t: Transition, nextId: () => number, at: number | string): string {
  if (t.type === "fire") {
    engine.update({ ...t.alert, alertId: nextId() } as AlertData);
    return `fire@${at}`;
  }
  engine.update({ alertId: t.alertId, ruleId: t.ruleId, deviceId: t.deviceId, state: "resolved" } as AlertData);
  return `resolve@${at}`;
}

const hot = (extra: Record<string, unknown> = {}) => parseRule({ id: "hot", kind: "threshold", metric: "temperature", above: 30, ...extra });

describe("threshold rules", () => {
  test("fires once per crossing; a value flapping inside the hysteresis band neither resolves nor fires again", () => {
    const engine = new AlertEngine([hot({ hysteresis: 2 })]);
    const values = [25, 31, 29.5, 30.5, 28.5, 31, 27.9, 29, 31];
    expect(run(engine, values.map((v, i) => reading(i + 1, v)))).toEqual(["fire@2", "resolve@7", "fire@9"]);
  });

  test("without hysteresis a flapping value fires at every crossing (what hysteresis is for)", () => {
    const engine = new AlertEngine([hot()]);
    expect(run(engine, [31, 29, 31, 29].map((v, i) => reading(i + 1, v)))).toEqual(["fire@1", "resolve@2", "fire@3", "resolve@4"]);
  });

  test("forS: the breach must hold for that long in reading time; a dip restarts the clock", () => {
    const engine = new AlertEngine([hot({ forS: 25 })]);
    // readings every 10 s: breach at 1,2 (10 s held), dip at 3, breach 4..7 (30 s held at 7)
    const values = [31, 32, 29, 31, 31, 31, 31];
    expect(run(engine, values.map((v, i) => reading(i + 1, v)))).toEqual(["fire@7"]);
  });

  test("forReadings: that many breaching readings in a row", () => {
    const engine = new AlertEngine([hot({ forReadings: 3 })]);
    expect(run(engine, [31, 31, 20, 31, 31, 31].map((v, i) => reading(i + 1, v)))).toEqual(["fire@6"]);
  });

  test("below, and a rule scoped by device glob and topic filter", () => {
    const cold = parseRule({ id: "cold", kind: "threshold", metric: "temperature", below: 0, scope: { devices: "freezer-*", topic: "sensors/+/telemetry" } });
    const engine = new AlertEngine([cold]);
    expect(run(engine, [reading(1, -5, { device: "kitchen" })])).toEqual([]);
    expect(run(engine, [reading(1, -5, { device: "freezer-1" })])).toEqual(["fire@1"]);
  });

  test("a late, older reading (lower seq) is stored but says nothing about now", () => {
    const engine = new AlertEngine([hot()]);
    expect(run(engine, [reading(5, 20), reading(3, 40, { t: T0 })])).toEqual([]);
  });

  test("a disabled rule does nothing; removing a rule resolves its firing alerts", () => {
    expect(run(new AlertEngine([hot({ enabled: false })]), [reading(1, 40)])).toEqual([]);
    const engine = new AlertEngine([hot()]);
    expect(run(engine, [reading(1, 40)])).toEqual(["fire@1"]);
    expect(engine.setRules([]).map((t) => t.type)).toEqual(["resolve"]);
  });

  test("changing a firing rule (threshold, metric, scope) resolves its alert; the new rule decides afresh", () => {
    const engine = new AlertEngine([hot()]);
    expect(run(engine, [reading(1, 40)])).toEqual(["fire@1"]);
    expect(engine.setRules([hot()])).toEqual([]); // the same rule again: nothing changes
    const moved = engine.setRules([hot({ scope: { device: "d2" } })]);
    expect(moved).toMatchObject([{ type: "resolve", ruleId: "hot", deviceId: "d1" }]);
  });

  test("an alert firing before a restart (loaded from the store) resolves instead of firing again", () => {
    const engine = new AlertEngine([hot()]);
    engine.load([{ alertId: 7, ruleId: "hot", deviceId: "d1", kind: "threshold", state: "firing" } as AlertData]);
    expect(engine.onTelemetry(reading(1, 40))).toEqual([]);
    expect(engine.onTelemetry(reading(2, 20))).toMatchObject([{ type: "resolve", alertId: 7 }]);
  });
});

describe("battery, overdue and offline", () => {
  test("battery below a level, with its hysteresis", () => {
    const engine = new AlertEngine([parseRule({ id: "bat", kind: "battery", below: 3.4, hysteresis: 0.1 })]);
    const volts = [3.6, 3.39, 3.45, 3.3, 3.51];
    expect(run(engine, volts.map((v, i) => reading(i + 1, 20, { battery: v })))).toEqual(["fire@2", "resolve@5"]);
  });

  const status = (state: StatusData["state"], at: number): StatusData => ({
    deviceId: "d1",
    topic: "sensors/d1/status",
    state,
    sleepMs: state === "sleeping" ? 60_000 : null,
    nextWakeAt: state === "sleeping" ? at + 60_000 : null,
    receivedAt: at,
  });

  test("overdue: the clock fires it after sleepMs × factor + grace; the next report resolves it", () => {
    const engine = new AlertEngine([parseRule({ id: "overdue", kind: "overdue", factor: 2, graceS: 30 })]);
    const d = { ...newDevice("d1"), status: "sleeping" as const, statusAt: T0, nextWakeAt: T0 + 60_000 };
    expect(engine.check([d], T0 + 150_000)).toEqual([]);
    const fired = engine.check([d], T0 + 150_001);
    expect(fired).toMatchObject([{ type: "fire", alert: { kind: "overdue", deviceId: "d1", topic: "sensors/d1/status" } }]);
    applied(engine, fired[0]!, () => 1, "check");
    expect(engine.check([d], T0 + 200_000)).toEqual([]); // once
    expect(engine.onStatus(status("online", T0 + 210_000))).toMatchObject([{ type: "resolve", alertId: 1 }]);
  });

  test("offline: a Last Will fires it, a reading resolves it", () => {
    const engine = new AlertEngine([parseRule({ id: "offline", kind: "offline" })]);
    const fired = engine.onStatus(status("offline", T0));
    expect(fired).toMatchObject([{ type: "fire", alert: { kind: "offline" } }]);
    applied(engine, fired[0]!, () => 1, "lwt");
    expect(engine.onStatus(status("offline", T0 + 1))).toEqual([]);
    expect(engine.onTelemetry(reading(1, 20))).toMatchObject([{ type: "resolve", alertId: 1 }]);
  });
});

describe("a deleted device (forgetDevice)", () => {
  test("counts its firing alerts until forgotten; back with a lower seq, its readings are evaluated again", () => {
    const engine = new AlertEngine([hot()]);
    expect(run(engine, [reading(5, 31)])).toEqual(["fire@5"]);
    expect(engine.firingCount("d1")).toBe(1);
    // without forgetting, a reading older than seq 5 is late and says nothing
    expect(engine.onTelemetry(reading(1, 20))).toEqual([]);
    engine.forgetDevice("d1");
    expect(engine.firingCount("d1")).toBe(0);
    // re-flashed: seq starts over, and a breach fires again
    expect(run(engine, [reading(1, 32)])).toEqual(["fire@1"]);
  });
});
