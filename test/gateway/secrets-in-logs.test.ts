/**
 * Issue 10: secrets never appear in logs. A real gateway logs at trace level while the test logs in and out,
 * presents bad tokens in every carrier, sends commands, connects MQTT clients with right and wrong passwords
 * and starts with bad configurations; then no log line may contain any secret: HTTP tokens (configured and
 * admin), MQTT passwords (devices, service users, the gateway's own service password, an external broker's
 * login), or the wrong guesses. The one deliberate exception is the login URL that server.ts prints for the
 * console, on stdout and outside the JSON log stream (checked in the child-process part and in
 * secure-default.test.ts).
 */
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import mqtt from "mqtt";
import { afterAll, describe, expect, it } from "vitest";
import { startEmbeddedBroker } from "../../gateway/src/broker/index.ts";
import { parseConfig } from "../../gateway/src/config.ts";
import { startGateway, type Gateway } from "../../gateway/src/gateway.ts";
import { createLogger } from "../../gateway/src/ops/log.ts";
import { provisionDevice } from "../../gateway/src/provision/provision.ts";
import { spawnGateway, tempDir } from "../helpers/gateway.ts";
import { connectSse } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";

const KITCHEN_TOKEN = "kitchen-token-S3cr3t-0123456789";
const DEVICE_PASSWORD = "device-pw-S3cr3t-0123456789";
const OPS_PASSWORD = "ops-pw-S3cr3t-0123456789";
const WRONG = ["wrong-token-S3cr3t-0123456789", "wrong-pw-S3cr3t-0123456789"];

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const dir = () => {
  const d = tempDir("gw-secrets-");
  dirs.push(d);
  return d;
};

/** Every secret string that occurs in `text`, with the line it occurs in. */
function leaks(text: string, secrets: string[]): string[] {
  return text
    .split("\n")
    .flatMap((line) => secrets.filter((s) => line.includes(s)).map((s) => `${s} in: ${line.slice(0, 300)}`));
}

const telemetry = JSON.stringify({ v: 1, seq: 1, boot: 1, t: null, readings: { temperature: 21 }, battery: null });

/** Login, bad tokens in every carrier, CSRF refusal, SSE, a command acknowledged by an MQTT device, logout. */
async function exercise(url: string, mqttUrl: string, admin: string): Promise<void> {
  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body });
  expect((await post("/api/session", JSON.stringify({ token: admin }))).status).toBe(200);
  expect((await post("/api/session", JSON.stringify({ token: WRONG[0] }))).status).toBe(401);
  expect((await post("/api/session", `{"token":"${WRONG[0]}"`)).status).toBe(400);
  expect((await fetch(`${url}/?token=${admin}`, { redirect: "manual" })).status).toBe(303);
  expect((await fetch(`${url}/?token=${WRONG[0]}`, { redirect: "manual" })).status).toBe(303);
  const badCarriers: Array<Record<string, string>> = [{ Authorization: `Bearer ${WRONG[0]}` }, { Cookie: `sensors_token=${WRONG[0]}` }, {}];
  for (const headers of badCarriers) {
    expect((await fetch(`${url}/api/devices`, { headers })).status).toBe(401);
  }
  expect((await fetch(`${url}/events?access_token=${WRONG[0]}`)).status).toBe(401);
  const csrf = await post("/api/devices/kitchen/commands", '{"op":"ping"}', { Cookie: `sensors_token=${admin}`, Origin: "https://evil.example" });
  expect(csrf.status).toBe(403);

  // a device with its provisioned password; a wrong password; the service user, right and wrong
  const device = await mqtt.connectAsync(mqttUrl, { clientId: "kitchen", username: "kitchen", password: DEVICE_PASSWORD, clean: false, reconnectPeriod: 0 });
  for (const [username, password] of [["kitchen", WRONG[1]], ["ops", WRONG[1]], ["nobody", OPS_PASSWORD]]) {
    await expect(mqtt.connectAsync(mqttUrl, { clientId: `bad-${username}`, username, password, reconnectPeriod: 0 })).rejects.toThrow();
  }
  const ops = await mqtt.connectAsync(mqttUrl, { clientId: "ops-1", username: "ops", password: OPS_PASSWORD, reconnectPeriod: 0 });
  await ops.endAsync();

  const sse = await connectSse(url, { token: KITCHEN_TOKEN, tokenVia: "query", topics: ["sensors/kitchen/#"], lastEventId: 0 });
  await device.subscribeAsync("sensors/kitchen/cmd", { qos: 1 });
  device.on("message", (_topic, payload) => {
    const cmd = JSON.parse(payload.toString()) as { id: string; op: string };
    void device.publishAsync("sensors/kitchen/cmd/ack", JSON.stringify({ v: 1, id: cmd.id, op: cmd.op, ok: true }), { qos: 1 });
  });
  await device.publishAsync("sensors/kitchen/telemetry", telemetry, { qos: 1 });
  const sent = await post("/api/devices/kitchen/commands", '{"op":"ping"}', { Authorization: `Bearer ${admin}` });
  expect(sent.status).toBe(202);
  const { id } = (await sent.json()) as { id: string };
  await waitUntil(
    async () => {
      const res = await fetch(`${url}/api/devices/kitchen/commands/${id}`, { headers: { Authorization: `Bearer ${admin}` } });
      return ((await res.json()) as { state: string }).state === "acked";
    },
    { message: "the command acknowledged" },
  );
  await sse.waitForEvents(1, (e) => e.event === "telemetry");
  sse.close();
  await device.endAsync();
  expect((await fetch(`${url}/api/session`, { method: "DELETE", headers: { Cookie: `sensors_token=${admin}` } })).status).toBe(204);
}

const authConfig = { mode: "tokens", tokens: [{ name: "kitchen", token: KITCHEN_TOKEN, read: ["sensors/kitchen/#"], write: false }] };
const brokerConfig = { auth: { mode: "devices", serviceUsers: [{ username: "ops", password: OPS_PASSWORD }] } };

describe("no secret in any log line", () => {
  it("in-process gateway, logging at trace into a captured pino destination", async () => {
    const dataDir = dir();
    await provisionDevice({ deviceId: "kitchen", dataDir, password: DEVICE_PASSWORD });
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString().split("\n").filter(Boolean));
        done();
      },
    });
    const config = parseConfig({
      host: "127.0.0.1",
      port: 0,
      mqtt: { host: "127.0.0.1", port: 0, clientId: "gw-secrets" },
      dataDir,
      logLevel: "trace",
      auth: authConfig,
      broker: brokerConfig,
    });
    let gw: Gateway | undefined = await startGateway(config, { logger: createLogger("trace", destination) });
    try {
      const admin = gw.adminToken!.token;
      const service = gw.broker!.serviceCredentials.password;
      await exercise(gw.url, gw.mqttUrl, admin);
      await gw.close();
      gw = undefined;

      // The log did see all of this (a vacuous pass would prove nothing)...
      const msgs = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
      expect(msgs).toContain("admin token created");
      expect(msgs).toContain("gateway listening");
      expect(msgs.filter((m) => m === "mqtt connect refused").length).toBe(3);
      expect(msgs).toContain("gateway shutting down");
      // ...and none of the secrets.
      expect(leaks(lines.join("\n"), [admin, service, KITCHEN_TOKEN, DEVICE_PASSWORD, OPS_PASSWORD, ...WRONG])).toEqual([]);
    } finally {
      await gw?.close();
    }
  });

  it("in a redacted logger, a secret logged by mistake comes out as [redacted]", () => {
    const lines: string[] = [];
    const log = createLogger("info", { write: (s: string) => void lines.push(s) });
    log.info({ password: OPS_PASSWORD, opts: { token: KITCHEN_TOKEN, authorization: `Bearer ${KITCHEN_TOKEN}` } }, "oops");
    expect(leaks(lines.join(""), [OPS_PASSWORD, KITCHEN_TOKEN])).toEqual([]);
    expect(JSON.parse(lines[0]!)).toMatchObject({ password: "[redacted]", opts: { token: "[redacted]", authorization: "[redacted]" } });
  });

  it("server.ts at trace level with an external broker's login in MQTT_URL: stdout JSON and stderr stay clean", async () => {
    // The external broker: an embedded one that knows the gateway as a service user.
    const GW_MQTT_PASSWORD = "gw-mqtt-pw-S3cr3t-0123456789";
    const external = await startEmbeddedBroker({
      host: "127.0.0.1",
      port: 0,
      auth: { mode: "devices", serviceUsers: [{ username: "gateway", password: GW_MQTT_PASSWORD }] },
    });
    const dataDir = dir();
    const configFile = join(dataDir, "..", `${dataDir.split("/").pop()}.json`);
    dirs.push(configFile);
    writeFileSync(configFile, JSON.stringify({ auth: authConfig }));
    try {
      const gw = await spawnGateway({
        dataDir,
        env: {
          AUTH_MODE: "",
          LOG_LEVEL: "trace",
          GATEWAY_CONFIG: configFile,
          MQTT_URL: `mqtt://gateway:${GW_MQTT_PASSWORD}@127.0.0.1:${external.port}`,
          MQTT_CLIENT_ID: "gw-secrets-child",
        },
      });
      const admin = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
      // HTTP only here (devices belong to the external broker's own auth, exercised above)
      const post = (body: string, headers: Record<string, string> = {}) =>
        fetch(`${gw.url}/api/session`, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body });
      expect((await post(JSON.stringify({ token: admin }))).status).toBe(200);
      expect((await post(JSON.stringify({ token: WRONG[0] }))).status).toBe(401);
      expect((await fetch(`${gw.url}/api/devices`, { headers: { Authorization: `Bearer ${WRONG[0]}` } })).status).toBe(401);
      const cmd = await fetch(`${gw.url}/api/devices/kitchen/commands`, {
        method: "POST",
        headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" },
        body: '{"op":"ping"}',
      });
      expect(cmd.status).toBe(202);
      expect(await gw.stop()).toBe(0);

      const jsonLines = gw.stdout().split("\n").filter((l) => l.startsWith("{"));
      expect(jsonLines.some((l) => l.includes('"msg":"mqtt connected"'))).toBe(true);
      expect(gw.stdout()).toContain(`MQTT broker: mqtt://127.0.0.1:${external.port}\n`); // the URL, without its login
      const secrets = [admin, KITCHEN_TOKEN, GW_MQTT_PASSWORD, ...WRONG];
      expect(leaks(jsonLines.join("\n"), secrets)).toEqual([]);
      expect(leaks(gw.stderr(), secrets)).toEqual([]);
      // the console's login lines are the only place the admin token is printed
      const withAdmin = gw.stdout().split("\n").filter((l) => l.includes(admin));
      expect(withAdmin.length).toBeGreaterThan(0);
      expect(withAdmin.every((l) => /^\s+http:\/\/\S+\/\?token=/.test(l))).toBe(true);
      expect(leaks(gw.stdout(), [KITCHEN_TOKEN, GW_MQTT_PASSWORD, ...WRONG])).toEqual([]);
    } finally {
      await external.close();
    }
  });

  it("configuration errors name the problem, not the secret", () => {
    const d = dir();
    const cases: Array<{ env: Record<string, string>; file?: string; secret: string }> = [
      { env: { MQTT_URL: "http://gateway:cfg-pw-S3cr3t-01234@127.0.0.1:1883" }, secret: "cfg-pw-S3cr3t-01234" },
      { env: { MQTT_URL: "mqtt://gateway:cfg-pw-S3cr3t-56789@127.0.0.1:1883", MQTT_PASSWORD: "env-pw-S3cr3t-0123" }, secret: "S3cr3t" },
      { env: {}, file: '{"auth":{"mode":"tokens","tokens":[{"name":"a","token":"short-S3cr3t","read":["#"]}]}}', secret: "short-S3cr3t" },
      { env: {}, file: '{"auth":{"mode":"tokens","tokens":[{"name":"a","token":"json-S3cr3t-0123456789" "read":["#"]}]}}', secret: "json-S3cr3t" },
      { env: {}, file: '{"auth":{"mode":"tokens","tokens":[{"name":"a","token":"dup-S3cr3t-0123456789","read":["#"]},{"name":"b","token":"dup-S3cr3t-0123456789","read":["#"]}]}}', secret: "dup-S3cr3t" },
    ];
    for (const [i, c] of cases.entries()) {
      const env: Record<string, string> = { ...c.env, DATA_DIR: d, HOST: "127.0.0.1", PORT: "0", MQTT_PORT: "0", LOG_LEVEL: "trace" };
      if (c.file !== undefined) {
        env.GATEWAY_CONFIG = join(d, `bad-${i}.json`);
        writeFileSync(env.GATEWAY_CONFIG, c.file);
      }
      const r = spawnSync(process.execPath, ["--import", "tsx", join(import.meta.dirname, "../../gateway/src/server.ts")], {
        env: { ...process.env, ...env },
        encoding: "utf8",
        timeout: 30_000,
      });
      expect(r.status, `case ${i}: ${r.stderr}`).toBe(2);
      expect(r.stderr, `case ${i}`).toMatch(/invalid gateway configuration/);
      expect(leaks(r.stderr + r.stdout, [c.secret]), `case ${i}`).toEqual([]);
    }
  });
});
