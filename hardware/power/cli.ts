/**
 * `npm run power -- --interval 300 --battery-mah 2500 --board <id>`: battery life of a board.
 * `npm run power -- --table --battery-mah 2500 --board <id> [--markdown]`: common intervals at once.
 * `npm run power -- --import-bench [bench-results/simulator.json]`: refresh measured.json.
 * The awake-time split comes from bench-results/simulator.json when it has one, else measured.json (figures.ts).
 */
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { estimatePower, ErrPowerInput, type Figure, type PowerEstimate, type PowerInput } from "./model.ts";
import {
  awakePhases,
  BENCH_FILE,
  DEFAULT_QOS,
  ErrPowerFigures,
  flashWritesFigure,
  importBench,
  loadFigures,
  loadSplit,
  MEASURED_FILE,
  type AwakeSplit,
  type GivenTimes,
  type Percentile,
} from "./figures.ts";

const TABLE_INTERVALS_S = [60, 300, 600, 900, 1800, 3600];
const DEFAULT_BENCH = "bench-results/simulator.json";

const usage = `usage: npm run power -- --board <id> --battery-mah <mAh> (--interval <s> | --table) [options]
  --board <id>         board from hardware/power/figures.json
  --battery-mah <n>    rated battery capacity, mAh
  --interval <s>       seconds of deep sleep between wakes (INTERVAL_S)
  --table              estimate for ${TABLE_INTERVALS_S.join(", ")} s instead of one interval
  --markdown           print the table as Markdown (for the docs)
  --usable <0..1>      usable fraction of the capacity (default 0.8)
  --qos <0|1|2>        the telemetry QoS whose measured split to use (default ${DEFAULT_QOS})
  --bench <file|none>  simulator benchmark with the awake-time split (default ${DEFAULT_BENCH} when it
                       has one, else hardware/power/measured.json); none: measured.json only
  --awake-ms <ms>      your board's awake time, runtime start to standby, Wi-Fi included
  --wifi-ms <ms>       your board's wait for Wi-Fi instead of the modelled one (measure yours!)
  --import-bench [f]   copy the split from a simulator benchmark (default ${DEFAULT_BENCH}) into measured.json`;

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
        qos: { type: "string" },
        bench: { type: "string" },
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
    try {
      const splits = importBench(file);
      console.log(`wrote ${MEASURED_FILE} (${splits[0]!.date}):`);
      for (const sp of splits) console.log(`  ${sp.at}: awake p50 ${sp.p50.awakeMs} ms, p95 ${sp.p95.awakeMs} ms`);
    } catch (err) {
      if (err instanceof ErrPowerFigures) return fail(err.message);
      throw err;
    }
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
    const given: GivenTimes = {
      awakeMs: positive("--awake-ms", v["awake-ms"], { max: 3_600_000 }),
      wifiMs: positive("--wifi-ms", v["wifi-ms"], { max: 600_000 }),
    };
    if (v.qos !== undefined && !["0", "1", "2"].includes(v.qos)) throw new ErrUsage(`--qos must be 0, 1 or 2, got "${v.qos}"`);
    const qos = v.qos === undefined ? DEFAULT_QOS : Number(v.qos);
    if (v.bench !== undefined && v.bench !== "none" && !existsSync(v.bench)) throw new ErrUsage(`--bench ${v.bench}: file not found`);
    const benchFile = v.bench === "none" ? null : (v.bench ?? BENCH_FILE);

    const { split, notes } = loadSplit({ benchFile, qos });
    const timingFor = (percentile: Percentile) => {
      const r = awakePhases(split, figures, percentile, given);
      for (const n of r.notes) if (!notes.includes(n)) notes.push(n);
      return { awake: r.phases, txMs: figures.timing.txMs };
    };
    const timing = { p50: timingFor("p50"), p95: timingFor("p95") };
    const inputFor = (interval: number, percentile: Percentile): PowerInput => ({
      intervalS: interval,
      batteryMah,
      usableFraction,
      board,
      timing: timing[percentile],
    });

    if (v.table) {
      const rows = TABLE_INTERVALS_S.map((s) => ({ s, p50: estimatePower(inputFor(s, "p50")), p95: estimatePower(inputFor(s, "p95")) }));
      printTable(v.board, board.name, batteryMah, usableFraction, rows, v.markdown, split, notes);
      return 0;
    }
    const p50 = estimatePower(inputFor(intervalS!, "p50"));
    const p95 = estimatePower(inputFor(intervalS!, "p95"));
    printEstimate(v.board, board.name, intervalS!, batteryMah, usableFraction, p50, p95, split, notes);
    return 0;
  } catch (err) {
    if (err instanceof ErrUsage || err instanceof ErrPowerInput || err instanceof ErrPowerFigures) return fail(err.message);
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

function seconds(s: number): string {
  return s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`;
}

function currentText(ma: number): string {
  return ma < 1 ? `${(ma * 1000).toFixed(1)} µA` : `${ma.toFixed(ma < 10 ? 2 : 0)} mA`;
}

function life(e: PowerEstimate): string {
  return e.lifeDays >= 730 ? `${(e.lifeDays / 365).toFixed(1)} years` : `${e.lifeDays.toFixed(0)} days`;
}

/** `[modelled]`, `[datasheet]`, `[measured (simulator)]`, …: every printed figure carries one. */
function label(f: Figure): string {
  return `[${f.kind}]`;
}

function splitLine(split: AwakeSplit, notes: string[]): string[] {
  const lines = [`awake-time split: ${split.file} ${split.at}${split.date ? ` (${split.date})` : ""}, QoS ${split.qos}, simulator profile ${split.profile}`];
  for (const n of notes) lines.push(`  note: ${n}`);
  return lines;
}

function printEstimate(
  id: string,
  name: string,
  intervalS: number,
  mah: number,
  usable: number,
  p50: PowerEstimate,
  p95: PowerEstimate,
  split: AwakeSplit,
  notes: string[],
): void {
  console.log(`${name} (${id}): wake every ${intervalS} s, ${mah} mAh battery, ${(usable * 100).toFixed(0)}% usable`);
  for (const line of splitLine(split, notes)) console.log(line);
  console.log(`\n  phase per cycle              p50      p95    current  charge (p50)   duration from / current from`);
  p50.phases.forEach((p, i) => {
    const [duration, current] = p.sources;
    const q = p95.phases[i]!;
    const from = p.name === "deep sleep" ? `INTERVAL_S / ${[...new Set(p.sources.map(label))].join(" + ")}` : `${label(duration!)} / ${label(current!)}`;
    console.log(
      `  ${p.name.padEnd(26)} ${seconds(p.seconds).padStart(8)} ${seconds(q.seconds).padStart(8)} ${currentText(p.currentMa).padStart(10)} ${`${p.chargeMas.toFixed(2)} mAs`.padStart(13)}   ${from}`,
    );
  });
  console.log(`  ${"awake in total".padEnd(26)} ${seconds(p50.awakeS).padStart(8)} ${seconds(p95.awakeS).padStart(8)}`);
  console.log(`\n  average current ${currentText(p50.averageMa)} → battery life about ${life(p50)} (awake time p50)`);
  console.log(`  average current ${currentText(p95.averageMa)} → battery life about ${life(p95)} (awake time p95)`);
  const flash = flashWritesFigure(split, "p50");
  if (flash) console.log(`  flash writes per wake: ${flash.value} ${label(flash)} (their time is inside the measured awake time)`);
  console.log(`\n  sources:`);
  const seen = new Set<string>();
  for (const e of [p50, p95])
    for (const p of e.phases)
      for (const f of p.sources) {
        const line = `    ${label(f)} ${Number.isInteger(f.value) ? f.value : f.value.toFixed(1)} — ${f.source}`;
        if (!seen.has(line)) console.log(line);
        seen.add(line);
      }
  console.log(`  Self-discharge, temperature and regulator efficiency are only in the usable fraction; TLS is not modelled; measure a real board to confirm.`);
}

function printTable(
  id: string,
  name: string,
  mah: number,
  usable: number,
  rows: { s: number; p50: PowerEstimate; p95: PowerEstimate }[],
  markdown: boolean,
  split: AwakeSplit,
  notes: string[],
): void {
  if (markdown) {
    console.log(`| interval | average current | battery life (p50 awake) | battery life (p95 awake) |`);
    console.log(`|---|---|---|---|`);
    for (const r of rows) console.log(`| ${duration(r.s)} | ${currentText(r.p50.averageMa)} | ${life(r.p50)} | ${life(r.p95)} |`);
    return;
  }
  console.log(`${name} (${id}), ${mah} mAh, ${(usable * 100).toFixed(0)}% usable; awake p50 ${seconds(rows[0]!.p50.awakeS)}, p95 ${seconds(rows[0]!.p95.awakeS)}`);
  for (const line of splitLine(split, notes)) console.log(line);
  console.log(`  interval   average    life (p50)    life (p95)`);
  for (const r of rows) console.log(`  ${duration(r.s).padStart(8)} ${currentText(r.p50.averageMa).padStart(10)} ${life(r.p50).padStart(13)} ${life(r.p95).padStart(13)}`);
}

process.exit(main(process.argv.slice(2)));
