/**
 * The simulator's settings from devs/.env.defaults + devs/.env.local are what `devs deploy` would write: checked
 * against a real compile by the pinned DeviceScript CLI (hardware/settings/devs-cli.ts), not against a copy of
 * its rules. Lines the CLI would silently drop stop the simulator, as they stop `npm run check:settings`.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deployedSettings } from "../../hardware/settings/dotenv.ts";
import { compileWithDevsCli, type CliCompileResult } from "../../hardware/settings/devs-cli.ts";
import { loadEnvSettings, parseEnvSettings } from "../src/env-settings.ts";

const DEVS_DIR = join(import.meta.dirname, "../../devs");
const root = mkdtempSync(join(tmpdir(), "sim-env-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function devsDir(files: { defaults?: string; local?: string }): string {
  const dir = mkdtempSync(join(root, "devs-"));
  mkdirSync(dir, { recursive: true });
  if (files.defaults !== undefined) writeFileSync(join(dir, ".env.defaults"), files.defaults);
  if (files.local !== undefined) writeFileSync(join(dir, ".env.local"), files.local);
  return dir;
}

const PROJECTS = [
  // the committed defaults (no .env.local: secrets stay out of tests)
  { defaults: readFileSync(join(DEVS_DIR, ".env.defaults"), "utf8") },
  {
    defaults: '# comment\nMQTT_HOST=127.0.0.1\nMQTT_PORT=1883\nDEVICE_ID="0042"\nSENSOR=sht30\nBOOT_MS=300\nEQ=a=b\n',
    local: 'MQTT_PORT=8883\r\nBOOT_MS=\r\nWIFI_PWD="ab\\u0023cd"\r\nMQTT_HOST=gw.lan\r\nNEW=null\r\n',
  },
  { local: "ONLY=1\n" },
];

let real: CliCompileResult[];
beforeAll(() => {
  real = compileWithDevsCli(PROJECTS);
}, 30_000);

describe("loadEnvSettings", () => {
  it.each(PROJECTS.map((p, i) => [i, p] as const))("project %i: exactly what the DeviceScript CLI deploys", (i, p) => {
    expect(real[i]!.success).toBe(true);
    expect(loadEnvSettings(devsDir(p))).toEqual(deployedSettings(Object.fromEntries(real[i]!.settings)));
  });

  it(".env.local overrides .env.defaults, an empty value unsets, JSON strings keep digits and # as text", () => {
    const s = loadEnvSettings(devsDir(PROJECTS[1]!));
    expect(s).toEqual({ MQTT_HOST: "gw.lan", MQTT_PORT: 8883, DEVICE_ID: "0042", SENSOR: "sht30", EQ: "a=b", WIFI_PWD: "ab#cd", NEW: "null" });
  });

  it("no files: no settings", () => {
    expect(loadEnvSettings(devsDir({}))).toEqual({});
  });

  it.each([
    ["WIFI_PWD=ab#cd", /\.env\.local:2: contains '#': DeviceScript drops the whole line/],
    ["X=ab #cd", /\.env\.local:2: contains '#'/],
    ["MQTT_HOST = gw", /\.env\.local:2: MQTT_HOST invalid key "MQTT_HOST "/],
    ["export QOS=1", /`export` is not supported/],
    ["SENSOR='aht20'", /SENSOR value is in single quotes/],
  ])("refuses %s, which the CLI would silently drop or misread", (line, message) => {
    const dir = devsDir({ defaults: "QOS=1\n", local: `# secrets\n${line}\n` });
    expect(() => loadEnvSettings(dir)).toThrow(RangeError);
    expect(() => loadEnvSettings(dir)).toThrow(message);
  });

  it("parseEnvSettings: one file as the CLI reads it", () => {
    expect(parseEnvSettings('A=1\nB="1"\nA=\nC=x y\n')).toEqual({ B: "1", C: "x y" });
  });
});
