/**
 * DeviceScript settings from devs/.env.defaults and devs/.env.local, read by the one parser the hardware tools
 * use too (hardware/settings/dotenv.ts), which follows the pinned @devicescript/cli exactly: a line containing
 * `#` is dropped whole, `KEY=value` with the value as written (JSON when it parses, else text), an empty value
 * unsets the key, .env.local wins over .env.defaults. On hardware `devs deploy` writes them into the device's
 * settings service; the simulator writes the same values into each VM's settings service (see vm-settings.ts),
 * plus per-device overrides.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  deployedSettings,
  MAX_SETTING_KEY_LENGTH,
  mergeEnvLikeDevs,
  parseDeviceScriptEnv,
  parseEnvLikeDevs,
} from "../../hardware/settings/dotenv.ts";
import { DEFAULT_PROFILE, type RuntimeProfile, resolveProfile } from "./profile.ts";
import { settingRecordBytes } from "./vm-settings.ts";

/** DeviceScript limits setting names (@devicescript/settings MAX_KEY_SIZE). */
export { MAX_SETTING_KEY_LENGTH };

/** The settings one `.env` file gives a device (what `devs deploy` would write for it alone). */
export function parseEnvSettings(text: string): Record<string, unknown> {
  return deployedSettings(parseEnvLikeDevs(text));
}

/**
 * .env.defaults then .env.local (secrets override defaults, an empty value there unsets a default); missing
 * files are fine. Exactly the values `devs deploy` writes; throws a RangeError listing file:line for every line
 * the CLI would silently drop or misread (the same errors `npm run check:settings` reports).
 */
export function loadEnvSettings(devsDir: string): Record<string, unknown> {
  const texts: (string | undefined)[] = [];
  const errors: string[] = [];
  for (const file of [".env.defaults", ".env.local"]) {
    const path = join(devsDir, file);
    const text = existsSync(path) ? readFileSync(path, "utf8") : undefined;
    texts.push(text);
    if (text === undefined) continue;
    for (const i of parseDeviceScriptEnv(text, path).issues) {
      if (i.severity === "error") errors.push(`${i.source}:${i.line}: ${i.key ? `${i.key} ` : ""}${i.message}`);
    }
  }
  if (errors.length > 0) throw new RangeError(`DeviceScript settings files:\n${errors.join("\n")}`);
  return deployedSettings(mergeEnvLikeDevs(parseEnvLikeDevs(texts[0]), parseEnvLikeDevs(texts[1])));
}

/**
 * Rejects settings the firmware could never read back, before any device starts. Size: the runtime answers a
 * read with one packet of name + NUL + value, and panics above profile.settingsReadLimitBytes (232; see
 * settings-limit.ts). The write packet would take 236, so without this check a setting of 233..236 bytes is
 * stored fine and then panics the device the first time the firmware reads it.
 */
export function validateSettings(
  settings: Record<string, unknown>,
  where: string,
  profile: RuntimeProfile = resolveProfile(DEFAULT_PROFILE),
): void {
  const limit = profile.settingsReadLimitBytes;
  for (const [key, value] of Object.entries(settings)) {
    if (key.length === 0 || key.length > MAX_SETTING_KEY_LENGTH) {
      throw new RangeError(`${where}: setting name "${key}" must be 1..${MAX_SETTING_KEY_LENGTH} characters`);
    }
    if (value === undefined || (typeof value === "number" && !Number.isFinite(value))) {
      throw new RangeError(`${where}: setting ${key} has no JSON value`);
    }
    const size = settingRecordBytes(key, value);
    if (size > limit) {
      throw new RangeError(
        `${where}: setting ${key} is too long: ${size} bytes (name + NUL + JSON value); the ${profile.name} ` +
          `runtime panics reading a setting of more than ${limit} bytes`,
      );
    }
  }
}
