/**
 * Builds the firmware for one board configuration: validate its settings, stage its folder,
 * run `devs build src/main.ts` there, and check what the CLI does not (its exit code is 0 even when
 * a devs/boards/*.board.json is rejected, and a failed build leaves the previous bytecode in place).
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEVS_DIR, loadBoard, type BoardConfig } from "./catalog.ts";
import { runDevs } from "./devs-cli.ts";
import { prepareStage, type Stage } from "./stage.ts";
import { loadSettingsLayers } from "../settings/layers.ts";
import { formatIssue, SECRET_KEYS, validateSettings, type SettingsTarget, type ValidationResult } from "../settings/validate.ts";

export interface BoardBuildOptions {
  /** Include devs/.env.local (default false: CI builds must not depend on a developer's secrets). */
  includeLocal?: boolean;
  /** Extra settings files layered on top (flash --settings). */
  extraFiles?: string[];
  /** "board" for CI builds, "flash" before writing a device. */
  target?: Extract<SettingsTarget, "board" | "flash">;
  /** Print the CLI's output as it runs. */
  echo?: boolean;
}

export interface BuildResult {
  id: string;
  ok: boolean;
  /** Why it failed, one line per problem. */
  problems: string[];
  warnings: string[];
  board?: BoardConfig;
  stage?: Stage;
  settings?: ValidationResult["settings"];
  bytecodeSha256?: string;
  bytecodeBytes?: number;
  seconds: number;
}

/**
 * @example
 * const r = await buildBoard("xiao_c3_sht30")
 * if (!r.ok) console.error(r.problems.join("\n"))
 */
export async function buildBoard(id: string, opts: BoardBuildOptions = {}): Promise<BuildResult> {
  const started = Date.now();
  const done = (partial: Omit<BuildResult, "id" | "seconds">): BuildResult => ({ id, seconds: (Date.now() - started) / 1000, ...partial });

  let board: BoardConfig;
  try {
    board = loadBoard(id);
  } catch (err) {
    return done({ ok: false, problems: [(err as Error).message], warnings: [] });
  }
  const problems = checkBoardConfig(board);
  const target = opts.target ?? "board";
  const layers = loadSettingsLayers({ devsDir: DEVS_DIR, board: id, includeLocal: opts.includeLocal ?? false, extraFiles: opts.extraFiles });
  const validation = validateSettings(layers, target);
  problems.push(...validation.errors.map(formatIssue));
  const warnings = validation.warnings.map(formatIssue);
  if (problems.length > 0) return done({ ok: false, problems, warnings, board });

  const stage = prepareStage(id, validation.settings, { withSecrets: target === "flash" });
  // Remove the old output so a failed build cannot pass for a fresh one.
  rmSync(stage.bytecode, { force: true });
  const run = await runDevs(["build", "src/main.ts"], stage.dir, { echo: opts.echo });
  if (run.code !== 0) problems.push(`devs build exited with code ${run.code}:\n${tail(run.output)}`);
  const boardDiagnostics = run.output.split("\n").filter((l) => /boards[\\/][\w]+\.board\.json\(\d+\)/.test(l));
  if (boardDiagnostics.length > 0) problems.push(`DeviceScript rejected a board file:\n${boardDiagnostics.join("\n")}`);
  if (run.code === 0 && !existsSync(stage.bytecode)) problems.push(`devs build wrote no ${stage.bytecode}`);
  if (problems.length > 0) return done({ ok: false, problems, warnings, board, stage });

  const bytecode = readFileSync(stage.bytecode);
  const sha = createHash("sha256").update(bytecode).digest("hex");
  writeManifest(stage, board, validation.settings, sha, bytecode.length);
  return done({ ok: true, problems, warnings, board, stage, settings: validation.settings, bytecodeSha256: sha, bytecodeBytes: bytecode.length });
}

/**
 * The default build (devs/.devicescript/bin/bytecode.devs) that the simulator runs. Built in devs/
 * itself with devs/.env.defaults and devs/.env.local, exactly like `npm run build:firmware`.
 */
export async function buildSimulatorFirmware(opts: { echo?: boolean } = {}): Promise<BuildResult> {
  const started = Date.now();
  const bytecodePath = join(DEVS_DIR, ".devicescript", "bin", "bytecode.devs");
  const validation = validateSettings(loadSettingsLayers({ devsDir: DEVS_DIR }), "simulator");
  const problems = validation.errors.map(formatIssue);
  const warnings = validation.warnings.map(formatIssue);
  if (problems.length === 0) {
    const before = existsSync(bytecodePath) ? statSync(bytecodePath).mtimeMs : 0;
    const run = await runDevs(["build", "src/main.ts"], DEVS_DIR, { echo: opts.echo });
    if (run.code !== 0) problems.push(`devs build exited with code ${run.code}:\n${tail(run.output)}`);
    else if (!existsSync(bytecodePath) || statSync(bytecodePath).mtimeMs <= before) problems.push(`devs build did not rewrite ${bytecodePath}`);
  }
  const ok = problems.length === 0;
  const bytecode = ok ? readFileSync(bytecodePath) : undefined;
  return {
    id: "simulator",
    ok,
    problems,
    warnings,
    settings: validation.settings,
    bytecodeSha256: bytecode ? createHash("sha256").update(bytecode).digest("hex") : undefined,
    bytecodeBytes: bytecode?.length,
    seconds: (Date.now() - started) / 1000,
  };
}

/** Checks DeviceScript does not make: a sensor board needs an I2C bus on two distinct pins. */
export function checkBoardConfig(board: BoardConfig): string[] {
  const problems: string[] = [];
  const file = `devs/boards/${board.id}.board.json`;
  if (!board.i2c) problems.push(`${file}: no "i2c" block (pinSDA, pinSCL): the sensor needs an I2C bus`);
  else {
    if (board.i2c.sdaGpio === board.i2c.sclGpio) problems.push(`${file}: i2c pinSDA and pinSCL are the same GPIO ${board.i2c.sdaGpio}`);
    // Classic ESP32 GPIO 34-39 are input-only: they cannot drive SCL or pull SDA low.
    if (board.archId === "esp32") {
      for (const [name, pin] of [["pinSDA", board.i2c.sdaGpio], ["pinSCL", board.i2c.sclGpio]] as const) {
        if (pin >= 34 && pin <= 39) problems.push(`${file}: i2c ${name} is GPIO ${pin}, an input-only pin on the ESP32`);
      }
    }
    if (![100, 400].includes(board.i2c.kHz)) problems.push(`${file}: i2c kHz must be 100 or 400, got ${board.i2c.kHz}`);
  }
  if (!existsSync(board.envFile)) problems.push(`devs/boards/${board.id}.env is missing: it must set SENSOR`);
  return problems;
}

function writeManifest(stage: Stage, board: BoardConfig, settings: ValidationResult["settings"], sha: string, bytes: number): void {
  const publicSettings = Object.fromEntries(Object.entries(settings).filter(([k]) => !SECRET_KEYS.includes(k)));
  const manifest = { board: board.id, devName: board.devName, archId: board.archId, sensor: board.sensor, i2c: board.i2c, bytecodeSha256: sha, bytecodeBytes: bytes, settings: publicSettings, builtAt: new Date().toISOString() };
  writeFileSync(join(stage.dir, "build.json"), JSON.stringify(manifest, null, 2) + "\n");
}

function tail(text: string, lines = 25): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}
