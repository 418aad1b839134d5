import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatDeviceScriptEnv, MAX_SETTING_KEY_LENGTH, parseDeviceScriptEnv, type SettingValue } from "./dotenv.ts";
import {
  formatIssue,
  MAX_SETTING_RECORD_BYTES,
  NO_MDNS,
  PLAIN_WITHOUT_CREDENTIALS,
  SETTING_CHECKS,
  settingRecordBytes,
  SUPPORTED_SENSORS,
  TLS_PUBLIC_ROOTS_ONLY,
  validateSettings,
  type SettingsLayer,
  type SettingsTarget,
} from "./validate.ts";

import { loadSettingsLayers } from "./layers.ts";
import { DEVS_DIR, listBoardIds } from "../boards/catalog.ts";

const GOOD = `MQTT_HOST=192.168.1.20
MQTT_PORT=1883
MQTT_TLS=0
INTERVAL_S=300
QOS=1
AWAKE_MAX_S=20
KEEPALIVE_S=30
SENSOR=sht30
WIFI_SSID=home
`;

function layer(text: string, source = "devs/.env.local", committed = false): SettingsLayer {
  const parsed = parseDeviceScriptEnv(text, source);
  return { source, committed, entries: parsed.entries, issues: parsed.issues };
}

function entry(key: string, value: unknown) {
  return { key, value: value as SettingValue, raw: JSON.stringify(value), source: "x", line: 1 };
}

function check(text: string, target: SettingsTarget = "flash") {
  const r = validateSettings([layer(text)], target);
  return { ...r, errorText: r.errors.map(formatIssue).join("\n"), warningText: r.warnings.map(formatIssue).join("\n") };
}

describe("parseDeviceScriptEnv (the DeviceScript compiler's rules)", () => {
  it("turns JSON values into numbers and keeps other text as strings", () => {
    const { entries, issues } = parseDeviceScriptEnv('A=1883\nB=host.lan\nC="0042"\nD=\n# comment\n\n', "x.env");
    expect(issues).toEqual([]);
    expect(entries.map((e) => [e.key, e.value, e.line])).toEqual([
      ["A", 1883, 1],
      ["B", "host.lan", 2],
      ["C", "0042", 3],
      ["D", undefined, 4],
    ]);
  });

  it("reports the lines DeviceScript would silently drop or mangle", () => {
    const { entries, issues } = parseDeviceScriptEnv("WIFI_PWD=abc#def\nMQTT_HOST = gw\nTHIS_KEY_IS_TOO_LONG=1\nnonsense\nQOS=1 \n", "devs/.env.local");
    expect(entries).toEqual([]);
    const text = issues.map(formatIssue).join("\n");
    expect(text).toContain("devs/.env.local:1: contains '#'");
    expect(text).toContain(`devs/.env.local:2: MQTT_HOST invalid key "MQTT_HOST "`);
    expect(text).toContain("devs/.env.local:3: THIS_KEY_IS_TOO_LONG key is 20 characters");
    expect(text).toContain(`devs/.env.local:4: expected KEY=value, got "nonsense"`);
    expect(text).toContain("devs/.env.local:5: QOS value has leading or trailing spaces");
  });

  it("writes settings back so that they parse to the same values", () => {
    const settings = { MQTT_HOST: "gw.lan", DEVICE_ID: "1234", MQTT_PORT: 8883, SENSOR: "aht20" };
    const back = parseDeviceScriptEnv(formatDeviceScriptEnv(settings, "header"), "x");
    expect(back.issues).toEqual([]);
    expect(Object.fromEntries(back.entries.map((e) => [e.key, e.value]))).toEqual(settings);
  });
});

describe("validateSettings", () => {
  it("accepts a complete hardware configuration", () => {
    const r = check(GOOD);
    expect(r.errors).toEqual([]);
    expect(r.settings).toMatchObject({ MQTT_HOST: "192.168.1.20", INTERVAL_S: 300, SENSOR: "sht30" });
  });

  it.each([
    ["missing broker host", GOOD.replace("MQTT_HOST=192.168.1.20\n", ""), /MQTT_HOST missing: set the broker host/],
    ["broker URL instead of host", GOOD.replace("192.168.1.20", "mqtt://gw:1883"), /MQTT_HOST must be a host name or IPv4 address/],
    ["loopback broker on a real board", GOOD.replace("192.168.1.20", "127.0.0.1"), /MQTT_HOST 127\.0\.0\.1 is the board itself/],
    ["interval too short", GOOD.replace("INTERVAL_S=300", "INTERVAL_S=2"), /INTERVAL_S must be a whole number from 5 to 86400, got 2/],
    ["interval not a number", GOOD.replace("INTERVAL_S=300", "INTERVAL_S=5min"), /INTERVAL_S must be a whole number from 5 to 86400, got "5min"/],
    ["interval fraction", GOOD.replace("INTERVAL_S=300", "INTERVAL_S=60.5"), /INTERVAL_S must be a whole number/],
    ["bad QoS", GOOD.replace("QOS=1", "QOS=3"), /QOS must be one of 0, 1, 2, got 3/],
    ["unknown sensor", GOOD.replace("SENSOR=sht30", "SENSOR=BME280"), /SENSOR unknown sensor "BME280": the firmware supports sht30, shtc3, aht20/],
    ["bad port", GOOD.replace("MQTT_PORT=1883", "MQTT_PORT=70000"), /MQTT_PORT must be a whole number from 1 to 65535/],
    ["TLS as text", GOOD.replace("MQTT_TLS=0", "MQTT_TLS=yes"), /MQTT_TLS must be one of 0, 1/],
    ["numeric device id", GOOD + "DEVICE_ID=1234\n", /DEVICE_ID must be text; write it in double quotes, e.g. "1234"/],
    ["device id with a slash", GOOD + "DEVICE_ID=a/b\n", /DEVICE_ID must be 1-64 characters from A-Z a-z 0-9 _ -/],
    ["no Wi-Fi", GOOD.replace("WIFI_SSID=home\n", ""), /WIFI_SSID missing/],
    ["short Wi-Fi password", GOOD + "WIFI_PWD=\"1234567\"\n", /WIFI_PWD must be empty \(open network\) or 8 to 63 characters/],
  ])("refuses %s with a clear error", (_name, text, message) => {
    const r = check(text);
    expect(r.ok).toBe(false);
    expect(r.errorText).toMatch(message);
  });

  it("points at the file and line of the bad value", () => {
    const r = check(GOOD.replace("QOS=1", "QOS=5"));
    expect(r.errors[0]).toMatchObject({ key: "QOS", source: "devs/.env.local", line: 5 });
  });

  it("accepts sensor names in any case, as the firmware does", () => {
    expect(check(GOOD.replace("SENSOR=sht30", "SENSOR=AHT20")).errors).toEqual([]);
  });

  it("keeps secrets out of committed files", () => {
    const committed = layer("MQTT_PASS=hunter22\n", "devs/.env.defaults", true);
    const r = validateSettings([committed, layer(GOOD)], "flash");
    expect(r.errors.map(formatIssue).join("\n")).toMatch(/devs\/\.env\.defaults:1: MQTT_PASS is a secret: move it to devs\/\.env\.local/);
  });

  it("lets later layers override earlier ones, and an empty value unset a key", () => {
    const r = validateSettings([layer("INTERVAL_S=60\nMQTT_USER=dev1\n", "devs/.env.defaults", true), layer(GOOD + "MQTT_USER=\n")], "flash");
    expect(r.settings.INTERVAL_S).toBe(300);
    expect(r.settings.MQTT_USER).toBeUndefined();
    expect(r.origin.INTERVAL_S.source).toBe("devs/.env.local");
  });

  it("warns about typos and placeholders without failing a CI board build", () => {
    const r = check(GOOD.replace("192.168.1.20", "127.0.0.1").replace("WIFI_SSID=home\n", "") + "INTERVALS=60\n", "board");
    expect(r.errors).toEqual([]);
    expect(r.warningText).toMatch(/INTERVALS unknown setting \(typo\?\)/);
    expect(r.warningText).toMatch(/127\.0\.0\.1 is the board itself/);
  });

  it("allows the loopback broker and no sensor for the simulator build", () => {
    const r = check("MQTT_HOST=127.0.0.1\nINTERVAL_S=60\n", "simulator");
    expect(r.errors).toEqual([]);
  });
});

describe("several brokers (MQTT_HOSTS)", () => {
  const HOSTS = GOOD + "MQTT_HOSTS=192.168.1.20:1883,192.168.1.21\n";

  it("accepts a list of brokers; it replaces MQTT_HOST, so a loopback MQTT_HOST from the defaults is no error", () => {
    const r = validateSettings([layer("MQTT_HOST=127.0.0.1\n", "devs/.env.defaults", true), layer(HOSTS.replace("MQTT_HOST=192.168.1.20\n", ""))], "flash");
    expect(r.errors).toEqual([]);
    expect(r.settings.MQTT_HOSTS).toBe("192.168.1.20:1883,192.168.1.21");
  });

  it.each([
    ["a bad host", "192.168.1.20,bad_host!", /MQTT_HOSTS entry 2 'bad_host!': not a host name or IPv4 address/],
    ["a bad port", "192.168.1.20:99999", /MQTT_HOSTS entry 1 '192\.168\.1\.20:99999': the port must be a whole number 1\.\.65535/],
    ["a URL", "mqtt://192.168.1.20:1883", /MQTT_HOSTS entry 1 'mqtt:\/\/192\.168\.1\.20:1883': the port must be/],
    ["an empty entry", "192.168.1.20,,192.168.1.21", /MQTT_HOSTS entry 2 '': empty/],
    ["a duplicate", "192.168.1.20,192.168.1.20:1883", /MQTT_HOSTS entry 2 '192\.168\.1\.20:1883': listed twice/],
    ["five brokers", "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5", /MQTT_HOSTS entry 5 '10\.0\.0\.5': more than 4 brokers/],
    ["a loopback entry on a board", "192.168.1.20,127.0.0.1", /MQTT_HOSTS 127\.0\.0\.1 is the board itself, not the broker: set MQTT_HOSTS/],
  ])("refuses %s with a clear error", (_name, hosts, message) => {
    const r = check(GOOD + `MQTT_HOSTS=${hosts}\n`);
    expect(r.ok).toBe(false);
    expect(r.errorText).toMatch(message);
  });

  it("refuses a list whose record is over the runtime's read limit", () => {
    const long = ["a", "b", "c", "d"].map((c) => `${c.repeat(50)}.example.org:8883`).join(",");
    const r = check(GOOD + `MQTT_HOSTS=${long}\n`);
    expect(r.errorText).toMatch(/MQTT_HOSTS setting record is \d+ bytes .* over 232/);
  });

  it("accepts QoS 2 with several brokers without a warning (flows past PUBREC restart on sessionPresent=0)", () => {
    const r = check(HOSTS.replace("QOS=1", "QOS=2"));
    expect(r.ok).toBe(true);
    expect(r.warningText).not.toMatch(/QOS/);
  });

  it("checks TLS rules per broker", () => {
    const r = check(HOSTS.replace("MQTT_TLS=0", "MQTT_TLS=1") + "MQTT_USER=dev1\nMQTT_PASS=secret-password\n", "board");
    expect(r.warningText).toContain("MQTT_TLS=1 with an IPv4 address (192.168.1.21)");
    expect(r.warningText).toContain("MQTT_TLS=1 with port 1883 for 192.168.1.20");
  });
});

describe("firmware settings for battery protection, wake overhead and the command budget", () => {
  it.each([
    ["LOW_BATT_V", [0, 3.3, 5], [-0.1, 5.5, '"3.3"']],
    ["LOW_BATT_X", [1, 4, 100], [0, 101, 2.5]],
    ["BOOT_MS", [0, 300, 5000], [-1, 5001, 12.5]],
    ["CMD_BUDGET", [0, 10, 100], [-1, 101, 1.5]],
  ] as const)("%s: accepts its range and refuses values outside it", (key, good, bad) => {
    const run = (value: unknown) => validateSettings([{ source: "x", committed: false, entries: [entry(key, value)] }], "simulator");
    for (const v of good) expect(run(v).errors, `${key}=${v}`).toEqual([]);
    for (const v of bad) {
      const r = run(typeof v === "string" ? JSON.parse(v) : v);
      expect(r.errors.map(formatIssue).join("\n"), `${key}=${v}`).toMatch(new RegExp(`${key} must be a (whole )?number from`));
    }
  });

  it("LOW_BATT_V takes a fraction, the others only whole numbers", () => {
    expect(check(GOOD + "LOW_BATT_V=3.45\n").errors).toEqual([]);
    expect(check(GOOD + "CMD_BUDGET=2.5\n").errorText).toMatch(/CMD_BUDGET must be a whole number from 0 to 100, got 2\.5/);
  });

  // @devicescript/settings (api.ts MAX_KEY_SIZE = 13): readSetting/writeSetting throw RangeError for longer keys.
  it("every known key fits the DeviceScript 13-character key limit", () => {
    for (const key of Object.keys(SETTING_CHECKS)) expect(key.length, key).toBeLessThanOrEqual(MAX_SETTING_KEY_LENGTH);
    expect(check(GOOD + "WAKE_OVERHEAD_MS=250\n").errorText).toMatch(/WAKE_OVERHEAD_MS key is 16 characters; DeviceScript settings keys hold at most 13/);
  });

  it("knows every setting the firmware has a default for (devs/src/settings.ts DEFAULTS)", () => {
    const src = readFileSync(join(DEVS_DIR, "src", "settings.ts"), "utf8");
    const block = /export const DEFAULTS = \{([\s\S]*?)\n\}/.exec(src);
    expect(block, "DEFAULTS literal in devs/src/settings.ts").not.toBeNull();
    const firmware = [...block![1]!.matchAll(/^\s*([A-Z0-9_]+):/gm)].map((m) => m[1]!);
    expect(firmware.length).toBeGreaterThan(5);
    for (const key of firmware) expect(Object.keys(SETTING_CHECKS), `checker lacks ${key}`).toContain(key);
  });
});

describe("setting records over the runtime's read limit", () => {
  it("counts key + NUL + the JSON the devs CLI stores (text with its quotes)", () => {
    expect(settingRecordBytes("QOS", 1)).toBe(3 + 1 + 1);
    expect(settingRecordBytes("MQTT_USER", "ab")).toBe(9 + 1 + 4);
    expect(settingRecordBytes("MQTT_USER", "ä")).toBe(9 + 1 + 4); // UTF-8 bytes, not characters
  });

  it("refuses a value whose record is over 232 bytes, and accepts exactly 232", () => {
    // MQTT_HOST (9) + NUL (1) + quotes (2) leaves 220 bytes of host name for 232
    const label = (n: number) => "a".repeat(n);
    const host = (n: number) => [label(63), label(63), label(63), label(n - 3 * 64)].join(".");
    expect(host(220).length).toBe(220);
    expect(settingRecordBytes("MQTT_HOST", host(220))).toBe(MAX_SETTING_RECORD_BYTES);
    expect(check(GOOD.replace("192.168.1.20", host(220))).errors).toEqual([]);
    const r = check(GOOD.replace("192.168.1.20", host(221)));
    expect(r.ok).toBe(false);
    expect(r.errorText).toContain(
      "devs/.env.local:1: MQTT_HOST setting record is 233 bytes (key + 1 + JSON value), over 232: the runtime panics reading a setting over 232 bytes with its name",
    );
  });

  it("checks unknown keys too (they are deployed all the same), but not the Wi-Fi keys", () => {
    const r = check(GOOD + `NOTES="${"x".repeat(230)}"\n`, "board");
    expect(r.errorText).toMatch(/NOTES setting record is 238 bytes/);
    expect(check(GOOD + `WIFI_PWD="${"x".repeat(63)}"\n`).errorText).not.toMatch(/setting record/);
  });
});

describe("TLS, hosts and credentials on a board (warnings: the simulator may use TLS)", () => {
  const TLS = GOOD.replace("MQTT_TLS=0", "MQTT_TLS=1").replace("MQTT_PORT=1883", "MQTT_PORT=8883") + "MQTT_USER=dev1\nMQTT_PASS=secret-password\n";

  it.each([
    ["an IPv4 address", "192.168.1.20"],
    ["an IPv6 address", "fd00::20"],
    ["a single-label name", "raspberrypi"],
    ["a .local (mDNS) name", "raspberrypi.local"],
    ["a private-use name (.lan)", "pi.lan"],
    ["a private-use name (.home.arpa)", "pi.home.arpa"],
  ])("MQTT_TLS=1 with %s: warns that only publicly trusted certificates work", (kind, host) => {
    for (const target of ["board", "flash"] as const) {
      const r = check(TLS.replace("192.168.1.20", host), target);
      expect(r.warningText).toContain(`MQTT_HOST MQTT_TLS=1 with ${kind} (${host}): ${TLS_PUBLIC_ROOTS_ONLY}`);
      expect(r.errors.filter((e) => e.key === "MQTT_TLS")).toEqual([]);
    }
  });

  it("the exact TLS text", () => {
    expect(TLS_PUBLIC_ROOTS_ONLY).toBe(
      "the ESP32 runtime checks TLS certificates against its public root bundle only: use a DNS name with a publicly trusted certificate, or MQTT_TLS=0 with per-device credentials on the LAN",
    );
  });

  it("MQTT_TLS=1 with a public DNS name on 8883 and credentials: no warning", () => {
    const r = check(TLS.replace("192.168.1.20", "mqtt.example.org"));
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
  });

  it("MQTT_TLS=1 on port 1883: likely the wrong port", () => {
    const r = check(TLS.replace("192.168.1.20", "mqtt.example.org").replace("MQTT_PORT=8883", "MQTT_PORT=1883"), "board");
    expect(r.warningText).toContain("devs/.env.local:2: MQTT_PORT MQTT_TLS=1 with MQTT_PORT 1883, the plain MQTT port (likely wrong port: TLS listeners use 8883)");
    expect(r.errors).toEqual([]);
  });

  it.each([["MQTT_TLS=0", GOOD + "MQTT_USER=dev1\nMQTT_PASS=secret-password\n"], ["MQTT_TLS=1", TLS]])(
    ".local host with %s: no mDNS on the board",
    (_tls, text) => {
      for (const host of ["raspberrypi.local", "Gateway.LOCAL"]) {
        const r = check(text.replace("192.168.1.20", host), "board");
        expect(r.warningText).toContain(`devs/.env.local:1: MQTT_HOST ${NO_MDNS}`);
        expect(r.errors).toEqual([]);
      }
    },
  );

  it("AWAKE_MAX_S too short for Wi-Fi on a board: warns for board and flash, not for the simulator", () => {
    const short = GOOD.replace("AWAKE_MAX_S=20", "AWAKE_MAX_S=5");
    for (const target of ["board", "flash"] as const) {
      expect(check(short, target).warningText).toContain("AWAKE_MAX_S (5) is under 8 s: on the ESP32 runtime Wi-Fi alone takes 3–6 s");
    }
    expect(check(short, "simulator").warningText).not.toContain("AWAKE_MAX_S (5)");
    expect(check(GOOD.replace("AWAKE_MAX_S=20", "AWAKE_MAX_S=8"), "board").warningText).not.toContain("AWAKE_MAX_S");
  });

  it("the exact mDNS text", () => {
    expect(NO_MDNS).toBe("no mDNS in the ESP32 runtime: .local names do not resolve; use the Pi's IP address or a DNS name");
  });

  it("plain TCP without credentials when flashing: warns; with credentials, or for a CI board build: quiet", () => {
    const plain = check(GOOD, "flash");
    expect(plain.errors).toEqual([]);
    expect(plain.warningText).toContain(`warning: MQTT_TLS ${PLAIN_WITHOUT_CREDENTIALS} (MQTT_TLS=0 and no MQTT_USER/MQTT_PASS`);
    expect(PLAIN_WITHOUT_CREDENTIALS).toBe("plain TCP without credentials: anyone on the LAN can publish as this device");
    expect(check(GOOD + "MQTT_USER=dev1\n", "flash").warningText).toContain(PLAIN_WITHOUT_CREDENTIALS);
    expect(check(GOOD.replace("MQTT_TLS=0\n", ""), "flash").warningText).toContain(PLAIN_WITHOUT_CREDENTIALS); // default 0
    const provisioned = check(GOOD + "MQTT_USER=dev1\nMQTT_PASS=secret-password\n", "flash");
    expect(provisioned.warnings).toEqual([]);
    expect(check(GOOD, "board").warningText).not.toContain(PLAIN_WITHOUT_CREDENTIALS);
  });

  it("none of these rules apply to the simulator build", () => {
    const r = check("MQTT_HOST=raspberrypi.local\nMQTT_TLS=1\nMQTT_PORT=1883\n", "simulator");
    expect(r.warnings).toEqual([]);
    expect(r.errors).toEqual([]);
  });
});

describe("the repository's own settings files", () => {
  it("every board's layered settings are valid for a CI build", () => {
    expect(listBoardIds().length).toBeGreaterThanOrEqual(2);
    for (const board of listBoardIds()) {
      const r = validateSettings(loadSettingsLayers({ devsDir: DEVS_DIR, board, includeLocal: false }), "board");
      expect(r.errors.map(formatIssue), board).toEqual([]);
      expect(SUPPORTED_SENSORS as readonly string[]).toContain(String(r.settings.SENSOR).toLowerCase());
    }
  });

  it("the validator's sensor list equals the firmware's (devs/src/settings.ts SENSORS)", () => {
    const source = join(DEVS_DIR, "src", "settings.ts");
    expect(existsSync(source), "devs/src/settings.ts must define SENSORS").toBe(true);
    const match = /export const SENSORS\s*=\s*\[([^\]]*)\]/.exec(readFileSync(source, "utf8"));
    expect(match, "SENSORS array not found in devs/src/settings.ts").not.toBeNull();
    const firmware = [...match![1].matchAll(/"([^"]+)"/g)].map((m) => m[1].toLowerCase()).sort();
    expect([...SUPPORTED_SENSORS].sort()).toEqual(firmware);
  });

  it("a --settings file that does not exist is an error, not silently skipped", () => {
    const dir = mkdtempSync(join(tmpdir(), "settings-"));
    try {
      writeFileSync(join(dir, "real.env"), "DEVICE_ID=kitchen\n");
      const layers = loadSettingsLayers({ devsDir: DEVS_DIR, includeLocal: false, extraFiles: [join(dir, "real.env"), join(dir, "typo.env")] });
      const r = validateSettings(layers, "board");
      expect(r.settings.DEVICE_ID).toBe("kitchen");
      expect(r.errors.map(formatIssue).join("\n")).toMatch(/typo\.env: settings file not found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
