/**
 * The one reader of DeviceScript `.env` settings files (devs/.env.defaults, devs/.env.local, devs/boards/<id>.env),
 * used by the simulator (simulator/src/env-settings.ts) and the hardware tools (layers.ts, boards/, flash).
 *
 * It follows the pinned @devicescript/cli 2.16.4 exactly. The CLI has no dotenv package: its compiler
 * (node_modules/@devicescript/cli/built/devicescript-cli.cjs) reads the files with a hand-written parser:
 *
 *     function parseToSettings(source, secret) {              // bundle line ~192111
 *       source?.split(/\r?\n/g)
 *         .filter((line) => !/\s*#/.test(line))                // any '#' anywhere drops the whole line
 *         .map((line) => /(?<key>[^=]+)\s*=(?<value>[^#]*)#?/.exec(line))
 *         .filter((line) => !!line)
 *         .forEach(({ groups: { key, value } }) => { delete res[key]; res[key] = stringToSettingValue(value) })
 *     }
 *     function stringToSettingValue(s) {                       // bundle line ~192102
 *       if (!s?.length) return undefined                       // empty value: the key is unset
 *       return utf8(JSON.stringify(JSONTryParse(s, undefined) ?? s))
 *     }
 *     readSettings() { return { ...parseToSettings(".env.defaults"), ...parseToSettings(".env.local") } } // ~217081
 *
 * and `devs deploy` (cli/src/deploy.ts deploySettingsToService, ~492773) sends every key except WIFI_SSID and
 * WIFI_PWD (those go to the Wi-Fi service) through jacdac-ts SettingsClient.setValue (~487188), which trims the
 * key and deletes the setting when the value is undefined. So:
 * - lines split at LF or CRLF; no multi-line values, no escapes except inside a JSON string;
 * - a line that contains `#` anywhere is dropped whole (also `WIFI_PWD=ab#cd`, `X="a#b"`, `X=1 # note`);
 * - a line without `=` after a non-`=` character is dropped silently;
 * - the key is everything before the first `=` (leading `=` characters are skipped), not trimmed at build time
 *   (`export X=1` has the key "export X"), trimmed at deploy time;
 * - the value is everything after that `=`, not trimmed, `=` kept; single and back quotes are kept as text;
 * - the value becomes JSON.parse(value) if that succeeds and is not null, else the text itself; it is stored as
 *   its JSON.stringify (so `null` is the string "null", `"0042"` the string 0042, `1e400` is stored as null);
 * - an empty value unsets the key; for a duplicated key the last line wins; .env.local wins over .env.defaults
 *   (an empty value there unsets a default);
 * - the build fails when a key in .env.defaults is longer than 14 characters (the runtime keeps 13, see below).
 *
 * `parseEnvLikeDevs` / `mergeEnvLikeDevs` / `deployedSettings` are that algorithm, line for line.
 * `parseDeviceScriptEnv` reads the same lines and additionally reports, with file and line, everything those
 * rules would silently drop or turn into a surprise; it keeps an entry only where it means exactly what the
 * CLI makes of it (hardware/settings/dotenv.test.ts checks both against the CLI bundle itself).
 */
/** The runtime's settings store keeps keys of at most 13 characters (hardware/flashing.md). */
export const MAX_SETTING_KEY_LENGTH = 13;
/** The CLI's own check (readSettings MAX_SETTING_NAME_LENGTH): a longer key in .env.defaults fails `devs build`. */
export const DEVS_CLI_MAX_KEY_LENGTH = 14;
const KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The CLI's line filter and line pattern, verbatim. */
const CLI_COMMENT = /\s*#/;
const CLI_LINE = /(?<key>[^=]+)\s*=(?<value>[^#]*)#?/;
/** Splits a file into lines and applies the CLI's filter and pattern to each. */
export function scanEnvLines(text) {
    return text.split(/\r?\n/g).map((line, index) => {
        const at = { line: index + 1, text: line };
        if (CLI_COMMENT.test(line))
            return { ...at, dropped: "contains #" };
        const m = CLI_LINE.exec(line);
        if (!m)
            return { ...at, dropped: "no key=value" };
        return { ...at, key: m.groups.key, value: m.groups.value };
    });
}
/** The CLI's stringToSettingValue, as text: the JSON the device stores, or undefined (unset) for an empty value. */
export function settingJson(raw) {
    if (raw.length === 0)
        return undefined;
    let parsed;
    try {
        parsed = JSON.parse(raw);
    }
    catch {
        parsed = undefined;
    }
    return JSON.stringify(parsed ?? raw);
}
/**
 * The value the device reads back (@devicescript/settings parses the stored JSON); undefined = unset.
 * @example toSettingValue("1883") // 1883
 * @example toSettingValue('"0042"') // "0042"
 * @example toSettingValue("null") // "null"
 */
export function toSettingValue(raw) {
    const json = settingJson(raw);
    return json === undefined ? undefined : JSON.parse(json);
}
/** parseToSettings of @devicescript/cli 2.16.4; a missing file (undefined) has no settings. */
export function parseEnvLikeDevs(text) {
    const res = {};
    if (text === undefined)
        return res;
    for (const l of scanEnvLines(text)) {
        if (l.key === undefined)
            continue;
        delete res[l.key]; // a repeated key moves to the end: it is deployed after the others
        res[l.key] = settingJson(l.value);
    }
    return res;
}
/** readSettings: `.env.local` over `.env.defaults` (an undefined value in .env.local unsets the default). */
export function mergeEnvLikeDevs(defaults, local) {
    return { ...defaults, ...local };
}
/**
 * What `devs deploy` leaves in the device's settings store from the merged settings, in deploy order: keys are
 * trimmed (SettingsClient.setValue), unset keys are deleted. WIFI_SSID and WIFI_PWD are included as the
 * simulator stores them; on a board `devs deploy` sends those two (exact names) to the Wi-Fi service instead,
 * and only when WIFI_SSID is set.
 */
export function deployedSettings(merged) {
    const out = {};
    for (const [key, json] of Object.entries(merged)) {
        const k = key.trim();
        if (json === undefined)
            delete out[k];
        else
            out[k] = JSON.parse(json);
    }
    return out;
}
/**
 * Parses one `.env` file and reports every line whose meaning to the CLI is not what it looks like. Entries are
 * kept only for lines without errors, and for those the value is exactly the CLI's.
 * @example
 * parseDeviceScriptEnv("MQTT_PORT=1883\n", "devs/.env.defaults").entries[0].value // 1883
 */
export function parseDeviceScriptEnv(text, source) {
    const entries = [];
    const issues = [];
    const seen = new Map();
    for (const { line, text: raw, dropped } of scanEnvLines(text)) {
        const trimmed = raw.trim();
        if (trimmed === "" || trimmed.startsWith("#"))
            continue; // blank or comment line: nothing for anyone
        const at = { source, line };
        const error = (message, key) => issues.push({ severity: "error", ...at, ...(key ? { key } : {}), message });
        if (dropped === "contains #") {
            error("contains '#': DeviceScript drops the whole line, so this setting would be silently missing " +
                '(put comments on their own line; for a # in a value write the value as a JSON string with \\u0023, e.g. WIFI_PWD="ab\\u0023cd")');
            continue;
        }
        const eq = raw.indexOf("=");
        if (eq < 0) {
            error(`expected KEY=value, got "${trimmed}"`);
            continue;
        }
        const key = raw.slice(0, eq);
        const rawValue = raw.slice(eq + 1);
        if (!KEY_PATTERN.test(key)) {
            error(`invalid key "${key}": ${keyHint(key)}`, key.trim());
            continue;
        }
        if (key.length > MAX_SETTING_KEY_LENGTH) {
            error(`key is ${key.length} characters; DeviceScript settings keys hold at most ${MAX_SETTING_KEY_LENGTH}`, key);
            continue;
        }
        const problem = valueProblem(rawValue);
        if (problem) {
            error(problem, key);
            continue;
        }
        const earlier = seen.get(key);
        if (earlier !== undefined) {
            issues.push({ severity: "warning", ...at, key, message: `is also set on line ${earlier}; DeviceScript uses the last one (this line)` });
        }
        seen.set(key, line);
        if (rawValue === "null") {
            issues.push({
                severity: "warning",
                ...at,
                key,
                message: 'DeviceScript stores the text "null" here, not JSON null; leave the value empty to unset the key',
            });
        }
        entries.push({ key, value: toSettingValue(rawValue), raw: rawValue, source, line });
    }
    return { entries, issues };
}
function keyHint(key) {
    if (key.startsWith("\uFEFF"))
        return "the file starts with a byte order mark; save it as UTF-8 without BOM";
    if (/^\s*export\s/.test(key))
        return "`export` is not supported: DeviceScript reads the whole text before '=' as the key";
    if (key.trim() !== key)
        return "letters, digits and _ only, no spaces around the key or before '='";
    return "letters, digits and _ only (starting with a letter or _), no spaces around '='";
}
/** Why a value would not mean what it looks like to the CLI, if it would not. */
function valueProblem(raw) {
    if (raw !== raw.trim())
        return "value has leading or trailing spaces, which DeviceScript keeps as part of the value";
    const q = raw[0];
    if ((q === "'" || q === "`") && raw.length >= 2 && raw.endsWith(q)) {
        return `value is in ${q === "'" ? "single" : "back"} quotes, which DeviceScript keeps as part of the text; use double quotes (a JSON string)`;
    }
    let parsed;
    try {
        parsed = JSON.parse(raw);
    }
    catch {
        if (q === '"')
            return "value starts with a double quote but is not a valid JSON string; DeviceScript would store the text with its quotes";
        return undefined;
    }
    if (typeof parsed === "number" && !Number.isFinite(parsed))
        return "number out of range: DeviceScript stores null";
    return undefined;
}
/**
 * Serializes settings so that DeviceScript reads back exactly these values (every value JSON-encoded: strings
 * stay strings even when they look like numbers; `#`, which would drop the line, is written as \u0023).
 * Throws for what no `.env` line can carry (an invalid or too long key, null, a non-finite number).
 */
export function formatDeviceScriptEnv(settings, header) {
    const lines = header.split("\n").map((l) => `# ${l}`);
    for (const key of Object.keys(settings).sort()) {
        const value = settings[key];
        if (!KEY_PATTERN.test(key) || key.length > MAX_SETTING_KEY_LENGTH) {
            throw new RangeError(`setting name "${key}" cannot be written to a DeviceScript .env file`);
        }
        if (value === null || value === undefined || (typeof value === "number" && !Number.isFinite(value))) {
            throw new RangeError(`setting ${key}: ${String(value)} cannot be written to a DeviceScript .env file`);
        }
        lines.push(`${key}=${JSON.stringify(value).replace(/#/g, "\\u0023")}`);
    }
    return lines.join("\n") + "\n";
}
//# sourceMappingURL=dotenv.js.map