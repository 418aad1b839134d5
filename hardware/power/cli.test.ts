import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runTool } from "../run-tsx.ts";
import { importBench } from "./figures.ts";

const CLI = "hardware/power/cli.ts";

describe("npm run power", () => {
  it("prints a battery life for a board, interval and capacity", async () => {
    const r = await runTool(CLI, ["--interval", "300", "--battery-mah", "2500", "--board", "xiao_c3_sht30"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/battery life about \d+(\.\d)? (days|years) \(awake time p50\)/);
    expect(r.stdout).toContain("[datasheet]");
    expect(r.stdout).toMatch(/\[(measured|estimate)\].*\(p50\)/);
  });

  it("prints a Markdown table of common intervals", async () => {
    const r = await runTool(CLI, ["--table", "--markdown", "--battery-mah", "2500", "--board", "supermini_c3_shtc3"]);
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
    [["--intervall", "300"], /Unknown option '--intervall'/],
  ])("refuses %j with a clear message and exit code 2", async (args, message) => {
    const r = await runTool(CLI, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain("usage: npm run power");
  });

  it("imports the awake time of a simulator benchmark with date and source", () => {
    const dir = mkdtempSync(join(tmpdir(), "power-"));
    try {
      const bench = join(dir, "simulator.json");
      const out = join(dir, "measured.json");
      writeFileSync(bench, JSON.stringify({ date: "2025-11-25T15:00:00Z", cycles: { awakeMs: { p50: 412.4, p95: 655.6 } } }));
      const m = importBench(bench, out);
      expect(m).toMatchObject({ kind: "measured", date: "2025-11-25T15:00:00Z", awakeMs: { p50: 412, p95: 656 } });
      expect(JSON.parse(readFileSync(out, "utf8")).source).toContain("cycles.awakeMs");
      writeFileSync(bench, JSON.stringify({ rss: 1 }));
      expect(() => importBench(bench, out)).toThrow(/no awake time found.*top-level keys: rss/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
