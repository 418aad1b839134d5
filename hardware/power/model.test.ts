import { describe, expect, it } from "vitest";
import { estimatePower, ErrPowerInput, type BoardPower, type Figure, type Timing } from "./model.ts";
import { findAwakeTime, loadFigures } from "./figures.ts";
import { listBoardIds } from "../boards/catalog.ts";

const f = (value: number): Figure => ({ value, kind: "estimate", source: "test" });

// Round numbers so the expected results can be checked by hand (see the comments).
const board: BoardPower = {
  name: "test board",
  sleepUa: f(8),
  cpuMa: f(20),
  wifiConnectMa: f(100),
  activeMa: f(80),
  txMa: f(280),
  extraSleepUa: { sensor: f(2) },
};
const timing: Timing = { bootMs: f(500), wifiConnectMs: f(1000), awakeMs: f(500), txMs: f(10) };

describe("estimatePower", () => {
  it("adds the charge of each phase and divides by the cycle length", () => {
    const e = estimatePower({ intervalS: 298, batteryMah: 1000, usableFraction: 0.5, board, timing });
    // awake = 0.5 + 1 + 0.5 = 2 s, cycle = 2 + 298 = 300 s
    expect(e.awakeS).toBeCloseTo(2, 9);
    expect(e.cycleS).toBeCloseTo(300, 9);
    const charge = Object.fromEntries(e.phases.map((p) => [p.name, p.chargeMas]));
    expect(charge["boot"]).toBeCloseTo(10, 9); // 0.5 s × 20 mA
    expect(charge["Wi-Fi connect"]).toBeCloseTo(100, 9); // 1 s × 100 mA
    expect(charge["firmware awake"]).toBeCloseTo(40, 9); // 0.5 s × 80 mA
    expect(charge["transmit (extra)"]).toBeCloseTo(2, 9); // 0.01 s × (280 − 80) mA
    expect(charge["deep sleep"]).toBeCloseTo(2.98, 9); // 298 s × (8 + 2) µA
    expect(e.chargePerCycleMas).toBeCloseTo(154.98, 9);
    expect(e.averageMa).toBeCloseTo(154.98 / 300, 9);
    // 1000 mAh × 0.5 usable / 0.5166 mA = 967.86 h = 40.33 days
    expect(e.lifeHours).toBeCloseTo(500 / (154.98 / 300), 6);
    expect(e.lifeDays).toBeCloseTo(40.327, 2);
  });

  it("gets longer with a longer interval and shorter with a longer awake time", () => {
    const base = { batteryMah: 2500, usableFraction: 0.8, board, timing };
    const short = estimatePower({ ...base, intervalS: 60 });
    const long = estimatePower({ ...base, intervalS: 3600 });
    expect(long.lifeDays).toBeGreaterThan(short.lifeDays);
    const slow = estimatePower({ ...base, intervalS: 300, timing: { ...timing, awakeMs: f(5000) } });
    expect(slow.lifeDays).toBeLessThan(estimatePower({ ...base, intervalS: 300 }).lifeDays);
  });

  it("rejects impossible inputs with a named error", () => {
    const ok = { intervalS: 300, batteryMah: 2500, usableFraction: 0.8, board, timing };
    expect(() => estimatePower({ ...ok, intervalS: 0 })).toThrow(ErrPowerInput);
    expect(() => estimatePower({ ...ok, intervalS: Number.NaN })).toThrow(/interval/);
    expect(() => estimatePower({ ...ok, batteryMah: -1 })).toThrow(/battery capacity/);
    expect(() => estimatePower({ ...ok, usableFraction: 1.5 })).toThrow(/usable fraction/);
  });
});

describe("power figures", () => {
  it("has currents for every board configuration in devs/boards, each with a source", () => {
    const figures = loadFigures();
    for (const id of listBoardIds()) {
      const b = figures.boards[id];
      expect(b, `hardware/power/figures.json lacks board ${id}`).toBeDefined();
      for (const fig of [b.sleepUa, b.cpuMa, b.wifiConnectMa, b.activeMa, b.txMa, ...Object.values(b.extraSleepUa)]) {
        expect(fig.value).toBeGreaterThan(0);
        expect(["datasheet", "vendor", "measured", "estimate"]).toContain(fig.kind);
        expect(fig.source.length).toBeGreaterThan(10);
      }
    }
  });

  it("finds the awake time in a benchmark result at any depth, in ms or s", () => {
    expect(findAwakeTime({ awakeMs: { p50: 400, p95: 700 } })).toEqual({ p50: 400, p95: 700, at: "awakeMs" });
    expect(findAwakeTime({ figures: { qos1: { awakeS: { p50: 0.4, p95: 0.7 } } } })).toEqual({ p50: 400, p95: 700, at: "figures.qos1.awakeS" });
    expect(findAwakeTime({ rss: 91 })).toBeUndefined();
    const perQos = { cycles: [{ qos: 0, awakeMs: { p50: 1, p95: 2 } }, { qos: 1, awakeMs: { p50: 3, p95: 4 } }] };
    expect(findAwakeTime(perQos)).toEqual({ p50: 3, p95: 4, at: "cycles[1].awakeMs" });
  });
});
