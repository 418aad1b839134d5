/**
 * The power tool's inputs and how they make the awake phases of one wake:
 * - hardware/power/figures.json: datasheet currents and modelled timings (wake overhead, Wi-Fi, airtime);
 * - the simulator's measured awake-time split: bench-results/simulator.json when it has one, else
 *   hardware/power/measured.json (the copy `npm run power -- --import-bench` keeps in git).
 *
 * The split, in both files (the format of `npm run bench:sim`), per runtime profile and QoS:
 *   { "esp32": { "qos1": { "p50": { …ms }, "p95": { …ms } }, "qos0": …, "qos2": … }, "vm": { … }, "generatedAt": "…" }
 * with, per percentile (all ms except the last):
 * - `awakeMs`: the runtime's clock starting → standby (the whole wake after the wake overhead; required),
 * - `runtimeStartMs`: the runtime's clock starting → the program starting (part of awakeMs),
 * - `wifiMs`: the wake waiting for Wi-Fi (scan, association, DHCP) until its first connect can succeed,
 * - `mqttMs`: connect → CONNACK, subscription, flush of the readings,
 * - `commandWaitMs`: the bounded wait for queued commands (and stay-awake),
 * - `goodbyeMs`: the `sleeping` status, its PUBACK, DISCONNECT, close,
 * - `flashWritesPerWake` (count, reported only).
 * What awakeMs holds beyond the five parts is the firmware's own work (settings, sensor, outbox): CPU only.
 * The `esp32` profile is preferred: its awake time contains the simulator's model of the runtime's Wi-Fi.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { AwakePhase, BoardPower, Figure } from "./model.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = join(HERE, "../..");
export const FIGURES_FILE = join(HERE, "figures.json");
export const MEASURED_FILE = join(HERE, "measured.json");
export const BENCH_FILE = join(REPO_ROOT, "bench-results", "simulator.json");
/** QOS setting default (docs/protocol.md). */
export const DEFAULT_QOS = 1;
/** Profiles of simulator/src/profile.ts, most board-like first. */
const PROFILES = ["esp32", "vm"] as const;
/**
 * A Wi-Fi wait shorter than this cannot come from the ESP32 runtime (its first scan starts ~2 s after boot):
 * the benchmark ran without the Wi-Fi model (profile vm), so the modelled wait is added instead.
 */
export const MIN_BOARD_WIFI_MS = 1000;

export const SPLIT_PARTS = ["runtimeStartMs", "wifiMs", "mqttMs", "commandWaitMs", "goodbyeMs"] as const;
export type SplitPart = (typeof SPLIT_PARTS)[number];
export type SplitValues = { awakeMs: number; flashWritesPerWake?: number } & Partial<Record<SplitPart, number>>;
export type Percentile = "p50" | "p95";

/** One measured split: which file and entry it came from, and the values per percentile. */
export interface AwakeSplit {
  /** Repository-relative file name. */
  file: string;
  /** Path inside the file, e.g. `esp32.qos1`. */
  at: string;
  profile: string;
  qos: number;
  date: string | null;
  p50: SplitValues;
  p95: SplitValues;
}

/** A modelled figure with a p95 next to its p50 `value`. */
export type SpreadFigure = Figure & { p95: number };

export interface Figures {
  timing: {
    /** End of deep sleep → the runtime's clock starts (ROM boot, bootloader): the BOOT_MS setting. */
    wakeOverheadMs: Figure;
    /** The wake's wait for Wi-Fi on a board, when the measured split has none. */
    wifiWaitMs: SpreadFigure;
    txMs: Figure;
  };
  boards: Record<string, BoardPower>;
}

export class ErrPowerFigures extends Error {
  override name = "ErrPowerFigures";
}

export function loadFigures(file = FIGURES_FILE): Figures {
  return JSON.parse(readFileSync(file, "utf8")) as Figures;
}

function repoRelative(file: string): string {
  const r = relative(REPO_ROOT, file);
  return r.startsWith("..") ? file : r;
}

function values(raw: unknown, where: string): SplitValues {
  if (!raw || typeof raw !== "object") throw new ErrPowerFigures(`${where}: expected an object of numbers`);
  const v = raw as Record<string, unknown>;
  if (typeof v.awakeMs !== "number" || !(v.awakeMs > 0)) throw new ErrPowerFigures(`${where}.awakeMs: expected a number of ms > 0, got ${JSON.stringify(v.awakeMs)}`);
  const out: SplitValues = { awakeMs: v.awakeMs };
  for (const key of [...SPLIT_PARTS, "flashWritesPerWake"] as const) {
    if (v[key] === undefined || v[key] === null) continue;
    if (typeof v[key] !== "number" || !((v[key] as number) >= 0)) throw new ErrPowerFigures(`${where}.${key}: expected a number ≥ 0, got ${JSON.stringify(v[key])}`);
    out[key] = v[key] as number;
  }
  return out;
}

/**
 * The split for a QoS in a benchmark result or measured.json: `<profile>.qos<n>.p50/p95`, profile esp32
 * before vm. Undefined when the file has no such entry (e.g. an older benchmark format); a malformed entry
 * throws ErrPowerFigures naming the field.
 */
export function readSplit(json: unknown, file: string, qos = DEFAULT_QOS): AwakeSplit | undefined {
  if (!json || typeof json !== "object") return undefined;
  const root = json as Record<string, unknown>;
  for (const profile of PROFILES) {
    const entry = (root[profile] as Record<string, unknown> | undefined)?.[`qos${qos}`];
    if (!entry || typeof entry !== "object") continue;
    const at = `${profile}.qos${qos}`;
    const e = entry as Record<string, unknown>;
    const stamp = root.generatedAt ?? root.date;
    return {
      file: repoRelative(file),
      at,
      profile,
      qos,
      date: typeof stamp === "string" ? stamp : null,
      p50: values(e.p50, `${repoRelative(file)} ${at}.p50`),
      p95: values(e.p95, `${repoRelative(file)} ${at}.p95`),
    };
  }
  return undefined;
}

/**
 * The measured split to use: bench-results/simulator.json when it has one for this QoS, else measured.json.
 * `notes` says why the benchmark was not used when it exists.
 */
export function loadSplit(opts: { benchFile?: string | null; measuredFile?: string; qos?: number } = {}): { split: AwakeSplit; notes: string[] } {
  const qos = opts.qos ?? DEFAULT_QOS;
  const notes: string[] = [];
  const bench = opts.benchFile === undefined ? BENCH_FILE : opts.benchFile;
  if (bench && existsSync(bench)) {
    const split = readSplit(JSON.parse(readFileSync(bench, "utf8")), bench, qos);
    if (split) return { split, notes };
    notes.push(`${repoRelative(bench)} has no esp32.qos${qos} (or vm.qos${qos}) split with p50/p95: older benchmark format? Using ${repoRelative(opts.measuredFile ?? MEASURED_FILE)}.`);
  }
  const measuredFile = opts.measuredFile ?? MEASURED_FILE;
  const split = readSplit(JSON.parse(readFileSync(measuredFile, "utf8")), measuredFile, qos);
  if (!split) throw new ErrPowerFigures(`${repoRelative(measuredFile)}: no awake-time split for QoS ${qos} (expected esp32.qos${qos} or vm.qos${qos} with p50 and p95)`);
  return { split, notes };
}

/** Your own measurements from the command line (ms); they replace the simulator's and the model's. */
export interface GivenTimes {
  /** Whole awake time measured on a board, the runtime's start → standby, Wi-Fi included. */
  awakeMs?: number;
  /** The wake's wait for Wi-Fi measured on a board. */
  wifiMs?: number;
}

const PHASE_NAMES: Record<SplitPart, string> = {
  runtimeStartMs: "runtime start",
  wifiMs: "Wi-Fi (scan, join, DHCP)",
  mqttMs: "MQTT connect + flush",
  commandWaitMs: "command wait",
  goodbyeMs: "goodbye",
};

/**
 * The awake phases of one wake for a percentile, each with its figure and label, plus notes on how they were
 * put together. Wi-Fi on a board is always modelled: the simulator's `wifiMs` comes from its esp32 profile (a
 * model of the runtime's scan, association and DHCP), else figures.json `wifiWaitMs`.
 * @example
 * const { split } = loadSplit(); const { phases } = awakePhases(split, loadFigures(), "p50")
 */
export function awakePhases(split: AwakeSplit, figures: Figures, percentile: Percentile, given: GivenTimes = {}): { phases: AwakePhase[]; notes: string[] } {
  const v = split[percentile];
  const notes: string[] = [];
  const dated = split.date ? ` (${split.date})` : "";
  const where = (key: string) => `${split.file} ${split.at}.${percentile}.${key}${dated}`;
  const sim = (key: string, value: number): Figure => ({ value, kind: "measured (simulator)", source: where(key) });
  const givenFigure = (value: number, option: string): Figure => ({ value, kind: "measured (given)", source: `${option} on the command line` });
  const modelledWifi: Figure = {
    value: percentile === "p50" ? figures.timing.wifiWaitMs.value : figures.timing.wifiWaitMs.p95,
    kind: "modelled",
    source: `${figures.timing.wifiWaitMs.source} (${percentile})`,
  };

  // Wi-Fi: given > the simulator's model (esp32 profile) > figures.json's model.
  const simWifi = v.wifiMs ?? 0;
  let wifi: Figure;
  if (given.wifiMs !== undefined) wifi = givenFigure(given.wifiMs, "--wifi-ms");
  else if (simWifi >= MIN_BOARD_WIFI_MS) {
    wifi = { value: simWifi, kind: "modelled", source: `the simulator's Wi-Fi model (esp32 profile, simulator/src/profile.ts), ${where("wifiMs")}` };
  } else {
    wifi = modelledWifi;
    notes.push(
      v.wifiMs === undefined
        ? `${split.file} ${split.at} has no wifiMs: the modelled Wi-Fi wait is added to its awake time (the ${split.profile} profile has the network at once).`
        : `${split.file} ${split.at}.wifiMs is ${simWifi} ms, too short for the ESP32 runtime (first scan ~2 s after boot): the ${split.profile} profile has no Wi-Fi model, so the modelled wait replaces it.`,
    );
  }

  // Whole awake time: given (a board: Wi-Fi included) or the simulator's, with the Wi-Fi it lacked added.
  const total =
    given.awakeMs !== undefined ? givenFigure(given.awakeMs, "--awake-ms") : sim("awakeMs", v.awakeMs + (wifi.value - simWifi));
  if (given.awakeMs === undefined && wifi.value !== simWifi) total.source += ` + ${wifi.kind} Wi-Fi ${Math.round(wifi.value - simWifi)} ms`;

  const parts = SPLIT_PARTS.filter((k) => k !== "wifiMs" && v[k] !== undefined);
  const phases: AwakePhase[] = [{ name: "wake overhead", duration: figures.timing.wakeOverheadMs, current: "cpuMa" }];
  if (parts.length < 4) {
    // No full split: the measured time minus Wi-Fi counts as radio on (RX), which over- rather than
    // under-estimates its charge (part of it is CPU only).
    if (parts.length > 0) notes.push(`${split.file} ${split.at} has only part of the split (${parts.join(", ")}): counted as one phase.`);
    const firmware =
      given.awakeMs !== undefined
        ? derived(total, [wifi], "firmware awake", notes)
        : simWifi > 0
          ? { ...sim("awakeMs", v.awakeMs - simWifi), source: `${where("awakeMs")} minus its wifiMs ${simWifi} ms` }
          : sim("awakeMs", v.awakeMs);
    phases.push(
      { name: PHASE_NAMES.wifiMs, duration: wifi, current: "wifiConnectMa" },
      { name: "firmware awake", duration: firmware, current: "activeMa" },
    );
    return { phases, notes };
  }

  const figure = (key: SplitPart): Figure => sim(key, v[key]!);
  const runtimeStart = figure("runtimeStartMs");
  const network = (["mqttMs", "commandWaitMs", "goodbyeMs"] as const).map((k) => ({ key: k, figure: figure(k) }));
  const work = derived(total, [runtimeStart, wifi, ...network.map((n) => n.figure)], "firmware work", notes);
  phases.push(
    { name: PHASE_NAMES.runtimeStartMs, duration: runtimeStart, current: "cpuMa" },
    { name: "firmware work", duration: work, current: "cpuMa" },
    { name: PHASE_NAMES.wifiMs, duration: wifi, current: "wifiConnectMa" },
    ...network.map((n): AwakePhase => ({ name: PHASE_NAMES[n.key], duration: n.figure, current: "activeMa" })),
  );
  return { phases, notes };
}

/** `total` minus `parts`, at least 0 (percentiles of parts need not add up to the percentile of the total). */
function derived(total: Figure, parts: Figure[], name: string, notes: string[]): Figure {
  const rest = total.value - parts.reduce((sum, p) => sum + p.value, 0);
  if (rest < 0) notes.push(`${name}: the parts add up to ${Math.round(-rest)} ms more than the awake time (${total.value} ms); counted as 0 ms, so the awake time is ${Math.round(total.value - rest)} ms.`);
  return { value: Math.max(0, rest), kind: total.kind, source: `awake time minus the other phases (${total.source})` };
}

/** The flash writes per wake of a split, if the benchmark reported them. */
export function flashWritesFigure(split: AwakeSplit, percentile: Percentile): Figure | undefined {
  const n = split[percentile].flashWritesPerWake;
  return n === undefined ? undefined : { value: n, kind: "measured (simulator)", source: `${split.file} ${split.at}.${percentile}.flashWritesPerWake` };
}

const MEASURED_COMMENT =
  "Awake-time split per wake measured in the simulator (npm run bench:sim), copied by `npm run power -- --import-bench`; format: hardware/power/figures.ts. The power tool reads bench-results/simulator.json instead when it has a split.";

/** Copies the split of every profile and QoS of a benchmark result into measured.json, with date and source. */
export function importBench(benchFile: string, out = MEASURED_FILE): AwakeSplit[] {
  const bench = JSON.parse(readFileSync(benchFile, "utf8")) as Record<string, unknown>;
  const copied: Record<string, Record<string, { p50: SplitValues; p95: SplitValues }>> = {};
  const found: AwakeSplit[] = [];
  for (const qos of [0, 1, 2]) {
    for (const profile of PROFILES) {
      const split = readSplit({ [profile]: bench[profile], generatedAt: bench.generatedAt ?? bench.date }, benchFile, qos);
      if (!split) continue;
      found.push(split);
      (copied[profile] ??= {})[`qos${qos}`] = { p50: split.p50, p95: split.p95 };
    }
  }
  if (found.length === 0) {
    throw new ErrPowerFigures(
      `${benchFile}: no awake-time split found (expected esp32.qos1.p50.awakeMs etc.); top-level keys: ${Object.keys(bench).join(", ")}`,
    );
  }
  const stamp = bench.generatedAt ?? bench.date;
  const date = typeof stamp === "string" ? stamp : new Date().toISOString();
  const measured = {
    $comment: MEASURED_COMMENT,
    kind: "measured (simulator)",
    date,
    source: `simulator benchmark (npm run bench:sim), ${repoRelative(benchFile)}`,
    ...copied,
  };
  writeFileSync(out, JSON.stringify(measured, null, 2) + "\n");
  return found.map((s) => ({ ...s, file: repoRelative(out), date }));
}
