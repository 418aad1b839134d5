/**
 * A tiny DeviceScript program for the simulator's own tests, built with the pinned CLI into a temp folder
 * (never into devs/.devicescript). First thing, it reads the settings FX_S1..FX_S6 and logs them as JSON (missing
 * ones as null); then it counts boots in flash, reads both simulated sensors, logs one line (and one
 * console.warn and one console.error line), stays awake FX_AWAKE_MS and sleeps FX_SLEEP_MS (FX_REBOOT1: calls
 * ds.reboot() on its first boot). Independent of the real firmware, so these tests pin the runner, not the firmware.
 * Runtime-profile tests: FX_PANIC (non-zero: the program panics with that code right after logging its
 * settings, every boot); FX_BIG (n > 0: writes the setting "cmd" = a string of n "x" after counting the boot;
 * FX_READ_BIG: then reads it back and logs "fixture cmd <length>").
 */
import { execFile } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

const FIXTURE_MAIN = `import * as ds from "@devicescript/core"
import { standby } from "@devicescript/runtime"
import { readSetting, writeSetting } from "@devicescript/settings"

const seen: any = {}
for (const key of ["FX_S1", "FX_S2", "FX_S3", "FX_S4", "FX_S5", "FX_S6"]) seen[key] = await readSetting(key, null)
console.log(\`fixture settings \${JSON.stringify(seen)}\`)
const panicCode = await readSetting<number>("FX_PANIC", 0)
if (panicCode) ds._panic(panicCode)
const boots = (await readSetting<number>("fx_boots", 0)) + 1
await writeSetting("fx_boots", boots)
const big = await readSetting<number>("FX_BIG", 0)
if (big > 0) {
    let text = ""
    while (text.length < big) text += "x"
    await writeSetting("cmd", text)
    if (await readSetting<boolean>("FX_READ_BIG", false)) console.log(\`fixture cmd \${(await readSetting<string>("cmd", "")).length}\`)
}
const sleepMs = await readSetting<number>("FX_SLEEP_MS", 1000)
const t = await new ds.Temperature().reading.read()
const h = await new ds.Humidity().reading.read()
console.log(\`fixture boot=\${boots} temperature=\${t} humidity=\${h} id=\${ds.deviceIdentifier("self")}\`)
console.warn(\`fixture warn boot=\${boots}\`)
console.error(\`fixture error boot=\${boots}\`)
if (boots === 1 && (await readSetting<boolean>("FX_REBOOT1", false))) ds.reboot()
await ds.sleep(await readSetting<number>("FX_AWAKE_MS", 0))
await standby(sleepMs)
`;

let built: Promise<string> | undefined;
let builtDir: string | undefined;

/** Path of the fixture's bytecode.devs (built once per test process). */
export function buildFixtureFirmware(): Promise<string> {
  built ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "sim-fixture-"));
    builtDir = dir;
    mkdirSync(join(dir, "src"));
    // no node_modules needed: `devicescript build` writes node_modules/@devicescript from the CLI bundle
    writeFileSync(join(dir, "devsconfig.json"), "{}\n");
    writeFileSync(join(dir, "src/main.ts"), FIXTURE_MAIN);
    const cli = join(REPO_ROOT, "node_modules/.bin/devicescript");
    await promisify(execFile)(cli, ["build", "src/main.ts"], { cwd: dir });
    return join(dir, ".devicescript/bin/bytecode.devs");
  })();
  return built;
}

/** Deletes the fixture build (call from afterAll). */
export function removeFixtureFirmware(): void {
  if (builtDir) rmSync(builtDir, { recursive: true, force: true });
  built = undefined;
  builtDir = undefined;
}
