/**
 * DeviceScript settings from devs/.env.defaults and devs/.env.local, parsed like the devs CLI does
 * (`KEY=value`, `#` comments; a value that parses as JSON is stored as that JSON, anything else as a
 * string). On hardware `devs deploy` writes them into the device's settings service; the simulator writes
 * the same values into each VM's settings service (see vm-settings.ts), plus per-device overrides.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_PROFILE, type RuntimeProfile, resolveProfile } from "./profile.ts";
import { settingRecordBytes } from "./vm-settings.ts";

/** DeviceScript limits setting names (@devicescript/settings MAX_KEY_SIZE). */
export const MAX_SETTING_KEY_LENGTH = 13;

export function parseEnvSettings(text: string): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).split("#")[0]!.trim();
    if (value === "") continue; // the CLI skips empty values too
    settings[key] = parseValue(value);
  }
  return settings;
}

function parseValue(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

/** .env.defaults then .env.local (secrets override defaults); missing files are fine. */
export function loadEnvSettings(devsDir: string): Record<string, unknown> {
  const merged: Record<string, unknown> = {};
  for (const file of [".env.defaults", ".env.local"]) {
    const path = join(devsDir, file);
    if (existsSync(path)) Object.assign(merged, parseEnvSettings(readFileSync(path, "utf8")));
  }
  return merged;
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
