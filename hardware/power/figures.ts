/**
 * Loads the power tool's inputs: hardware/power/figures.json (datasheet, vendor and estimated figures)
 * and hardware/power/measured.json (the simulator's awake time), and imports a fresh benchmark.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BoardPower, Figure, Timing } from "./model.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
export const FIGURES_FILE = join(HERE, "figures.json");
export const MEASURED_FILE = join(HERE, "measured.json");
/** QOS setting default (docs/protocol.md): the awake time of that configuration is imported. */
const DEFAULT_QOS = 1;

export interface Figures {
  timing: Omit<Timing, "awakeMs">;
  boards: Record<string, BoardPower>;
}

export interface Measured {
  kind: Figure["kind"];
  date: string | null;
  source: string;
  awakeMs: { p50: number; p95: number };
}

export function loadFigures(file = FIGURES_FILE): Figures {
  return JSON.parse(readFileSync(file, "utf8")) as Figures;
}

export function loadMeasured(file = MEASURED_FILE): Measured {
  return JSON.parse(readFileSync(file, "utf8")) as Measured;
}

/** The awake-time figure for a percentile, labelled with its origin. */
export function awakeFigure(m: Measured, percentile: "p50" | "p95"): Figure {
  return { value: m.awakeMs[percentile], kind: m.kind, source: `${m.source}${m.date ? `, ${m.date}` : ""} (${percentile})` };
}

/**
 * Finds the awake time in a simulator benchmark result: an object with numeric p50 and p95 under a key
 * that mentions "awake" (e.g. `{"awakeMs":{"p50":412,"p95":650}}`), searched at any depth; in a list of
 * results per QoS, the QoS 1 entry wins.
 * Values under a key ending in "S"/"Sec" are taken as seconds, all others as milliseconds.
 */
export function findAwakeTime(bench: unknown, path = ""): { p50: number; p95: number; at: string } | undefined {
  if (!bench || typeof bench !== "object") return undefined;
  // Results per QoS (e.g. "cycles": [{ "qos": 0, … }, { "qos": 1, … }]): take QoS 1, the devices' default.
  if (Array.isArray(bench)) {
    const index = bench.findIndex((item) => item && typeof item === "object" && (item as { qos?: unknown }).qos === DEFAULT_QOS);
    if (index >= 0) {
      const found = findAwakeTime(bench[index], `${path}[${index}]`);
      if (found) return found;
    }
  }
  for (const [key, value] of Object.entries(bench as Record<string, unknown>)) {
    const at = path ? `${path}.${key}` : key;
    if (/awake/i.test(key) && value && typeof value === "object") {
      const v = value as Record<string, unknown>;
      const p50 = v.p50 ?? v.p50Ms ?? v.median;
      const p95 = v.p95 ?? v.p95Ms;
      if (typeof p50 === "number" && typeof p95 === "number") {
        const scale = /(S|Sec|Seconds)$/.test(key) ? 1000 : 1;
        return { p50: p50 * scale, p95: p95 * scale, at };
      }
    }
    const inner = findAwakeTime(value, at);
    if (inner) return inner;
  }
  return undefined;
}

/** Copies the awake time of a benchmark result into measured.json, with date and source. */
export function importBench(benchFile: string, out = MEASURED_FILE): Measured {
  const bench = JSON.parse(readFileSync(benchFile, "utf8")) as Record<string, unknown>;
  const found = findAwakeTime(bench);
  if (!found) {
    throw new Error(`${benchFile}: no awake time found (expected an "awake…" object with p50 and p95); top-level keys: ${Object.keys(bench).join(", ")}`);
  }
  const stamp = bench.generatedAt ?? bench.date;
  const date = typeof stamp === "string" ? stamp : new Date().toISOString();
  const measured: Measured = {
    kind: "measured",
    date,
    source: `simulator benchmark (npm run bench:sim), ${benchFile.replace(/.*\/(bench-results\/)/, "$1")} field ${found.at}`,
    awakeMs: { p50: Math.round(found.p50), p95: Math.round(found.p95) },
  };
  const comment = "Firmware awake time per cycle (program start to standby), copied from the simulator benchmark by `npm run power -- --import-bench`.";
  writeFileSync(out, JSON.stringify({ $comment: comment, ...measured }, null, 2) + "\n");
  return measured;
}
