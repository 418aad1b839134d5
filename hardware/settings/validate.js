/**
 * Checks device settings before anything is built or flashed, with one clear message per bad value.
 * The keys and ranges are those of docs/protocol.md ("Device settings") plus the hardware-only keys
 * (`SENSOR`, and `WIFI_SSID`/`WIFI_PWD`, which `devs bundle` hands to the runtime's Wi-Fi service).
 * Also the limits of the ESP32 runtime (their figures and sources: simulator/src/profile.ts):
 * a setting record over 232 bytes is an error (reading it panics the runtime); TLS to a host that cannot have
 * a publicly trusted certificate, TLS on 1883, `.local` hosts and plain TCP without credentials are warnings.
 */
import { COMMAND_SECONDS } from "../../gateway/src/protocol/commands.js";
import { DEVICE_ID_PATTERN, DEVICE_ID_RULE } from "../../gateway/src/protocol/ids.js";
import { MAX_BROKERS, parseBrokerList } from "../../devs/src/protocol/brokers.js";
/**
 * SENSOR values the firmware starts a driver for (devs/src/settings.ts `SENSORS`, compared
 * case-insensitively there and here; hardware/settings/validate.test.ts keeps the two lists equal).
 * @devicescript/drivers 2.16.4 has start functions for these plus BME680.
 */
export const SUPPORTED_SENSORS = ["sht30", "shtc3", "aht20"];
/** Keys whose values are secrets: only in ignored files (devs/.env.local or a --settings file). */
export const SECRET_KEYS = ["MQTT_PASS", "WIFI_PWD"];
/** Wi-Fi on the ESP32 runtime: an address 3–6 s after boot (simulator/src/profile.ts); the budget must cover it. */
export const MIN_AWAKE_FOR_WIFI_S = 8;
const HOST_PATTERN = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
function integerIn(min, max) {
    return (v) => typeof v === "number" && Number.isInteger(v) && v >= min && v <= max
        ? undefined
        : `must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`;
}
function numberIn(min, max) {
    return (v) => typeof v === "number" && Number.isFinite(v) && v >= min && v <= max ? undefined : `must be a number from ${min} to ${max}, got ${JSON.stringify(v)}`;
}
function oneOf(values) {
    return (v) => (typeof v === "string" || typeof v === "number") && values.includes(v)
        ? undefined
        : `must be one of ${values.join(", ")}, got ${JSON.stringify(v)}`;
}
/** Text settings: a value that JSON-parsed to a number needs quotes to stay text on the device. */
function text(maxLength, pattern, patternHelp) {
    return (v) => {
        if (typeof v !== "string")
            return `must be text; write it in double quotes, e.g. "${String(v)}"`;
        if (v.length > maxLength)
            return `is ${v.length} characters, at most ${maxLength}`;
        if (pattern && !pattern.test(v))
            return patternHelp ?? `has an invalid format`;
        return undefined;
    };
}
/** Every known key and its check; docs/protocol.md is the source of the ranges. */
export const SETTING_CHECKS = {
    MQTT_HOST: text(253, HOST_PATTERN, "must be a host name or IPv4 address (no scheme, no port)"),
    MQTT_PORT: integerIn(1, 65535),
    // Several brokers to fail over between (the firmware's parser, devs/src/protocol/brokers.ts); replaces
    // MQTT_HOST/MQTT_PORT when set. The firmware would skip a bad entry; here it is an error.
    MQTT_HOSTS: (v) => {
        if (typeof v !== "string")
            return `must be text: host[:port],host[:port],... (up to ${MAX_BROKERS})`;
        const list = parseBrokerList(v, 1883);
        if (list.errors.length > 0)
            return `${list.errors.join("; ")} (format: host[:port],host[:port],..., up to ${MAX_BROKERS})`;
        return undefined;
    },
    MQTT_TLS: oneOf([0, 1]),
    MQTT_USER: text(64),
    MQTT_PASS: text(128),
    DEVICE_ID: text(64, DEVICE_ID_PATTERN, `must be ${DEVICE_ID_RULE} (it is also the MQTT client id)`),
    INTERVAL_S: integerIn(COMMAND_SECONDS["set-interval"].min, COMMAND_SECONDS["set-interval"].max),
    QOS: oneOf([0, 1, 2]),
    AWAKE_MAX_S: integerIn(COMMAND_SECONDS["stay-awake"].min, COMMAND_SECONDS["stay-awake"].max),
    KEEPALIVE_S: integerIn(0, 65535),
    SENSOR: (v) => typeof v === "string" && SUPPORTED_SENSORS.includes(v.toLowerCase())
        ? undefined
        : `unknown sensor ${JSON.stringify(v)}: the firmware supports ${SUPPORTED_SENSORS.join(", ")}`,
    // GPIO number of the battery voltage divider's midpoint (an ADC1 pin); unset = no battery reading.
    BATTERY_PIN: (v) => {
        const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
        return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 48 ? undefined : `must be a GPIO number, got ${JSON.stringify(v)}`;
    },
    // Battery volts = pin volts × BATTERY_DIV (2 for two equal resistors).
    BATTERY_DIV: (v) => (typeof v === "number" && v >= 1 && v <= 20 ? undefined : `must be a number from 1 to 20, got ${JSON.stringify(v)}`),
    // Battery protection (firmware, only with BATTERY_PIN): below LOW_BATT_V (volts; 0 = off) the device makes
    // no flash writes, sends no new reading, only its status, and sleeps LOW_BATT_X times longer.
    LOW_BATT_V: numberIn(0, 5),
    LOW_BATT_X: integerIn(1, 100),
    // Wake overhead: end of deep sleep → the runtime's clock starts (ROM boot + bootloader), for the device
    // clock that dates readings. Default 300 ms is modelled: measure it on a board.
    BOOT_MS: integerIn(0, 5000),
    // Commands handled per wake; the rest wait in the broker for the next wake.
    CMD_BUDGET: integerIn(0, 100),
    WIFI_SSID: text(32),
    WIFI_PWD: (v) => {
        const bad = text(63)(v);
        if (bad)
            return bad;
        const length = v.length;
        return length === 0 || length >= 8 ? undefined : "must be empty (open network) or 8 to 63 characters (WPA2)";
    },
};
const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0)$/i;
/**
 * A settings read replies with key + NUL + value; above this many bytes the runtime panics
 * (jacdac-c jd_util.c:129; on ESP32 abort() resets the board, so the device boot-loops).
 * simulator/src/profile.ts settingsReadLimitBytes.
 */
export const MAX_SETTING_RECORD_BYTES = 232;
/** Keys that `devs` routes to the Wi-Fi service instead of the settings store. */
const WIFI_KEYS = ["WIFI_SSID", "WIFI_PWD"];
/**
 * Bytes of the settings record the runtime reads for a key: key + NUL + the value as the devs CLI stores it
 * (`stringToSettingValue`: always `JSON.stringify` of the parsed value, so text gets its quotes).
 */
export function settingRecordBytes(key, value) {
    return Buffer.byteLength(key, "utf8") + 1 + Buffer.byteLength(JSON.stringify(value), "utf8");
}
/** Texts of the TLS and host warnings (exported for the tests). */
export const TLS_PUBLIC_ROOTS_ONLY = "the ESP32 runtime checks TLS certificates against its public root bundle only: use a DNS name with a publicly trusted certificate, or MQTT_TLS=0 with per-device credentials on the LAN";
export const NO_MDNS = "no mDNS in the ESP32 runtime: .local names do not resolve; use the Pi's IP address or a DNS name";
export const PLAIN_WITHOUT_CREDENTIALS = "plain TCP without credentials: anyone on the LAN can publish as this device";
const IPV4_LITERAL = /^\d{1,3}(\.\d{1,3}){3}$/;
/**
 * Top-level names no public CA issues certificates for (RFC 8375 home.arpa, ICANN's .internal, RFC 2606/6761
 * names, and common router defaults). `.local` is reported on its own (mDNS).
 */
const PRIVATE_SUFFIXES = /\.(home\.arpa|internal|lan|home|localdomain|intranet|corp|test|invalid|localhost)$/i;
/** Why MQTT_HOST cannot carry a publicly trusted certificate; undefined for an ordinary public DNS name. */
function hostWithoutPublicCertificate(host) {
    const h = host.replace(/\.$/, "");
    if (IPV4_LITERAL.test(h))
        return "an IPv4 address";
    if (h.includes(":") || /^\[.*\]$/.test(h))
        return "an IPv6 address";
    if (/\.local$/i.test(h))
        return "a .local (mDNS) name";
    if (!h.includes("."))
        return "a single-label name";
    const suffix = PRIVATE_SUFFIXES.exec(h);
    if (suffix)
        return `a private-use name (.${suffix[1].toLowerCase()})`;
    return undefined;
}
/**
 * Merges the layers (later wins, an empty value unsets) and checks the result for a target.
 * @example
 * const r = validateSettings([{ source: "devs/.env.defaults", committed: true, entries }], "flash")
 * if (!r.ok) for (const e of r.errors) console.error(formatIssue(e))
 */
export function validateSettings(layers, target) {
    const errors = [];
    const warnings = [];
    const origin = {};
    for (const layer of layers) {
        for (const parsed of layer.issues ?? [])
            (parsed.severity === "error" ? errors : warnings).push(parsed);
        for (const entry of layer.entries) {
            if (entry.value === undefined)
                delete origin[entry.key];
            else
                origin[entry.key] = entry;
            if (layer.committed && SECRET_KEYS.includes(entry.key) && entry.value !== undefined && entry.value !== "") {
                errors.push(issue("error", entry, `is a secret: move it to devs/.env.local (ignored by git)`));
            }
        }
    }
    const settings = {};
    for (const [key, entry] of Object.entries(origin)) {
        settings[key] = entry.value;
        const check = SETTING_CHECKS[key];
        if (!check) {
            warnings.push(issue("warning", entry, `unknown setting (typo?); known: ${Object.keys(SETTING_CHECKS).join(", ")}`));
            continue;
        }
        const problem = check(entry.value);
        if (problem)
            errors.push(issue("error", entry, problem));
    }
    for (const [key, entry] of Object.entries(origin)) {
        if (WIFI_KEYS.includes(key))
            continue;
        const bytes = settingRecordBytes(key, entry.value);
        if (bytes > MAX_SETTING_RECORD_BYTES) {
            errors.push(issue("error", entry, `setting record is ${bytes} bytes (key + 1 + JSON value), over ${MAX_SETTING_RECORD_BYTES}: the runtime panics reading a setting over ${MAX_SETTING_RECORD_BYTES} bytes with its name`));
        }
    }
    const hostsKey = typeof settings.MQTT_HOSTS === "string" && settings.MQTT_HOSTS !== "" ? "MQTT_HOSTS" : "MQTT_HOST";
    const port = typeof settings.MQTT_PORT === "number" ? settings.MQTT_PORT : 1883;
    const brokers = effectiveBrokers(settings, port);
    if (brokers.length === 0 && target !== "simulator") {
        errors.push({ severity: "error", key: "MQTT_HOST", message: "missing: set the broker host (the gateway's LAN address)" });
    }
    for (const b of brokers) {
        if (!LOOPBACK.test(b.host) || target === "simulator")
            continue;
        const msg = `${b.host} is the board itself, not the broker: set ${hostsKey} to the gateway's LAN address in devs/.env.local`;
        (target === "flash" ? errors : warnings).push(issue(target === "flash" ? "error" : "warning", origin[hostsKey], msg));
    }
    if (brokers.length > 1 && settings.QOS === 2) {
        warnings.push(issue("warning", origin.QOS, "QOS=2 with several brokers: a QoS 2 flow acknowledged (PUBREC) by a broker that then dies is finished on the next one, which never saw it; separate brokers can lose such a reading (devs/README.md, \"Several brokers\"): use QOS=1, or brokers that share state"));
    }
    if (target !== "simulator")
        checkTransport(settings, brokers, origin[hostsKey], origin, target, warnings);
    if (target !== "simulator" && settings.SENSOR === undefined) {
        errors.push({ severity: "error", key: "SENSOR", message: `missing: the board's .env must name its sensor (${SUPPORTED_SENSORS.join(", ")})` });
    }
    if (target === "flash") {
        if (typeof settings.WIFI_SSID !== "string" || settings.WIFI_SSID === "") {
            errors.push({ severity: "error", key: "WIFI_SSID", message: "missing: a board needs Wi-Fi; set WIFI_SSID (and WIFI_PWD) in devs/.env.local" });
        }
        if (settings.MQTT_USER !== undefined && settings.MQTT_USER !== "" && !settings.MQTT_PASS) {
            warnings.push(issue("warning", origin.MQTT_USER, "MQTT_USER is set without MQTT_PASS; a broker with a password file will refuse it"));
        }
    }
    const awake = settings.AWAKE_MAX_S;
    const interval = settings.INTERVAL_S;
    if (typeof awake === "number" && typeof interval === "number" && awake >= interval) {
        warnings.push(issue("warning", origin.AWAKE_MAX_S, `AWAKE_MAX_S (${awake}) is not below INTERVAL_S (${interval}): the device may never sleep`));
    }
    if (target !== "simulator" && typeof awake === "number" && awake < MIN_AWAKE_FOR_WIFI_S) {
        warnings.push(issue("warning", origin.AWAKE_MAX_S, `AWAKE_MAX_S (${awake}) is under ${MIN_AWAKE_FOR_WIFI_S} s: on the ESP32 runtime Wi-Fi alone takes 3–6 s after boot (scan, association, DHCP on every wake), so the device may never reach the broker`));
    }
    return { ok: errors.length === 0, settings, origin, errors, warnings };
}
/**
 * TLS and host rules of the ESP32 runtime (board and flash targets only; warnings, since the simulator may use
 * TLS): certificates are checked against the public root bundle only (devicescript-esp32 main/sock.c:185
 * esp_crt_bundle_attach), and there is no mDNS. hardware/mosquitto/README.md "TLS and devices".
 */
function checkTransport(settings, brokers, hostOrigin, origin, target, warnings) {
    const tls = settings.MQTT_TLS === 1;
    for (const { host, port } of brokers) {
        const kind = hostWithoutPublicCertificate(host);
        if (tls && kind)
            warnings.push(issue("warning", hostOrigin, `MQTT_TLS=1 with ${kind} (${host}): ${TLS_PUBLIC_ROOTS_ONLY}`));
        if (tls && port === 1883 && hostOrigin?.key === "MQTT_HOSTS") {
            warnings.push(issue("warning", hostOrigin, `MQTT_TLS=1 with port 1883 for ${host}, the plain MQTT port (likely wrong port: TLS listeners use 8883)`));
        }
        if (/\.local\.?$/i.test(host))
            warnings.push(issue("warning", hostOrigin, NO_MDNS));
    }
    if (tls && settings.MQTT_PORT === 1883 && hostOrigin?.key !== "MQTT_HOSTS") {
        warnings.push(issue("warning", origin.MQTT_PORT, "MQTT_TLS=1 with MQTT_PORT 1883, the plain MQTT port (likely wrong port: TLS listeners use 8883)"));
    }
    const user = settings.MQTT_USER;
    const pass = settings.MQTT_PASS;
    if (target === "flash" && !tls && (typeof user !== "string" || user === "" || typeof pass !== "string" || pass === "")) {
        warnings.push({
            severity: "warning",
            key: "MQTT_TLS",
            message: `${PLAIN_WITHOUT_CREDENTIALS} (MQTT_TLS=0 and no MQTT_USER/MQTT_PASS: create them with \`npm run provision -- --device <id>\`)`,
        });
    }
}
/** The brokers the firmware will use: MQTT_HOSTS when set (its valid entries), else MQTT_HOST/MQTT_PORT. */
function effectiveBrokers(settings, port) {
    if (typeof settings.MQTT_HOSTS === "string" && settings.MQTT_HOSTS !== "")
        return parseBrokerList(settings.MQTT_HOSTS, port).brokers;
    return typeof settings.MQTT_HOST === "string" && settings.MQTT_HOST !== "" ? [{ host: settings.MQTT_HOST, port }] : [];
}
function issue(severity, entry, message) {
    return entry
        ? { severity, key: entry.key, source: entry.source, line: entry.line, message }
        : { severity, message };
}
/** `devs/.env.local:3: MQTT_PORT must be ...` — one line per issue, for terminals and CI logs. */
export function formatIssue(i) {
    const where = i.source ? `${i.source}${i.line ? `:${i.line}` : ""}: ` : "";
    return `${i.severity}: ${where}${i.key ? `${i.key} ` : ""}${i.message}`;
}
//# sourceMappingURL=validate.js.map