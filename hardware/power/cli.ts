/**
 * `npm run power -- --interval 300 --battery-mah 2500 --board <id>`: battery life of a board.
 * `npm run power -- --table --battery-mah 2500 --board <id> [--markdown]`: common intervals at once.
 * `npm run power -- --import-bench [bench-results/simulator.json]`: refresh measured.json.
 */
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { estimatePower, ErrPowerInput, type Figure, type PowerEstimate, type PowerInput } from "./model.ts";
import { awakeFigure, importBench, loadFigures, loadMeasured, MEASURED_FILE } from "./figures.ts";

const TABLE_INTERVALS_S = [60, 300, 600, 900, 1800, 3600];
const DEFAULT_BENCH = "bench-results/simulator.json";

const usage = `usage: npm run power -- --board <id> --battery-mah <mAh> (--interval <s> | --table) [options]
  --board <id>         board from hardware/power/figures.json
  --battery-mah <n>    rated battery capacity, mAh
  --interval <s>       seconds of deep sleep between wakes (INTERVAL_S)
  --table              estimate for ${TABLE_INTERVALS_S.join(", ")} s instead of one interval
  --markdown           print the table as Markdown (for the docs)
  --usable <0..1>      usable fraction of the capacity (default 0.8)
  --awake-ms <ms>      firmware awake time to use instead of the simulator measurement
  --wifi-ms <ms>       Wi-Fi connect time to use instead of the estimate (measure yours!)
  --import-bench [f]   copy the awake time from a simulator benchmark (default ${DEFAULT_BENCH}) into measured.json`;

class ErrUsage extends Error {}

function positive(name: string, raw: string | undefined, { max }: { max?: number } = {}): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(raw.trim())) throw new ErrUsage(`${name} must be a positive number, got "${raw}"`);
  const n = Number(raw);
  if (n <= 0) throw new ErrUsage(`${name} must be greater than 0, got ${raw}`);
  if (max !== undefined && n > max) throw new ErrUsage(`${name} must be at most ${max}, got ${raw}`);
  return n;
}

function main(argv: string[]): number {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        board: { type: "string" },
        "battery-mah": { type: "string" },
        interval: { type: "string" },
        table: { type: "boolean", default: false },
        markdown: { type: "boolean", default: false },
        usable: { type: "string" },
        "awake-ms": { type: "string" },
        "wifi-ms": { type: "string" },
        "import-bench": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
      allowPositionals: true,
    });
  } catch (err) {
    return fail((err as Error).message);
  }
  const { values: v, positionals } = values;
  if (v.help) {
    console.log(usage);
    return 0;
  }
  if (v["import-bench"]) {
    const file = positionals[0] ?? DEFAULT_BENCH;
    if (!existsSync(file)) return fail(`${file} not found: run "npm run bench:sim" first`);
    const m = importBench(file);
    console.log(`wrote ${MEASURED_FILE}: awake p50 ${m.awakeMs.p50} ms, p95 ${m.awakeMs.p95} ms (${m.source}, ${m.date})`);
    return 0;
  }
  try {
    if (positionals.length > 0) throw new ErrUsage(`unexpected argument "${positionals[0]}"`);
    const figures = loadFigures();
    if (!v.board) throw new ErrUsage("missing --board <id>");
    const board = figures.boards[v.board];
    if (!board) throw new ErrUsage(`unknown board "${v.board}"; known: ${Object.keys(figures.boards).join(", ")}`);
    const batteryMah = positive("--battery-mah", v["battery-mah"], { max: 1_000_000 });
    if (batteryMah === undefined) throw new ErrUsage("missing --battery-mah <mAh>");
    const intervalS = positive("--interval", v.interval, { max: 86400 });
    if (intervalS === undefined && !v.table) throw new ErrUsage("missing --interval <seconds> (or --table)");
    if (intervalS !== undefined && v.table) throw new ErrUsage("use either --interval or --table");
    const usableFraction = positive("--usable", v.usable, { max: 1 }) ?? 0.8;
    const awakeOverride = positive("--awake-ms", v["awake-ms"], { max: 3_600_000 });
    const wifiOverride = positive("--wifi-ms", v["wifi-ms"], { max: 600_000 });

    const measured = loadMeasured();
    const given = (value: number, what: string): Figure => ({ value, kind: "measured", source: `${what} given on the command line` });
    const inputFor = (interval: number, percentile: "p50" | "p95"): PowerInput => ({
      intervalS: interval,
      batteryMah,
      usableFraction,
      board,
      timing: {
        ...figures.timing,
        wifiConnectMs: wifiOverride !== undefined ? given(wifiOverride, "--wifi-ms") : figures.timing.wifiConnectMs,
        awakeMs: awakeOverride !== undefined ? given(awakeOverride, "--awake-ms") : awakeFigure(measured, percentile),
      },
    });

    if (v.table) {
      const rows = TABLE_INTERVALS_S.map((s) => ({ s, p50: estimatePower(inputFor(s, "p50")), p95: estimatePower(inputFor(s, "p95")) }));
      printTable(v.board, board.name, batteryMah, usableFraction, rows, v.markdown);
      return 0;
    }
    const p50 = estimatePower(inputFor(intervalS!, "p50"));
    const p95 = estimatePower(inputFor(intervalS!, "p95"));
    printEstimate(v.board, board.name, intervalS!, batteryMah, usableFraction, p50, p95);
    return 0;
  } catch (err) {
    if (err instanceof ErrUsage || err instanceof ErrPowerInput) return fail(err.message);
    throw err;
  }
}

function fail(message: string): number {
  console.error(`power: ${message}\n${usage}`);
  return 2;
}

function duration(s: number): string {
  if (s < 1) return `${(s * 1000).toFixed(0)} ms`;
  if (s < 120) return `${s.toFixed(s < 10 ? 2 : 0)} s`;
  return s < 3600 ? `${(s / 60).toFixed(0)} min` : `${(s / 3600).toFixed(s % 3600 === 0 ? 0 : 1)} h`;
}

function current(ma: number): string {
  return ma < 1 ? `${(ma * 1000).toFixed(1)} µA` : `${ma.toFixed(ma < 10 ? 2 : 0)} mA`;
}

function life(e: PowerEstimate): string {
  return e.lifeDays >= 730 ? `${(e.lifeDays / 365).toFixed(1)} years` : `${e.lifeDays.toFixed(0)} days`;
}

function printEstimate(id: string, name: string, intervalS: number, mah: number, usable: number, p50: PowerEstimate, p95: PowerEstimate): void {
  console.log(`${name} (${id}): wake every ${intervalS} s, ${mah} mAh battery, ${(usable * 100).toFixed(0)}% usable`);
  console.log(`\n  phase per cycle      duration   current    charge     figures from`);
  for (const p of p50.phases) {
    const kinds = [...new Set(p.sources.map((f) => f.kind))].join(" + ");
    console.log(`  ${p.name.padEnd(19)} ${duration(p.seconds).padStart(9)} ${current(p.currentMa).padStart(10)} ${`${p.chargeMas.toFixed(2)} mAs`.padStart(11)}   ${kinds}`);
  }
  console.log(`\n  average current ${current(p50.averageMa)} → battery life about ${life(p50)} (awake time p50)`);
  console.log(`  average current ${current(p95.averageMa)} → battery life about ${life(p95)} (awake time p95)`);
  console.log(`\n  sources:`);
  const seen = new Set<string>();
  for (const p of p50.phases)
    for (const f of p.sources) {
      const line = `    [${f.kind}] ${f.value} — ${f.source}`;
      if (!seen.has(line)) console.log(line);
      seen.add(line);
    }
  console.log(`  Self-discharge, temperature and regulator efficiency are only in the usable fraction; measure a real board to confirm.`);
}

function printTable(id: string, name: string, mah: number, usable: number, rows: { s: number; p50: PowerEstimate; p95: PowerEstimate }[], markdown: boolean): void {
  if (markdown) {
    console.log(`| interval | average current | battery life (p50 awake) | battery life (p95 awake) |`);
    console.log(`|---|---|---|---|`);
    for (const r of rows) console.log(`| ${duration(r.s)} | ${current(r.p50.averageMa)} | ${life(r.p50)} | ${life(r.p95)} |`);
    return;
  }
  console.log(`${name} (${id}), ${mah} mAh, ${(usable * 100).toFixed(0)}% usable`);
  console.log(`  interval   average    life (p50)    life (p95)`);
  for (const r of rows) console.log(`  ${duration(r.s).padStart(8)} ${current(r.p50.averageMa).padStart(10)} ${life(r.p50).padStart(13)} ${life(r.p95).padStart(13)}`);
}

process.exit(main(process.argv.slice(2)));
