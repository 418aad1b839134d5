/**
 * `npm run flash -- --board <id> [options]`: settings check → board build → `devs bundle` (runtime image +
 * program + settings in one .bin) → `devs flash esp32 --file <bundle>` → Wi-Fi credentials over serial.
 * One command from a fresh board to a running sensor; see hardware/flashing.md for what needs the internet.
 *
 * Why the last step: `devs bundle` prepares the image in the WASM VM, which has no Wi-Fi service, so the CLI
 * drops WIFI_SSID/WIFI_PWD from the bundle (cli deploySettingsToService routes them to the Wi-Fi service).
 * `devs devtools --serial` deploys program + settings + Wi-Fi to the real device instead.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { DEVS_DIR, listBoardIds } from "../boards/catalog.ts";
import { buildBoard } from "../boards/build-board.ts";
import { runDevs, runDevsUntil } from "../boards/devs-cli.ts";
import { clearStagedSecrets, type Stage } from "../boards/stage.ts";

/**
 * The bare runtime image `devs bundle` downloads for a custom board of each architecture
 * (`archs[*].bareUrl` in @devicescript/cli 2.16.4), and the cache name it looks for.
 */
export const RUNTIME_IMAGES: Record<string, string> = {
  esp32: "https://github.com/microsoft/devicescript-esp32/releases/latest/download/devicescript-esp32-esp32_bare-0x1000.bin",
  esp32c3: "https://github.com/microsoft/devicescript-esp32/releases/latest/download/devicescript-esp32c3-esp32c3_bare-0x0.bin",
  esp32s3: "https://github.com/microsoft/devicescript-esp32/releases/latest/download/devicescript-esp32s3-esp32s3_bare-0x0.bin",
};

/** Runtime images kept across runs: the CLI's own cache expires after 24 h and would need the internet again. */
const RUNTIME_STORE = join(DEVS_DIR, ".devicescript", "runtime");

const usage = `usage: npm run flash -- --board <id> [options]
  --board <id>         board configuration in devs/boards/ (${listBoardIds().join(", ")})
  --settings <file>    extra settings layered last (repeatable), e.g. the output of npm run provision
  --port <path>        serial port (default: the one ESP32 port found)
  --baud <rate>        serial speed (default 1500000; try 460800 on flaky cables)
  --runtime <file.bin> use this DeviceScript runtime image instead of downloading it
  --refresh-runtime    download the runtime image again instead of the copy kept from an earlier flash
  --esptool <path>     esptool to use (default: esptool.py on PATH or python -m esptool)
  --settings-only      skip bundle and esptool: deploy program, settings and Wi-Fi over serial to a
                       board that already runs DeviceScript (change Wi-Fi, broker or interval)
  --dry-run            check settings and build only; print the bundle and flash commands
  --bundle-only        also write the bundle .bin, but do not flash
  --keep-bundle        keep the bundle after flashing (it contains the Wi-Fi and MQTT passwords)`;

export class ErrUsage extends Error {
  override name = "ErrUsage";
}

export interface FlashOptions {
  board: string;
  settings: string[];
  port?: string;
  baud?: string;
  runtime?: string;
  esptool?: string;
  dryRun: boolean;
  bundleOnly: boolean;
  settingsOnly: boolean;
  refreshRuntime: boolean;
  keepBundle: boolean;
}

/** Parses and checks the command line; throws ErrUsage with the reason. */
export function parseFlashArgs(argv: string[]): FlashOptions {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        board: { type: "string" },
        settings: { type: "string", multiple: true },
        port: { type: "string" },
        baud: { type: "string" },
        runtime: { type: "string" },
        esptool: { type: "string" },
        "dry-run": { type: "boolean", default: false },
        "bundle-only": { type: "boolean", default: false },
        "settings-only": { type: "boolean", default: false },
        "refresh-runtime": { type: "boolean", default: false },
        "keep-bundle": { type: "boolean", default: false },
      },
    }).values;
  } catch (err) {
    throw new ErrUsage((err as Error).message);
  }
  if (!values.board) throw new ErrUsage("missing --board <id>");
  if (values["settings-only"] && (values["bundle-only"] || values.runtime)) throw new ErrUsage("--settings-only does not write a bundle: drop --bundle-only/--runtime");
  if (values.baud !== undefined && !/^\d{4,7}$/.test(values.baud)) throw new ErrUsage(`--baud must be a number such as 460800, got "${values.baud}"`);
  for (const file of [...(values.settings ?? []), ...(values.runtime ? [values.runtime] : [])]) {
    if (!existsSync(file)) throw new ErrUsage(`file not found: ${file}`);
  }
  return {
    board: values.board,
    settings: (values.settings ?? []).map((f) => resolve(f)),
    port: values.port,
    baud: values.baud,
    runtime: values.runtime ? resolve(values.runtime) : undefined,
    esptool: values.esptool,
    dryRun: values["dry-run"],
    bundleOnly: values["bundle-only"],
    settingsOnly: values["settings-only"],
    refreshRuntime: values["refresh-runtime"],
    keepBundle: values["keep-bundle"],
  };
}

export async function flash(opts: FlashOptions): Promise<number> {
  console.log(`[1/5] settings and build for ${opts.board}`);
  const build = await buildBoard(opts.board, { target: "flash", includeLocal: true, extraFiles: opts.settings });
  for (const w of build.warnings) console.log(`  ${w}`);
  if (!build.ok || !build.stage || !build.board) {
    for (const p of build.problems) console.error(`  ${p}`);
    console.error(`flash: stopped before touching the device (fix the settings above; see hardware/flashing.md)`);
    return 1;
  }
  const { stage, board } = build;
  console.log(`  built ${board.devName}: bytecode ${build.bytecodeBytes} bytes, sha256 ${build.bytecodeSha256?.slice(0, 16)}…, SENSOR=${board.sensor}`);
  const bundleCmd = `cd ${stage.dir} && npx devs bundle --board ${board.id} src/main.ts`;
  const flashArgs = ["flash", "esp32", "--board", board.id, "--file", "<bundle.bin>"];
  if (opts.port) flashArgs.push("--port", opts.port);
  if (opts.baud) flashArgs.push("--baud", opts.baud);
  if (opts.esptool) flashArgs.push("--esptool", opts.esptool);
  if (opts.dryRun) {
    clearStagedSecrets(stage);
    console.log(`dry run: settings valid and firmware built. Next steps would be:\n  ${bundleCmd}\n  npx devs ${flashArgs.join(" ")}\n  cd ${stage.dir} && npx devs devtools --serial src/main.ts   (Wi-Fi and settings)`);
    return 0;
  }

  if (opts.settingsOnly) {
    try {
      return await deployOverSerial(stage);
    } finally {
      clearStagedSecrets(stage);
    }
  }

  try {
    console.log(`[2/5] runtime image for ${board.archId}`);
    const imageUrl = RUNTIME_IMAGES[board.archId];
    if (!imageUrl) {
      console.error(`  no known runtime image for architecture ${board.archId}`);
      return 1;
    }
    const downloads = seedRuntimeCache(stage.dir, imageUrl, opts.runtime, opts.refreshRuntime);

    console.log(`[3/5] bundle: runtime + program + settings (${bundleCmd})`);
    const startedAt = Date.now();
    const bundled = await runDevs(["bundle", "--board", board.id, "src/main.ts"], stage.dir, { echo: true });
    const bundle = findBundle(stage.dir, board.id, startedAt);
    if (bundled.code !== 0 || !bundle) {
      if (/fetch|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|can't fetch/i.test(bundled.output)) {
        console.error(`  could not download ${imageUrl}: the first flash of each chip type needs internet (or --runtime <file.bin>)`);
      }
      if (/EADDRINUSE/.test(bundled.output)) console.error("  devs bundle needs ports 8081 and 8082 free (it starts the DeviceScript devtools server)");
      console.error(`  devs bundle failed (exit code ${bundled.code})`);
      return 1;
    }
    if (downloads) keepRuntime(stage.dir, imageUrl);
    // The bundle holds the MQTT password: readable by its owner only.
    chmodSync(bundle, 0o600);
    if (opts.bundleOnly) {
      console.log(`bundle written: ${bundle}\n  it contains your MQTT password (Wi-Fi goes over serial afterwards, see --settings-only); flash it with:\n  npx devs ${flashArgs.join(" ").replace("<bundle.bin>", bundle)}`);
      return 0;
    }

    console.log(`[4/5] flash over serial (needs esptool: pip install esptool)`);
    const flashed = await runDevs(flashArgs.map((a) => (a === "<bundle.bin>" ? bundle : a)), stage.dir, { stdio: "inherit" });
    if (!opts.keepBundle) rmSync(bundle, { force: true });
    if (flashed.code !== 0) {
      console.error(`  devs flash failed (exit code ${flashed.code}); hold BOOT while plugging the board in, or pass --port`);
      return 1;
    }
    const deployed = await deployOverSerial(stage);
    if (deployed !== 0) return deployed;
    console.log(`flashed ${board.id}. The device boots, reads its ${board.sensor} sensor and publishes to ${String(build.settings?.MQTT_HOST)}:${String(build.settings?.MQTT_PORT ?? 1883)}.`);
    return 0;
  } finally {
    clearStagedSecrets(stage);
    rmSync(join(stage.dir, ".devicescript", "cache"), { recursive: true, force: true });
  }
}

/**
 * Step 5: `devs devtools --serial src/main.ts` builds, finds the board on the serial port and deploys the
 * program (skipped when its sha256 matches), the settings and the Wi-Fi network; it prints
 * "deploy status: OK" or the error, then keeps watching, so it is stopped once the status is known.
 */
async function deployOverSerial(stage: Stage): Promise<number> {
  console.log(`[5/5] program, settings and Wi-Fi over serial (cd ${stage.dir} && npx devs devtools --serial src/main.ts)`);
  const { match } = await runDevsUntil(["devtools", "--serial", "src/main.ts"], stage.dir, /deploy status: (.*)/, 90_000);
  const status = match?.[1]?.trim();
  if (status === "OK") return 0;
  console.error(`  no successful deploy over serial (${status ?? "no device answered within 90 s"}).`);
  console.error(`  Unplug and replug the board, then run: npm run flash -- --board <id> --settings-only [--settings <file>]`);
  return 1;
}

/**
 * Puts the runtime image where `devs bundle` looks first (.devicescript/cache/<name>, fresh mtime).
 * The stage's cache is emptied first, so a test image or a stale download is never reused by accident.
 * Returns whether the CLI will have to download it.
 */
function seedRuntimeCache(stageDir: string, imageUrl: string, explicit: string | undefined, refresh: boolean): boolean {
  const name = basename(imageUrl);
  const cacheDir = join(stageDir, ".devicescript", "cache");
  rmSync(cacheDir, { recursive: true, force: true });
  mkdirSync(cacheDir, { recursive: true });
  const stored = join(RUNTIME_STORE, name);
  const source = explicit ?? (!refresh && existsSync(stored) ? stored : undefined);
  if (source) {
    copyFileSync(source, join(cacheDir, name));
    console.log(`  using ${source} (no download)`);
    return false;
  }
  console.log(`  will download ${imageUrl} (internet needed once per chip type; kept in ${RUNTIME_STORE})`);
  return true;
}

/** Keeps a downloaded runtime image for later offline flashes. */
function keepRuntime(stageDir: string, imageUrl: string): void {
  const cached = join(stageDir, ".devicescript", "cache", basename(imageUrl));
  if (!existsSync(cached)) return;
  mkdirSync(RUNTIME_STORE, { recursive: true });
  copyFileSync(cached, join(RUNTIME_STORE, basename(imageUrl)));
}

/** `devs bundle` writes .devicescript/bin/bundle-<image name with the board id>.bin. */
function findBundle(stageDir: string, boardId: string, since: number): string | undefined {
  const bin = join(stageDir, ".devicescript", "bin");
  if (!existsSync(bin)) return undefined;
  return readdirSync(bin)
    .filter((f) => f.startsWith("bundle-") && f.includes(boardId) && f.endsWith(".bin"))
    .map((f) => join(bin, f))
    .find((f) => statSync(f).mtimeMs >= since - 1000);
}

async function main(): Promise<number> {
  if (process.argv.includes("--help") || process.argv.includes("-h")) {
    console.log(usage);
    return 0;
  }
  let opts: FlashOptions;
  try {
    opts = parseFlashArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ErrUsage) {
      console.error(`flash: ${err.message}\n${usage}`);
      return 2;
    }
    throw err;
  }
  if (!listBoardIds().includes(opts.board)) {
    console.error(`flash: unknown board "${opts.board}"; known boards: ${listBoardIds().join(", ")}`);
    return 2;
  }
  return flash(opts);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename ?? "")) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.error(`flash: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
