import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runTool } from "../run-tsx.ts";
import { importBench, loadSplit } from "./figures.ts";

const CLI = "hardware/power/cli.ts";

// The split of a benchmark in the format of `npm run bench:sim` (hardware/power/figures.ts).
const BENCH = {
  generatedAt: "2026-12-02T10:00:00Z",
  esp32: {
    qos1: {
      p50: { runtimeStartMs: 1100, wifiMs: 3200, mqttMs: 200, commandWaitMs: 600, goodbyeMs: 100, awakeMs: 5500, flashWritesPerWake: 2 },
      p95: { runtimeStartMs: 1200, wifiMs: 4000, mqttMs: 300, commandWaitMs: 700, goodbyeMs: 200, awakeMs: 6500, flashWritesPerWake: 2 },
    },
    qos2: {
      p50: { runtimeStartMs: 1100, wifiMs: 3200, mqttMs: 260, commandWaitMs: 600, goodbyeMs: 150, awakeMs: 5600, flashWritesPerWake: 2 },
      p95: { runtimeStartMs: 1200, wifiMs: 4000, mqttMs: 350, commandWaitMs: 700, goodbyeMs: 250, awakeMs: 6400, flashWritesPerWake: 2 },
    },
  },
};

function withBench<T>(run: (bench: string, dir: string) => Promise<T> | T): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "power-"));
  const bench = join(dir, "simulator.json");
  writeFileSync(bench, JSON.stringify(BENCH));
  return Promise.resolve(run(bench, dir)).finally(() => rmSync(dir, { recursive: true, force: true }));
}

describe("npm run power", () => {
  it("prints a battery life for a board, interval and capacity, every figure labelled", async () => {
    // --bench none: measured.json only, whatever bench-results/ holds on this machine
    const r = await runTool(CLI, ["--interval", "300", "--battery-mah", "2500", "--board", "xiao_c3_sht30", "--bench", "none"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/battery life about \d+(\.\d)? (days|years) \(awake time p50\)/);
    expect(r.stdout).toContain("awake-time split: hardware/power/measured.json esp32.qos1");
    for (const line of r.stdout.split("\n").filter((l) => / (ms|s)\s+\d/.test(l) && /mAs/.test(l))) {
      expect(line, "each phase line names where its duration and current come from").toMatch(/(\[(measured \(simulator\)|modelled|datasheet)\]|INTERVAL_S) \/ \[/);
    }
    expect(r.stdout).toMatch(/\[measured \(simulator\)\] \d+ — hardware\/power\/measured\.json esp32\.qos1\.p50\.runtimeStartMs/);
    expect(r.stdout).toMatch(/\[modelled\] \d+ — the simulator's Wi-Fi model/);
    expect(r.stdout).toContain("[datasheet]");
  });

  it("takes the awake-time split from a simulator benchmark", () =>
    withBench(async (bench) => {
      const r = await runTool(CLI, ["--interval", "300", "--battery-mah", "2500", "--board", "xiao_c3_sht30", "--bench", bench]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`awake-time split: ${bench} esp32.qos1 (2026-12-02T10:00:00Z), QoS 1, simulator profile esp32`);
      for (const phase of ["runtime start", "firmware work", "Wi-Fi (scan, join, DHCP)", "MQTT connect + flush", "command wait", "goodbye"]) {
        expect(r.stdout).toContain(`  ${phase}`);
      }
      expect(r.stdout).toMatch(/runtime start +1\.10 s +1\.20 s +22 mA .*\[measured \(simulator\)\] \/ \[datasheet\]/);
      expect(r.stdout).toMatch(/Wi-Fi \(scan, join, DHCP\) +3\.20 s +4\.00 s .*\[modelled\] \/ \[modelled\]/);
      expect(r.stdout).toMatch(/awake in total +5\.80 s +6\.80 s/);
      expect(r.stdout).toContain("flash writes per wake: 2 [measured (simulator)]");
      const q2 = await runTool(CLI, ["--interval", "300", "--battery-mah", "2500", "--board", "xiao_c3_sht30", "--bench", bench, "--qos", "2"]);
      expect(q2.stdout).toMatch(/esp32\.qos2 .*QoS 2/);
      expect(q2.stdout).toMatch(/awake in total +5\.90 s/);
    }));

  it("prints a Markdown table of common intervals", async () => {
    const r = await runTool(CLI, ["--table", "--markdown", "--battery-mah", "2500", "--board", "supermini_c3_shtc3", "--bench", "none"]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").filter((l) => l.startsWith("| ")).length).toBe(7);
  });

  it.each([
    [["--battery-mah", "2500", "--board", "xiao_c3_sht30"], /missing --interval/],
    [["--interval", "300", "--board", "xiao_c3_sht30"], /missing --battery-mah/],
    [["--interval", "300", "--battery-mah", "2500"], /missing --board/],
    [["--interval", "300", "--battery-mah", "2500", "--board", "uno"], /unknown board "uno"; known: .*xiao_c3_sht30/],
    [["--interval=-5", "--battery-mah", "2500", "--board", "xiao_c3_sht30"], /--interval must be a positive number, got "-5"/],
    [["--interval", "0", "--battery-mah", "2500", "--board", "xiao_c3_sht30"], /--interval must be greater than 0/],
    [["--interval", "300", "--battery-mah", "lots", "--board", "xiao_c3_sht30"], /--battery-mah must be a positive number/],
    [["--interval", "300", "--battery-mah", "2500", "--board", "xiao_c3_sht30", "--usable", "1.2"], /--usable must be at most 1/],
    [["--interval", "300", "--table", "--battery-mah", "2500", "--board", "xiao_c3_sht30"], /either --interval or --table/],
    [["--interval", "300", "--battery-mah", "2500", "--board", "xiao_c3_sht30", "--qos", "3"], /--qos must be 0, 1 or 2, got "3"/],
    [["--interval", "300", "--battery-mah", "2500", "--board", "xiao_c3_sht30", "--bench", "/nonexistent/b.json"], /--bench \/nonexistent\/b\.json: file not found/],
    [["--intervall", "300"], /Unknown option '--intervall'/],
  ])("refuses %j with a clear message and exit code 2", async (args, message) => {
    const r = await runTool(CLI, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain("usage: npm run power");
  });

  it("imports the split of a simulator benchmark, every profile and QoS, with date and source", () =>
    withBench((bench, dir) => {
      const out = join(dir, "measured.json");
      const splits = importBench(bench, out);
      expect(splits.map((s) => s.at)).toEqual(["esp32.qos1", "esp32.qos2"]);
      const written = JSON.parse(readFileSync(out, "utf8"));
      expect(written).toMatchObject({ kind: "measured (simulator)", date: "2026-12-02T10:00:00Z", esp32: { qos1: BENCH.esp32.qos1 } });
      expect(written.source).toContain("simulator.json");
      expect(loadSplit({ benchFile: null, measuredFile: out }).split.p50).toEqual(BENCH.esp32.qos1.p50);
      writeFileSync(bench, JSON.stringify({ rss: 1 }));
      expect(() => importBench(bench, out)).toThrow(/no awake-time split found .*top-level keys: rss/);
    }));
});
