import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ErrBadConfig, loadConfig } from "./config.ts";

describe("config", () => {
  it("has defaults for the Pi: 0.0.0.0:8080, MQTT 1883, ./data, 15 s heartbeat, open HTTP auth", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ host: "0.0.0.0", port: 8080, mqtt: { port: 1883 }, dataDir: "./data", auth: { mode: "open" } });
    expect(c.sse.heartbeatMs).toBe(15_000);
    expect(c.broker.auth).toEqual({ mode: "devices" });
  });

  it("layers env over the JSON file", () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-config-"));
    try {
      const file = join(dir, "gateway.json");
      writeFileSync(file, JSON.stringify({ port: 9000, history: { maxEvents: 10 }, auth: { mode: "tokens", tokens: [{ name: "ui", token: "0123456789abcdef", read: ["sensors/#"] }] } }));
      const c = loadConfig({ GATEWAY_CONFIG: file, PORT: "9100", MQTT_URL: "mqtt://127.0.0.1:1884" });
      expect(c.port).toBe(9100);
      expect(c.history.maxEvents).toBe(10);
      expect(c.mqtt.url).toBe("mqtt://127.0.0.1:1884");
      expect(c.auth).toEqual({ mode: "tokens", tokens: [{ name: "ui", token: "0123456789abcdef", read: ["sensors/#"], write: false }] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports every bad value on its own line", () => {
    let error: unknown;
    try {
      loadConfig({ PORT: "eighty", MQTT_PORT: "70000", MQTT_URL: "http://x", HEARTBEAT_MS: "0", LOG_LEVEL: "loud" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ErrBadConfig);
    const problems = (error as ErrBadConfig).problems.join("\n");
    expect(problems).toMatch(/PORT="eighty": expected an integer/);
    expect(problems).toMatch(/mqtt\.port/);
    expect(problems).toMatch(/mqtt\.url/);
    expect(problems).toMatch(/sse\.heartbeatMs/);
    expect(problems).toMatch(/logLevel/);
  });

  it("refuses bad token read filters and unknown keys", () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-config-"));
    try {
      const file = join(dir, "gateway.json");
      writeFileSync(file, JSON.stringify({ prot: 1, auth: { mode: "tokens", tokens: [{ name: "x", token: "short", read: ["a/#/b"] }] } }));
      const problems = (() => {
        try {
          loadConfig({ GATEWAY_CONFIG: file });
          return "";
        } catch (e) {
          return (e as ErrBadConfig).problems.join("\n");
        }
      })();
      expect(problems).toMatch(/prot/);
      expect(problems).toMatch(/at least 16 characters/);
      expect(problems).toMatch(/invalid topic filter "a\/#\/b"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("makes server.ts exit non-zero with a clear message", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", join(import.meta.dirname, "server.ts")], {
      env: { ...process.env, PORT: "-1", GATEWAY_CONFIG: "/nonexistent.json" },
      encoding: "utf8",
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/invalid gateway configuration/);
    expect(r.stderr).toMatch(/GATEWAY_CONFIG=\/nonexistent.json/);
    expect(r.stderr).toMatch(/port/);
  });
});
