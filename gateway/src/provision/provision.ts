import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { defaultCredentialsFile, generatePassword, setDevicePassword } from "../broker/index.ts";
import { assertDeviceId } from "../protocol/ids.ts";
import { setMosquittoPassword } from "./mosquitto-passwd.ts";
import { MAX_SETTING_RECORD_BYTES, SETTING_CHECKS, settingRecordBytes } from "../../../hardware/settings/validate.ts";

/**
 * Creates one device's MQTT login on the gateway side (issue 6) and returns the device settings that go into
 * `devs/.env.local` (docs/protocol.md settings table). Username = client id = device id.
 */
export interface ProvisionOptions {
  deviceId: string;
  /** Write the embedded broker's credentials file (`<dataDir>/mqtt-credentials.json`) when set. */
  dataDir?: string;
  /** Add/replace the device in this Mosquitto password file when set. */
  mosquittoPasswd?: string;
  /**
   * Broker address to put into the settings; omitted keys keep devs/.env.defaults. `hosts`: several brokers
   * to fail over between, `host[:port],host[:port]` (MQTT_HOSTS; the port defaults to `port`).
   */
  mqtt?: { host?: string; port?: number; tls?: boolean; hosts?: string };
  /** Default: a fresh random password. */
  password?: string;
}

export interface ProvisionResult {
  password: string;
  /** `KEY=value` lines, in the order they should appear in devs/.env.local. */
  settings: Array<[key: string, value: string]>;
  written: string[];
}

export async function provisionDevice(opts: ProvisionOptions): Promise<ProvisionResult> {
  assertDeviceId(opts.deviceId); // before any side effect
  if (opts.mqtt?.hosts !== undefined) assertBrokerList(opts.mqtt.hosts);
  if (opts.dataDir === undefined && opts.mosquittoPasswd === undefined) {
    throw new Error("nothing to write: give a data dir (embedded broker) and/or a Mosquitto password file");
  }
  const password = opts.password ?? generatePassword();
  const written: string[] = [];
  if (opts.dataDir !== undefined) {
    const file = defaultCredentialsFile(opts.dataDir);
    await setDevicePassword(file, opts.deviceId, password);
    written.push(file);
  }
  if (opts.mosquittoPasswd !== undefined) {
    setMosquittoPassword(opts.mosquittoPasswd, opts.deviceId, password);
    written.push(opts.mosquittoPasswd);
  }
  const settings: Array<[string, string]> = [];
  if (opts.mqtt?.host !== undefined) settings.push(["MQTT_HOST", opts.mqtt.host]);
  if (opts.mqtt?.port !== undefined) settings.push(["MQTT_PORT", String(opts.mqtt.port)]);
  if (opts.mqtt?.hosts !== undefined) settings.push(["MQTT_HOSTS", opts.mqtt.hosts]);
  if (opts.mqtt?.tls !== undefined) settings.push(["MQTT_TLS", opts.mqtt.tls ? "1" : "0"]);
  settings.push(["DEVICE_ID", opts.deviceId], ["MQTT_USER", opts.deviceId], ["MQTT_PASS", password]);
  return { password, settings, written };
}

/** The same rules as `npm run check:settings` (hardware/settings/validate.ts): entries and the record size. */
function assertBrokerList(hosts: string): void {
  const problem = SETTING_CHECKS.MQTT_HOSTS!(hosts);
  if (problem) throw new Error(`--mqtt-hosts ${problem}`);
  const bytes = settingRecordBytes("MQTT_HOSTS", hosts);
  if (bytes > MAX_SETTING_RECORD_BYTES) {
    throw new Error(`--mqtt-hosts makes a setting record of ${bytes} bytes, over ${MAX_SETTING_RECORD_BYTES}: the device's runtime panics reading it`);
  }
}

/** Sets keys in a .env file in place (other lines kept), creating it with mode 0600: it holds a secret. */
export function updateEnvFile(file: string, settings: Array<[string, string]>): void {
  const lines = existsSync(file) ? readFileSync(file, "utf8").split("\n") : [];
  if (lines.at(-1) === "") lines.pop();
  for (const [key, value] of settings) {
    const index = lines.findIndex((line) => line.startsWith(`${key}=`));
    if (index === -1) lines.push(`${key}=${value}`);
    else lines[index] = `${key}=${value}`;
  }
  writeFileSync(file, lines.join("\n") + "\n", { mode: 0o600 });
}
