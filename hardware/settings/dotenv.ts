/**
 * Reads `.env` settings files exactly the way the DeviceScript 2.16.4 compiler does
 * (cli bundle: `parseToSettings` / `stringToSettingValue`), so the validator sees what the device gets:
 * - a line that contains `#` anywhere is dropped whole (also `WIFI_PWD=ab#cd`),
 * - the key is everything before the first `=` (not trimmed), the value everything after it,
 * - a value that parses as JSON becomes that JSON value (`1883` → number, `"1234"` → string),
 *   anything else stays a string; an empty value unsets the key.
 * Where those rules would silently surprise a user, this parser reports an issue instead.
 */

export type SettingValue = string | number | boolean | null | object;

export interface SettingsIssue {
  /** "error" stops build and flash; "warning" is printed. */
  severity: "error" | "warning";
  message: string;
  key?: string;
  /** File the value came from (repository-relative when possible). */
  source?: string;
  line?: number;
}

export interface EnvEntry {
  key: string;
  /** undefined = the line unsets the key (empty value). */
  value: SettingValue | undefined;
  raw: string;
  source: string;
  line: number;
}

export interface ParsedEnv {
  entries: EnvEntry[];
  issues: SettingsIssue[];
}

/** Runtime limit checked in DESIGN.md: setting keys of at most 13 characters persist in flash. */
export const MAX_SETTING_KEY_LENGTH = 13;
const KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Parses one `.env` file.
 * @example
 * parseDeviceScriptEnv("MQTT_PORT=1883\n", "devs/.env.defaults").entries[0].value // 1883
 */
export function parseDeviceScriptEnv(text: string, source: string): ParsedEnv {
  const entries: EnvEntry[] = [];
  const issues: SettingsIssue[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const at = { source, line };
    if (raw.includes("#")) {
      issues.push({
        severity: "error",
        ...at,
        message:
          "contains '#': DeviceScript drops the whole line, so this setting would be silently missing " +
          "(put comments on their own line; values cannot contain '#')",
      });
      return;
    }
    const eq = raw.indexOf("=");
    if (eq < 0) {
      issues.push({ severity: "error", ...at, message: `expected KEY=value, got "${trimmed}"` });
      return;
    }
    const key = raw.slice(0, eq);
    const rawValue = raw.slice(eq + 1);
    if (!KEY_PATTERN.test(key)) {
      issues.push({
        severity: "error",
        ...at,
        key: key.trim(),
        message: `invalid key "${key}": letters, digits and _ only, no spaces around '='`,
      });
      return;
    }
    if (key.length > MAX_SETTING_KEY_LENGTH) {
      issues.push({
        severity: "error",
        ...at,
        key,
        message: `key is ${key.length} characters; DeviceScript settings keys hold at most ${MAX_SETTING_KEY_LENGTH}`,
      });
      return;
    }
    if (rawValue !== rawValue.trim()) {
      issues.push({
        severity: "error",
        ...at,
        key,
        message: "value has leading or trailing spaces, which DeviceScript keeps as part of the value",
      });
      return;
    }
    entries.push({ key, value: toSettingValue(rawValue), raw: rawValue, source, line });
  });
  return { entries, issues };
}

/** The compiler's conversion: JSON when it parses, else the text; empty means unset. */
export function toSettingValue(raw: string): SettingValue | undefined {
  if (raw.length === 0) return undefined;
  try {
    return JSON.parse(raw) as SettingValue;
  } catch {
    return raw;
  }
}

/**
 * Serializes settings so that DeviceScript reads back exactly these values
 * (every value JSON-encoded: strings stay strings even when they look like numbers).
 */
export function formatDeviceScriptEnv(settings: Record<string, SettingValue>, header: string): string {
  const lines = header.split("\n").map((l) => `# ${l}`);
  for (const key of Object.keys(settings).sort()) lines.push(`${key}=${JSON.stringify(settings[key])}`);
  return lines.join("\n") + "\n";
}
