import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startEmbeddedBroker, type EmbeddedBroker } from "../broker/index.ts";
import { DeviceCredentials, defaultCredentialsFile } from "../broker/index.ts";
import { provisionDevice, updateEnvFile } from "./provision.ts";
import mqtt from "mqtt";

const dirs: string[] = [];
let broker: EmbeddedBroker | undefined;
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "provision-test-"));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await broker?.close();
  broker = undefined;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const repoRoot = join(import.meta.dirname, "../../..");
function runCli(args: string[]) {
  return spawnSync(process.execPath, ["--import", "tsx", "gateway/src/provision/cli.ts", ...args], {
    cwd: repoRoot,
    encoding: "utf8",
  });
}

describe("provision", () => {
  it("refuses a bad device id before writing anything", async () => {
    const dir = tempDir();
    await expect(provisionDevice({ deviceId: "bad id/#", dataDir: dir })).rejects.toThrow(/invalid device id/);
    expect(() => readFileSync(defaultCredentialsFile(dir))).toThrow(/ENOENT/);
    const cli = runCli(["--device", "x".repeat(65), "--data-dir", dir]);
    expect(cli.status).toBe(2);
    expect(cli.stderr).toMatch(/invalid device id/);
    expect(cli.stdout).toBe("");
  });

  it("refuses an unknown board and an unknown option", () => {
    const dir = tempDir();
    expect(runCli(["--device", "d1", "--data-dir", dir, "--board", "nope"]).stderr).toMatch(/unknown board "nope"/);
    expect(runCli(["--device", "d1", "--bogus"]).status).toBe(2);
  });

  it("CLI prints the device settings and writes both credential stores", async () => {
    const dir = tempDir();
    const cli = runCli(["--device", "kitchen-1", "--data-dir", dir, "--mosquitto-passwd", join(dir, "passwd"), "--mqtt-host", "192.168.1.10"]);
    expect(cli.status, cli.stderr).toBe(0);
    const lines = cli.stdout.trim().split("\n");
    expect(lines.slice(0, 3)).toEqual(["MQTT_HOST=192.168.1.10", "DEVICE_ID=kitchen-1", "MQTT_USER=kitchen-1"]);
    const password = lines[3]!.replace(/^MQTT_PASS=/, "");
    expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/); // no '#': DeviceScript's .env parser drops such lines
    expect(await new DeviceCredentials(defaultCredentialsFile(dir)).verify("kitchen-1", password)).toBe(true);
    expect(await new DeviceCredentials(defaultCredentialsFile(dir)).verify("kitchen-1", password + "x")).toBe(false);
    expect(readFileSync(join(dir, "passwd"), "utf8")).toMatch(/^kitchen-1:\$7\$101\$[A-Za-z0-9+/=]{16}\$[A-Za-z0-9+/=]{88}\n$/);
  });

  it("--mqtt-hosts: several brokers in MQTT_HOSTS; a bad list is refused before anything is written", async () => {
    const dir = tempDir();
    const cli = runCli(["--device", "porch-1", "--data-dir", dir, "--mqtt-hosts", "192.168.1.20:1883,192.168.1.21:1883"]);
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.stdout.split("\n")[0]).toBe("MQTT_HOSTS=192.168.1.20:1883,192.168.1.21:1883");
    const other = tempDir();
    const bad = runCli(["--device", "porch-2", "--data-dir", other, "--mqtt-hosts", "192.168.1.20:1883,gw:0"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--mqtt-hosts entry 2 'gw:0': the port must be a whole number 1..65535");
    expect(() => readFileSync(defaultCredentialsFile(other))).toThrow(/ENOENT/);
    const long = ["a", "b", "c", "d"].map((c) => `${c.repeat(50)}.example.org`).join(",");
    await expect(provisionDevice({ deviceId: "porch-3", dataDir: other, mqtt: { hosts: long } })).rejects.toThrow(/over 232/);
  });

  it("a device provisioned while the embedded broker runs can connect without a restart", async () => {
    const dir = tempDir();
    broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0, dataDir: dir });
    const { password } = await provisionDevice({ deviceId: "late-1", dataDir: dir });
    const client = await mqtt.connectAsync(broker.url, { clientId: "late-1", username: "late-1", password, reconnectPeriod: 0 });
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it("updateEnvFile replaces keys in place and keeps other lines", () => {
    const file = join(tempDir(), ".env.local");
    updateEnvFile(file, [["WIFI_SSID", "home"], ["MQTT_PASS", "old"]]);
    updateEnvFile(file, [["MQTT_PASS", "new"], ["DEVICE_ID", "d1"]]);
    expect(readFileSync(file, "utf8")).toBe("WIFI_SSID=home\nMQTT_PASS=new\nDEVICE_ID=d1\n");
  });
});
