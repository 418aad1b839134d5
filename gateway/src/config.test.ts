import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrBadConfig, loadConfig, parseConfig } from "./config.ts";
import { issueCertificates, type IssueResult } from "./tls/certs.ts";
import { binaryAvailable } from "../../test/helpers/binaries.ts";

const hasOpenssl = binaryAvailable("/usr/bin/openssl", "openssl");

function problemsOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ErrBadConfig) return e.problems.join("\n");
    throw e;
  }
  throw new Error("expected a configuration error");
}

describe("config", () => {
  it("has defaults for the Pi: 0.0.0.0:8080, MQTT 1883, ./data, 15 s heartbeat, token HTTP auth with the admin token", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ host: "0.0.0.0", port: 8080, mqtt: { port: 1883 }, dataDir: "./data" });
    expect(c.auth).toEqual({ mode: "tokens", tokens: [], adminToken: true });
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
      expect(c.mqtt.url).toEqual(["mqtt://127.0.0.1:1884"]);
      expect(c.auth).toEqual({
        mode: "tokens",
        tokens: [{ name: "ui", token: "0123456789abcdef", read: ["sensors/#"], write: false }],
        adminToken: true,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps Home Assistant discovery and MQTT alerts off unless configured; turns them on by env; bounds device gauges", () => {
    const off = loadConfig({});
    expect(off.homeAssistant).toEqual({ enabled: false, discoveryPrefix: "homeassistant" });
    expect(off.alerts.mqtt).toBe(false);
    expect(off.metrics).toEqual({ maxDevices: 500, maxMetrics: 16 });
    const on = loadConfig({ HOME_ASSISTANT: "true", HA_DISCOVERY_PREFIX: "ha/test", ALERTS_MQTT: "1", METRICS_MAX_DEVICES: "50" });
    expect(on.homeAssistant).toEqual({ enabled: true, discoveryPrefix: "ha/test" });
    expect(on.alerts.mqtt).toBe(true);
    expect(on.metrics.maxDevices).toBe(50);
    expect(problemsOf(() => loadConfig({ HA_DISCOVERY_PREFIX: "homeassistant/#" }))).toMatch(/homeAssistant\.discoveryPrefix: the discovery prefix is topic levels/);
    expect(problemsOf(() => loadConfig({ METRICS_MAX_DEVICES: "0" }))).toMatch(/metrics\.maxDevices/);
  });

  it("takes Redis mode from REDIS_URL (default key prefix), and a Redis on another host only with a password", () => {
    expect(loadConfig({}).redis).toBeUndefined(); // the SQLite mode is the default
    expect(loadConfig({ REDIS_URL: "redis://:pw@127.0.0.1:6379" }).redis).toEqual({ url: "redis://:pw@127.0.0.1:6379", keyPrefix: "sensors:" });
    expect(problemsOf(() => loadConfig({ REDIS_URL: "redis://127.0.0.1:6379" }))).toMatch(/redis\.url: Redis without a password/);
    expect(loadConfig({ REDIS_URL: "redis://:a-long-secret@10.0.0.5:6379" }).redis?.url).toBe("redis://:a-long-secret@10.0.0.5:6379");
    expect(problemsOf(() => loadConfig({ REDIS_URL: "redis://10.0.0.5:6379" }))).toMatch(/redis\.url: Redis without a password .*"10\.0\.0\.5"/);
    expect(problemsOf(() => loadConfig({ REDIS_URL: "http://127.0.0.1:6379" }))).toMatch(/redis\.url/);
  });

  it("runs the embedded broker on SQLite unless BROKER_STORE=redis, which needs REDIS_URL", () => {
    expect(loadConfig({}).broker.store).toBe("sqlite");
    const node = loadConfig({ BROKER_STORE: "redis", REDIS_URL: "redis://:a-long-secret@127.0.0.1:6379", BROKER_HEARTBEAT_MS: "1000" });
    expect(node.broker).toMatchObject({ store: "redis", heartbeatMs: 1000 });
    expect(problemsOf(() => loadConfig({ BROKER_STORE: "redis" }))).toMatch(/broker\.store: "redis" needs redis\.url/);
    expect(problemsOf(() => loadConfig({ BROKER_STORE: "mongodb" }))).toMatch(/broker\.store/);
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

  it("takes broker deny rules for service users and refuses bad ones", () => {
    const ok = parseConfig({ broker: { auth: { mode: "devices", deny: [{ username: "dashboard", subscribe: ["sensors/+/cmd"] }] } } });
    expect(ok.broker.auth).toMatchObject({ deny: [{ username: "dashboard", subscribe: ["sensors/+/cmd"] }] });
    const problems = (input: unknown) => {
      try {
        parseConfig(input);
        return "";
      } catch (e) {
        return (e as ErrBadConfig).problems.join("\n");
      }
    };
    expect(problems({ broker: { auth: { mode: "open", deny: [{ publish: ["a+/b"] }] } } })).toMatch(/broker\.auth\.deny\.0\.publish\.0: invalid topic filter "a\+\/b"/);
    expect(problems({ broker: { auth: { mode: "devices", deny: [{ username: "x" }] } } })).toMatch(/must name publish or subscribe/);
  });

  it("allows open HTTP auth on loopback, and on any other host only with allowNetwork", () => {
    for (const HOST of ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"]) {
      expect(loadConfig({ HOST, AUTH_MODE: "open" }).auth, HOST).toEqual({ mode: "open", allowNetwork: false });
    }
    for (const HOST of [undefined, "0.0.0.0", "::", "192.168.1.5", "sensors.local"]) {
      const env = { AUTH_MODE: "open", ...(HOST ? { HOST } : {}) };
      const problems = problemsOf(() => loadConfig(env));
      expect(problems, String(HOST)).toMatch(/^auth: open mode \(no login\) on host .* would let anyone on the network/);
      expect(problems).toMatch(/AUTH_ALLOW_NETWORK=true/);
      expect(loadConfig({ ...env, AUTH_ALLOW_NETWORK: "true" }).auth).toEqual({ mode: "open", allowNetwork: true });
      expect(loadConfig({ ...env, AUTH_ALLOW_NETWORK: "1" }).auth).toEqual({ mode: "open", allowNetwork: true });
      expect(problemsOf(() => loadConfig({ ...env, AUTH_ALLOW_NETWORK: "0" }))).toMatch(/open mode/);
    }
    expect(problemsOf(() => loadConfig({ HOST: "0.0.0.0", AUTH_MODE: "open", AUTH_ALLOW_NETWORK: "yes please" }))).toMatch(
      /AUTH_ALLOW_NETWORK="yes please": expected true or false/,
    );
    // allowNetwork belongs to open mode only: with tokens it is an error, not a silent no-op
    expect(problemsOf(() => loadConfig({ AUTH_ALLOW_NETWORK: "true" }))).toBe(
      'auth.allowNetwork (AUTH_ALLOW_NETWORK) only applies with auth.mode "open" (AUTH_MODE=open)',
    );
    expect(problemsOf(() => loadConfig({ AUTH_MODE: "tokens", AUTH_ALLOW_NETWORK: "true" }))).toMatch(/only applies with/);
  });

  it("needs a token when the admin token is off, and distinct token secrets", () => {
    expect(problemsOf(() => parseConfig({ auth: { mode: "tokens", adminToken: false } }))).toMatch(/at least one token/);
    const twice = { read: ["#"], token: "same-secret-0123456789" };
    const problems = problemsOf(() =>
      parseConfig({ auth: { mode: "tokens", tokens: [{ name: "a", ...twice }, { name: "b", ...twice }] } }),
    );
    expect(problems).toMatch(/"a" and "b" have the same token/);
    expect(problems).not.toContain(twice.token);
  });

  it("reads the admin token's file from ADMIN_TOKEN_FILE (as --workers sets it), for token auth only", () => {
    expect(loadConfig({ ADMIN_TOKEN_FILE: "/srv/gw/admin-token" }).auth).toEqual({
      mode: "tokens",
      tokens: [],
      adminToken: true,
      adminTokenFile: "/srv/gw/admin-token",
    });
    expect(problemsOf(() => loadConfig({ ADMIN_TOKEN_FILE: "/srv/gw/admin-token", AUTH_MODE: "open", HOST: "127.0.0.1" }))).toMatch(
      /auth/,
    );
  });

  it("moves an MQTT login out of MQTT_URL (which is logged) into username and password", () => {
    const c = loadConfig({ MQTT_URL: "mqtt://gateway:pa%40ss-word-1@127.0.0.1:1884" });
    expect(c.mqtt).toMatchObject({ url: ["mqtt://127.0.0.1:1884"], username: "gateway", password: "pa@ss-word-1" });
    const problems = problemsOf(() => loadConfig({ MQTT_URL: "mqtt://gateway:secret-1@127.0.0.1:1884", MQTT_PASSWORD: "secret-2" }));
    expect(problems).toMatch(/either in the URL or as mqtt.username/);
    expect(problems).not.toMatch(/secret-1|secret-2/);
  });

  it("takes several brokers (the nodes of one broker): MQTT_URL comma-separated, mqtt.url a list, one login for all", () => {
    const c = loadConfig({ MQTT_URL: "mqtt://gw:pw-1@10.0.0.11:1883, mqtts://gw:pw-1@10.0.0.12" });
    expect(c.mqtt).toMatchObject({ url: ["mqtt://10.0.0.11:1883", "mqtts://10.0.0.12"], username: "gw", password: "pw-1" });
    expect(parseConfig({ mqtt: { url: ["mqtt://10.0.0.11", "mqtt://10.0.0.12"] } }).mqtt.url).toEqual(["mqtt://10.0.0.11", "mqtt://10.0.0.12"]);

    const twoLogins = problemsOf(() => loadConfig({ MQTT_URL: "mqtt://gw:secret-1@10.0.0.11,mqtt://10.0.0.12" }));
    expect(twoLogins).toMatch(/mqtt\.url: every broker URL needs the same MQTT login/);
    expect(twoLogins).not.toMatch(/secret-1/);
    expect(problemsOf(() => loadConfig({ MQTT_URL: "mqtt://10.0.0.11,mqtt://10.0.0.11" }))).toMatch(/mqtt\.url: 10\.0\.0\.11 is listed twice/);
    expect(problemsOf(() => loadConfig({ MQTT_URL: "mqtt://10.0.0.11,http://10.0.0.12" }))).toMatch(/mqtt\.url\.1: expected an mqtt:\/\/ or mqtts:\/\/ URL/);
    expect(problemsOf(() => loadConfig({ MQTT_URL: Array.from({ length: 6 }, (_, i) => `mqtt://10.0.0.${i + 1}`).join(",") }))).toMatch(/mqtt\.url: at most 5 brokers/);
    expect(problemsOf(() => parseConfig({ mqtt: { url: [] } }))).toMatch(/mqtt\.url: name at least one broker/);
  });

  it("reports a broken JSON file without quoting it (it may hold tokens)", () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-config-"));
    try {
      const file = join(dir, "gateway.json");
      writeFileSync(file, '{"auth":{"mode":"tokens","tokens":[{"name":"a","token":"json-secret-0123456789" "read":["#"]}]}}');
      const problems = problemsOf(() => loadConfig({ GATEWAY_CONFIG: file }));
      expect(problems).toMatch(/gateway.json: not valid JSON/);
      expect(problems).not.toContain("json-secret");
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

  describe.skipIf(!hasOpenssl)("tls", () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-config-tls-"));
    let a: IssueResult;
    let b: IssueResult;
    beforeAll(() => {
      a = issueCertificates({ dir: join(dir, "a"), caDir: join(dir, "a-ca"), names: ["localhost"] });
      b = issueCertificates({ dir: join(dir, "b"), caDir: join(dir, "b-ca"), names: ["localhost"] });
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("is off by default: plain HTTP and MQTT, no TLS or WebSocket listener", () => {
      const c = loadConfig({});
      expect(c.tls).toBeUndefined();
      expect(c.httpRedirectPort).toBeUndefined();
      expect(c.mqtt).toMatchObject({ port: 1883, tlsPort: 8883 });
      expect(c.mqtt.wsPort).toBeUndefined();
      expect(c.mqtt.wssPort).toBeUndefined();
    });

    it("reads the certificate, ports and redirect from the environment", () => {
      const c = loadConfig({ TLS_CERT: a.cert, TLS_KEY: a.key, MQTT_TLS_PORT: "8884", MQTT_WS_PORT: "8083", MQTT_WSS_PORT: "8084", HTTP_REDIRECT_PORT: "8081" });
      expect(c.tls).toEqual({ cert: a.cert, key: a.key });
      expect(c.mqtt).toMatchObject({ tlsPort: 8884, wsPort: 8083, wssPort: 8084 });
      expect(c.httpRedirectPort).toBe(8081);
    });

    it("refuses half a pair, and wss or a redirect without a certificate", () => {
      expect(problemsOf(() => loadConfig({ TLS_CERT: a.cert }))).toMatch(/tls\.key/);
      const problems = problemsOf(() => loadConfig({ MQTT_WSS_PORT: "8084", HTTP_REDIRECT_PORT: "80" }));
      expect(problems).toMatch(/mqtt\.wssPort .*needs a certificate/);
      expect(problems).toMatch(/httpRedirectPort .*needs tls\.cert/);
    });

    it("refuses two listeners on one port (not EADDRINUSE at start)", () => {
      const problems = problemsOf(() => loadConfig({ TLS_CERT: a.cert, TLS_KEY: a.key, PORT: "8443", HTTP_REDIRECT_PORT: "8443", MQTT_WSS_PORT: "1883" }));
      expect(problems).toMatch(/httpRedirectPort \(HTTP_REDIRECT_PORT\): port 8443 is already port \(PORT\)'s/);
      expect(problems).toMatch(/mqtt\.wssPort \(MQTT_WSS_PORT\): port 1883 is already mqtt\.port \(MQTT_PORT\)'s/);
      // an external broker: the MQTT ports are not this gateway's
      expect(() => loadConfig({ PORT: "1883", MQTT_URL: "mqtt://127.0.0.1:1883" })).not.toThrow();
    });

    // startGateway reads and checks the pair (once); server.ts turns its error into exit 2 like any config error.
    const serverWith = (cert: string, key: string) =>
      spawnSync(process.execPath, ["--import", "tsx", join(import.meta.dirname, "server.ts")], {
        env: { ...process.env, TLS_CERT: cert, TLS_KEY: key, DATA_DIR: dir, PORT: "0", MQTT_PORT: "0", MQTT_TLS_PORT: "0" },
        encoding: "utf8",
      });

    it("makes server.ts exit 2 when the key cannot be read", () => {
      const r = serverWith(a.cert, join(dir, "missing.key"));
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/invalid gateway configuration/);
      expect(r.stderr).toMatch(/tls\.key ".*missing\.key": cannot read it/);
    });

    it("makes server.ts exit 2 when the key belongs to another certificate", () => {
      const r = serverWith(a.cert, b.key);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/not a usable pair/);
    });
  });
});
