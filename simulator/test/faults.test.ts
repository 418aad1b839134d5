import { describe, expect, it } from "vitest";
import { parseFaultSpec } from "../src/fault-spec.ts";
import { DeviceFaults, FAULT_KINDS, type FaultPlan, type FaultRecord } from "../src/faults.ts";
import { sensorReading } from "../src/sensor-values.ts";

const PLAN: FaultPlan = { cutBeforeConnack: 0.2, cutMidPublish: 0.1, cutBeforeAck: 0.3, powerCut: 0.05 };

/** The decisions a device would make over `n` opportunities of every kind, in a fixed interleaving. */
function schedule(seed: number, deviceIndex: number, n: number): (FaultRecord | undefined)[] {
  const faults = new DeviceFaults(PLAN, seed, deviceIndex, () => {});
  const out: (FaultRecord | undefined)[] = [];
  for (let i = 0; i < n; i++) for (const kind of FAULT_KINDS) out.push(faults.decide(kind));
  return out;
}

describe("seeded fault schedule", () => {
  it("the same seed gives the same schedule; another seed or device gives another", () => {
    const a = schedule(42, 0, 500);
    expect(schedule(42, 0, 500)).toEqual(a);
    expect(schedule(43, 0, 500)).not.toEqual(a);
    expect(schedule(42, 1, 500)).not.toEqual(a);
  });

  it("decides each kind at about its probability; injected faults are counted and reported", () => {
    const reported: FaultRecord[] = [];
    const faults = new DeviceFaults(PLAN, 7, 0, (r) => reported.push(r));
    const n = 4000;
    for (let i = 0; i < n; i++) {
      for (const kind of FAULT_KINDS) {
        const fault = faults.decide(kind);
        if (fault) faults.inject(fault);
      }
    }
    expect(reported.length).toBe(Object.values(faults.injected).reduce((a, b) => a + b, 0));
    expect(faults.injected["cut-before-connack"] / n).toBeCloseTo(0.2, 1);
    expect(faults.injected["cut-mid-publish"] / n).toBeCloseTo(0.1, 1);
    expect(faults.injected["cut-before-ack"] / n).toBeCloseTo(0.3, 1);
    expect(faults.injected["power-cut"] / n).toBeCloseTo(0.05, 1);
  });

  it("no plan means no faults", () => {
    const faults = new DeviceFaults({}, 1, 0, () => {});
    for (let i = 0; i < 1000; i++) for (const kind of FAULT_KINDS) expect(faults.decide(kind)).toBeUndefined();
  });

  it("parses the command-line spec and rejects bad ones with a clear message", () => {
    expect(parseFaultSpec("cutMidPublish=0.1, powerCut=0.02,seed=9")).toEqual({ cutMidPublish: 0.1, powerCut: 0.02, seed: 9 });
    expect(() => parseFaultSpec("cutMidPublish=2")).toThrow(/probability in \[0, 1\]/);
    expect(() => parseFaultSpec("bogus=1")).toThrow(/not one of/);
    expect(() => parseFaultSpec("powerCut=x")).toThrow(/needs a number/);
  });
});

describe("simulated sensor values", () => {
  it("are a pure function of (seed, device, time) and vary over time", () => {
    const t0 = 1_764_000_000_000;
    expect(sensorReading(1, 0, t0)).toEqual(sensorReading(1, 0, t0));
    expect(sensorReading(1, 0, t0)).not.toEqual(sensorReading(1, 1, t0));
    expect(sensorReading(1, 0, t0)).not.toEqual(sensorReading(2, 0, t0));
    const hourly = Array.from({ length: 6 }, (_, h) => sensorReading(1, 0, t0 + h * 3_600_000).temperature);
    expect(Math.max(...hourly) - Math.min(...hourly)).toBeGreaterThan(1);
  });
});
