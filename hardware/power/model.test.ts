import { describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { estimatePower, ErrPowerInput, FIGURE_KINDS, type BoardPower, type Figure, type Timing } from "./model.ts";
import { awakePhases, loadFigures, loadSplit, MIN_BOARD_WIFI_MS, readSplit, type AwakeSplit, type Figures } from "./figures.ts";
import { listBoardIds } from "../boards/catalog.ts";

const f = (value: number): Figure => ({ value, kind: "modelled", source: "test" });

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
const timing: Timing = {
  awake: [
    { name: "boot", duration: f(500), current: "cpuMa" },
    { name: "Wi-Fi connect", duration: f(1000), current: "wifiConnectMa" },
    { name: "firmware awake", duration: f(500), current: "activeMa" },
  ],
  txMs: f(10),
};

describe("estimatePower", () => {
  it("adds the charge of each phase and divides by the cycle length", () => {
    const e = estimatePower({ intervalS: 300, batteryMah: 1000, usableFraction: 0.5, board, timing });
    // INTERVAL_S is the wake period: awake = 0.5 + 1 + 0.5 = 2 s, cycle = 300 s, deep sleep = 298 s
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
    const slow = estimatePower({ ...base, intervalS: 300, timing: { ...timing, awake: [...timing.awake, { name: "more", duration: f(4500), current: "activeMa" }] } });
    expect(slow.lifeDays).toBeLessThan(estimatePower({ ...base, intervalS: 300 }).lifeDays);
  });

  it("rejects impossible inputs with a named error", () => {
    const ok = { intervalS: 300, batteryMah: 2500, usableFraction: 0.8, board, timing };
    expect(() => estimatePower({ ...ok, intervalS: 0 })).toThrow(ErrPowerInput);
    expect(() => estimatePower({ ...ok, intervalS: Number.NaN })).toThrow(/interval/);
    expect(() => estimatePower({ ...ok, batteryMah: -1 })).toThrow(/battery capacity/);
    expect(() => estimatePower({ ...ok, usableFraction: 1.5 })).toThrow(/usable fraction/);
    expect(() => estimatePower({ ...ok, timing: { ...timing, awake: [{ name: "odd", duration: f(-1), current: "cpuMa" }] } })).toThrow(/odd: duration/);
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
        expect(FIGURE_KINDS).toContain(fig.kind);
        expect(fig.source.length).toBeGreaterThan(10);
      }
    }
  });

  it("labels every figure measured (simulator), modelled or datasheet", () => {
    const figures = loadFigures();
    const all = [
      ...Object.values(figures.timing),
      ...Object.values(figures.boards).flatMap((b) => [b.sleepUa, b.cpuMa, b.wifiConnectMa, b.activeMa, b.txMa, ...Object.values(b.extraSleepUa)]),
    ];
    for (const fig of all) expect(["modelled", "datasheet"]).toContain(fig.kind); // nothing in figures.json is measured here
    expect(FIGURE_KINDS).toContain("measured (simulator)");
  });
});

// A benchmark in the format `npm run bench:sim` is being changed to (figures.ts has the field contract).
const BENCH = {
  generatedAt: "2026-12-02T10:00:00Z",
  esp32: {
    qos1: {
      p50: { runtimeStartMs: 1100, wifiMs: 3200, mqttMs: 200, commandWaitMs: 600, goodbyeMs: 100, awakeMs: 5500, flashWritesPerWake: 2 },
      p95: { runtimeStartMs: 1200, wifiMs: 4000, mqttMs: 300, commandWaitMs: 700, goodbyeMs: 200, awakeMs: 6300, flashWritesPerWake: 2 },
    },
  },
  vm: { qos1: { p50: { runtimeStartMs: 1100, wifiMs: 0, mqttMs: 100, commandWaitMs: 600, goodbyeMs: 100, awakeMs: 2200 }, p95: { runtimeStartMs: 1100, wifiMs: 0, mqttMs: 100, commandWaitMs: 600, goodbyeMs: 100, awakeMs: 2200 } } },
};

const figures: Figures = {
  timing: {
    wakeOverheadMs: f(300),
    wifiWaitMs: { value: 3000, p95: 4000, kind: "modelled", source: "test Wi-Fi model" },
    txMs: f(8),
  },
  boards: { test: board },
};

const byName = (phases: { name: string; duration: Figure }[]) => Object.fromEntries(phases.map((p) => [p.name, p.duration]));

describe("the measured awake-time split", () => {
  it("reads esp32.qos<n>.p50/p95 of a benchmark, esp32 before vm", () => {
    const split = readSplit(BENCH, "/x/bench.json")!;
    expect(split).toMatchObject({ at: "esp32.qos1", profile: "esp32", qos: 1, date: "2026-12-02T10:00:00Z" });
    expect(split.p95).toEqual(BENCH.esp32.qos1.p95);
    expect(readSplit({ vm: BENCH.vm }, "/x/bench.json")!.at).toBe("vm.qos1");
    expect(readSplit(BENCH, "/x/bench.json", 2)).toBeUndefined();
    expect(readSplit({ cycles: [{ qos: 1, awakeMs: { p50: 1, p95: 2 } }] }, "/x")).toBeUndefined(); // the old format
    expect(() => readSplit({ esp32: { qos1: { p50: { awakeMs: "5 s" }, p95: {} } } }, "/x/b.json")).toThrow(/esp32\.qos1\.p50\.awakeMs: expected a number/);
    expect(() => readSplit({ esp32: { qos1: { p50: { awakeMs: 5, mqttMs: -1 }, p95: { awakeMs: 5 } } } }, "/x/b.json")).toThrow(/p50\.mqttMs/);
  });

  it("splits the awake time into its phases, each labelled, the rest being the firmware's CPU work", () => {
    const split = readSplit(BENCH, "/x/bench.json")!;
    const { phases, notes } = awakePhases(split, figures, "p50");
    expect(notes).toEqual([]);
    expect(phases.map((p) => [p.name, p.duration.value, p.duration.kind, p.current])).toEqual([
      ["wake overhead", 300, "modelled", "cpuMa"],
      ["runtime start", 1100, "measured (simulator)", "cpuMa"],
      ["firmware work", 300, "measured (simulator)", "cpuMa"], // 5500 − 1100 − 3200 − 200 − 600 − 100
      ["Wi-Fi (scan, join, DHCP)", 3200, "modelled", "wifiConnectMa"], // the simulator's esp32 Wi-Fi is a model
      ["MQTT connect + flush", 200, "measured (simulator)", "activeMa"],
      ["command wait", 600, "measured (simulator)", "activeMa"],
      ["goodbye", 100, "measured (simulator)", "activeMa"],
    ]);
    const e = estimatePower({ intervalS: 300, batteryMah: 1000, usableFraction: 1, board, timing: { awake: phases, txMs: f(0) } });
    expect(e.awakeS).toBeCloseTo(5.8, 9); // wake overhead + awakeMs
    // charge: 0.3×20 + 1.1×20 + 0.3×20 + 3.2×100 + (0.2 + 0.6 + 0.1)×80 + (300 − 5.8) × 0.010
    expect(e.chargePerCycleMas).toBeCloseTo(6 + 22 + 6 + 320 + 72 + 294.2 * 0.01, 9);
  });

  it("adds the modelled Wi-Fi wait when the benchmark ran without the Wi-Fi model (vm profile, or no wifiMs)", () => {
    const vm = readSplit({ vm: BENCH.vm }, "/x/bench.json")!;
    const { phases, notes } = awakePhases(vm, figures, "p95");
    expect(byName(phases)["Wi-Fi (scan, join, DHCP)"]).toMatchObject({ value: 4000, kind: "modelled", source: "test Wi-Fi model (p95)" });
    expect(byName(phases)["firmware work"]!.value).toBe(300); // 2200 + 4000 − 1100 − 4000 − 100 − 600 − 100
    expect(notes.join("\n")).toMatch(new RegExp(`wifiMs is 0 ms, too short .* the vm profile has no Wi-Fi model`));
    expect(MIN_BOARD_WIFI_MS).toBeGreaterThan(0);

    const awakeOnly: AwakeSplit = { file: "m.json", at: "vm.qos1", profile: "vm", qos: 1, date: null, p50: { awakeMs: 2453 }, p95: { awakeMs: 2465 } };
    const r = awakePhases(awakeOnly, figures, "p50");
    expect(r.phases.map((p) => [p.name, p.duration.value, p.duration.kind, p.current])).toEqual([
      ["wake overhead", 300, "modelled", "cpuMa"],
      ["Wi-Fi (scan, join, DHCP)", 3000, "modelled", "wifiConnectMa"],
      ["firmware awake", 2453, "measured (simulator)", "activeMa"],
    ]);
    expect(r.notes.join("\n")).toMatch(/has no wifiMs: the modelled Wi-Fi wait is added/);
  });

  it("uses your board's awake and Wi-Fi times when given, keeping the measured parts", () => {
    const split = readSplit(BENCH, "/x/bench.json")!;
    const { phases } = awakePhases(split, figures, "p50", { awakeMs: 7000, wifiMs: 4500 });
    const p = byName(phases);
    expect(p["Wi-Fi (scan, join, DHCP)"]).toMatchObject({ value: 4500, kind: "measured (given)" });
    expect(p["firmware work"]).toMatchObject({ value: 7000 - 1100 - 4500 - 200 - 600 - 100, kind: "measured (given)" });
    // only --wifi-ms: the simulator's awake time with its Wi-Fi swapped for yours
    const w = byName(awakePhases(split, figures, "p50", { wifiMs: 2000 }).phases);
    expect(w["firmware work"]!.value).toBe(300);
  });

  it("never makes a phase negative: percentiles of the parts need not add up", () => {
    const tight: AwakeSplit = { ...readSplit(BENCH, "/x")!, p50: { ...BENCH.esp32.qos1.p50, awakeMs: 5000 } };
    const { phases, notes } = awakePhases(tight, figures, "p50");
    expect(byName(phases)["firmware work"]!.value).toBe(0);
    expect(notes.join("\n")).toMatch(/firmware work: the parts add up to 200 ms more than the awake time/);
  });

  it("prefers bench-results/simulator.json, falls back to measured.json (also for an old benchmark format)", () => {
    const dir = mkdtempSync(join(tmpdir(), "power-split-"));
    try {
      const bench = join(dir, "simulator.json");
      const measured = join(dir, "measured.json");
      writeFileSync(measured, JSON.stringify({ date: "2026-11-25", vm: { qos1: { p50: { awakeMs: 2453 }, p95: { awakeMs: 2465 } } } }));
      expect(loadSplit({ benchFile: bench, measuredFile: measured })).toMatchObject({ split: { at: "vm.qos1", date: "2026-11-25" }, notes: [] });
      writeFileSync(bench, JSON.stringify(BENCH));
      expect(loadSplit({ benchFile: bench, measuredFile: measured }).split).toMatchObject({ at: "esp32.qos1", file: bench });
      expect(loadSplit({ benchFile: null, measuredFile: measured }).split.at).toBe("vm.qos1");
      writeFileSync(bench, JSON.stringify({ cycles: [{ qos: 1, awakeMs: { p50: 1, p95: 2 } }] }));
      const old = loadSplit({ benchFile: bench, measuredFile: measured });
      expect(old.split.at).toBe("vm.qos1");
      expect(old.notes.join("\n")).toMatch(/has no esp32\.qos1 .* older benchmark format/);
      expect(() => loadSplit({ benchFile: null, measuredFile: measured, qos: 2 })).toThrow(/no awake-time split for QoS 2/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the committed measured.json has a split for the default QoS", () => {
    const { split } = loadSplit({ benchFile: null });
    expect(split.p50.awakeMs).toBeGreaterThan(0);
    expect(split.p95.awakeMs).toBeGreaterThanOrEqual(split.p50.awakeMs);
  });
});
