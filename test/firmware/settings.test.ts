/**
 * One source of defaults: devs/.env.defaults (what `devs deploy` writes into a device) must equal the
 * DEFAULTS the firmware falls back to (devs/src/settings.ts), and both must match docs/protocol.md.
 */
import { describe, expect, test } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { deployedSettings, parseEnvLikeDevs } from "../../hardware/settings/dotenv.ts";

const root = join(import.meta.dirname, "../..");

/** devs/.env.defaults as `devs deploy` would store it (the one .env parser, hardware/settings/dotenv.ts). */
function envDefaults(): Record<string, unknown> {
  return deployedSettings(parseEnvLikeDevs(readFileSync(join(root, "devs/.env.defaults"), "utf8")));
}

/** The DEFAULTS object literal of devs/src/settings.ts (DeviceScript code: read as text, not imported). */
function firmwareDefaults(): Record<string, unknown> {
  const src = readFileSync(join(root, "devs/src/settings.ts"), "utf8");
  const block = /export const DEFAULTS = \{([\s\S]*?)\n\}/.exec(src);
  expect(block, "DEFAULTS literal in devs/src/settings.ts").not.toBeNull();
  const out: Record<string, unknown> = {};
  for (const m of block![1]!.matchAll(/^\s*([A-Z0-9_]+):\s*(.+?),?\s*$/gm)) out[m[1]!] = JSON.parse(m[2]!);
  return out;
}

describe("firmware settings", () => {
  test(".env.defaults and the firmware's DEFAULTS are the same", () => {
    expect(firmwareDefaults()).toEqual(envDefaults());
  });

  test("every key is at most 13 characters (DeviceScript settings limit) and no secret is committed", () => {
    const env = envDefaults();
    for (const key of Object.keys(env)) expect(key.length, key).toBeLessThanOrEqual(13);
    expect(env).not.toHaveProperty("MQTT_PASS");
  });

  test("the defaults match the table in docs/protocol.md", () => {
    const doc = readFileSync(join(root, "docs/protocol.md"), "utf8");
    const env = envDefaults();
    for (const key of ["MQTT_HOST", "MQTT_PORT", "MQTT_TLS", "INTERVAL_S", "QOS", "AWAKE_MAX_S", "KEEPALIVE_S"]) {
      const row = new RegExp("\\| `" + key + "` \\| `([^`]*)` \\|").exec(doc);
      expect(row, `docs/protocol.md row for ${key}`).not.toBeNull();
      expect(String(env[key]), key).toBe(row![1]);
    }
  });
});
