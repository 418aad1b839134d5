/**
 * The boards this project supports, read from their configuration files:
 * devs/boards/<id>.board.json (DeviceScript custom board format, created with `devs add board`, holding
 * the I2C pins) and devs/boards/<id>.env (the board's settings, at least SENSOR).
 * Adding a board means adding those two files (and its page under hardware/boards/), never code.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseDeviceScriptEnv } from "../settings/dotenv.ts";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const DEVS_DIR = join(REPO_ROOT, "devs");
export const BOARDS_DIR = join(DEVS_DIR, "boards");

export interface BoardI2C {
  /** GPIO numbers, resolved from pin labels such as "SDA_D4". */
  sdaGpio: number;
  sclGpio: number;
  kHz: number;
}

export interface BoardConfig {
  id: string;
  devName: string;
  /** DeviceScript architecture: esp32, esp32c3, esp32s3, … */
  archId: string;
  /** The SENSOR setting of the board's .env, if any. */
  sensor: string | undefined;
  i2c: BoardI2C | undefined;
  boardFile: string;
  envFile: string;
}

export class ErrUnknownBoard extends Error {
  override name = "ErrUnknownBoard";
  constructor(id: string, known: string[]) {
    super(`unknown board "${id}"; known boards: ${known.join(", ") || "(none)"} (files in devs/boards/)`);
  }
}

/** Board ids, from devs/boards/*.board.json, sorted. */
export function listBoardIds(boardsDir = BOARDS_DIR): string[] {
  if (!existsSync(boardsDir)) return [];
  return readdirSync(boardsDir)
    .filter((f) => f.endsWith(".board.json"))
    .map((f) => f.slice(0, -".board.json".length))
    .sort();
}

/**
 * Loads one board's configuration.
 * @example
 * const board = loadBoard("xiao_c3_sht30") // { archId: "esp32c3", sensor: "SHT30", i2c: { sdaGpio: 6, … } }
 */
export function loadBoard(id: string, boardsDir = BOARDS_DIR): BoardConfig {
  const known = listBoardIds(boardsDir);
  if (!known.includes(id)) throw new ErrUnknownBoard(id, known);
  const boardFile = join(boardsDir, `${id}.board.json`);
  const envFile = join(boardsDir, `${id}.env`);
  const json = JSON.parse(readFileSync(boardFile, "utf8")) as {
    devName?: string;
    archId?: string;
    pins?: Record<string, number>;
    i2c?: { pinSDA: number | string; pinSCL: number | string; kHz?: number };
  };
  const pins = json.pins ?? {};
  const gpio = (pin: number | string): number => {
    if (typeof pin === "number") return pin;
    const n = pins[pin] ?? (/^P(\d+)$/.exec(pin) ? Number(pin.slice(1)) : undefined);
    if (n === undefined) throw new Error(`${boardFile}: pin label "${pin}" is not in "pins"`);
    return n;
  };
  let sensor: string | undefined;
  if (existsSync(envFile)) {
    const entry = parseDeviceScriptEnv(readFileSync(envFile, "utf8"), envFile).entries.find((e) => e.key === "SENSOR");
    sensor = typeof entry?.value === "string" ? entry.value : undefined;
  }
  return {
    id,
    devName: json.devName ?? id,
    archId: json.archId ?? "unknown",
    sensor,
    i2c: json.i2c ? { sdaGpio: gpio(json.i2c.pinSDA), sclGpio: gpio(json.i2c.pinSCL), kHz: json.i2c.kHz ?? 100 } : undefined,
    boardFile,
    envFile,
  };
}
