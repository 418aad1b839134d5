/**
 * Issue 10 "Secure by default", through the Pi's entry (`gateway/src/server.ts` in a child process):
 * token auth unless configured otherwise, the admin token in the data dir (created, reused, rotated), the login
 * URL on the console (stdout, not in the JSON log lines), and open mode off loopback refused as a config error.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { spawnGateway, tempDir, type GatewayProcess } from "../helpers/gateway.ts";

const SERVER = join(import.meta.dirname, "../../gateway/src/server.ts");
/** The gateway's default HTTP auth: spawnGateway's AUTH_MODE=open removed. */
const DEFAULT_AUTH = { AUTH_MODE: "" };

const running: GatewayProcess[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const gw of running.splice(0)) await gw.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const dir = () => {
  const d = tempDir("gw-secure-");
  dirs.push(d);
  return d;
};
const start = async (opts: Parameters<typeof spawnGateway>[0]) => {
  const gw = await spawnGateway(opts);
  running.push(gw);
  return gw;
};

/** The console's login URLs (`http://…/?token=…`), in the order printed. */
const loginUrls = (stdout: string): string[] => [...stdout.matchAll(/^\s+(http:\/\/\S+\/\?token=\S+)$/gm)].map((m) => m[1]!);

const isJson = (line: string): boolean => {
  try {
    return typeof JSON.parse(line) === "object";
  } catch {
    return false;
  }
};

const status = async (url: string, token?: string) =>
  (await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} })).status;

describe("npm run gateway with no auth configuration", () => {
  it("uses token auth, creates <dataDir>/admin-token (0600) and prints its login URL on stdout only", async () => {
    const dataDir = dir();
    const gw = await start({ dataDir, env: { ...DEFAULT_AUTH, LOG_LEVEL: "trace" } });
    const file = join(dataDir, "admin-token");
    const token = readFileSync(file, "utf8").trim();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);

    expect(await status(`${gw.url}/api/devices`)).toBe(401);
    expect(await status(`${gw.url}/events`)).toBe(401);
    expect(await status(`${gw.url}/api/devices`, token)).toBe(200);

    // The login URL: for the person at the console, in plain lines on stdout.
    const urls = loginUrls(gw.stdout());
    expect(urls[0]).toBe(`${gw.url}/?token=${token}`);
    expect(gw.stdout()).toContain(`Log in with the admin token (kept in ${file}`);
    // ...and nowhere else: not in stderr, not in any JSON log line (LOG_LEVEL=trace: everything the log has)
    expect(gw.stderr()).not.toContain(token);
    const lines = gw.stdout().split("\n");
    const jsonLines = lines.filter(isJson);
    expect(jsonLines.length).toBeGreaterThan(3);
    expect(jsonLines.filter((l) => l.includes(token))).toEqual([]);
    expect(lines.filter((l) => l.includes(token)).every((l) => /^\s+http:\/\/\S+\/\?token=/.test(l))).toBe(true);
    // the log says a token exists and where, never what it is
    expect(jsonLines.map((l) => JSON.parse(l)).find((l) => l.msg === "admin token created")).toMatchObject({ file, created: true });

    // Opening the login URL logs in: cookie, then the page without the token.
    const res = await fetch(urls[0]!, { redirect: "manual" });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("./");
    const setCookie = res.headers.getSetCookie().join("\n");
    expect(setCookie).toMatch(/^sensors_token=[^;]+; Max-Age=2592000; Path=\/; HttpOnly; SameSite=Strict$/m);
    const cookie = setCookie.split(";")[0]!;
    expect((await fetch(`${gw.url}/api/devices`, { headers: { Cookie: cookie } })).status).toBe(200);
    await gw.stop();
    expect(gw.stdout().split("\n").filter(isJson).filter((l) => l.includes(token))).toEqual([]);
  });

  it("reuses the admin token after a restart, and makes a new one when the file is deleted (rotation)", async () => {
    const dataDir = dir();
    let gw = await start({ dataDir, env: DEFAULT_AUTH });
    const first = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    await gw.stop();

    gw = await start({ dataDir, port: gw.port, mqttPort: gw.mqttPort, env: { ...DEFAULT_AUTH, LOG_LEVEL: "info" } });
    expect(loginUrls(gw.stdout())[0]).toBe(`${gw.url}/?token=${first}`);
    expect(gw.stdout()).toMatch(/"msg":"admin token loaded"/);
    expect(await status(`${gw.url}/api/devices`, first)).toBe(200);
    await gw.stop();

    rmSync(join(dataDir, "admin-token"));
    gw = await start({ dataDir, port: gw.port, mqttPort: gw.mqttPort, env: DEFAULT_AUTH });
    const second = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    expect(second).not.toBe(first);
    expect(await status(`${gw.url}/api/devices`, first)).toBe(401);
    expect(await status(`${gw.url}/api/devices`, second)).toBe(200);
  });

  it("keeps configured tokens working beside the admin token", async () => {
    const dataDir = dir();
    const config = join(dataDir, "..", `${dataDir.split("/").pop()}.json`);
    dirs.push(config);
    const KITCHEN = "kitchen-token-0123456789";
    writeFileSync(config, JSON.stringify({ auth: { mode: "tokens", tokens: [{ name: "kitchen", token: KITCHEN, read: ["sensors/kitchen/#"] }] } }));
    const gw = await start({ dataDir, env: { ...DEFAULT_AUTH, GATEWAY_CONFIG: config } });
    const admin = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    expect(await status(`${gw.url}/api/devices`, KITCHEN)).toBe(200);
    expect(await status(`${gw.url}/api/devices`, admin)).toBe(200);
    expect(await status(`${gw.url}/api/devices/garage/readings`, KITCHEN)).toBe(403);
    expect(await status(`${gw.url}/api/devices/garage/readings`, admin)).toBe(200);
  });

  it("takes a token written into the file, and tightens a file others can read to 0600", async () => {
    const dataDir = dir();
    const file = join(dataDir, "admin-token");
    const chosen = "my-own-admin-token-0123456789";
    writeFileSync(file, `${chosen}\n`);
    chmodSync(file, 0o644);
    const gw = await start({ dataDir, env: { ...DEFAULT_AUTH, LOG_LEVEL: "info" } });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(gw.stdout()).toMatch(/"msg":"the admin token file was readable by others: its mode is now 0600"/);
    expect(await status(`${gw.url}/api/devices`, chosen)).toBe(200);
  });
});

describe("configuration errors (exit code 2, one line per problem)", () => {
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, ["--import", "tsx", SERVER], {
      env: { ...process.env, PORT: "0", MQTT_PORT: "0", MQTT_HOST: "127.0.0.1", ...env },
      encoding: "utf8",
      timeout: 30_000,
    });

  it("refuses open HTTP auth on a non-loopback host without the explicit setting", () => {
    for (const host of ["0.0.0.0", ""]) {
      const r = run({ DATA_DIR: dir(), AUTH_MODE: "open", HOST: host });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/invalid gateway configuration/);
      expect(r.stderr).toMatch(/auth: open mode \(no login\) on host "0.0.0.0" would let anyone on the network/);
      expect(r.stderr).toMatch(/HOST=127\.0\.0\.1/);
      expect(r.stderr).toMatch(/AUTH_ALLOW_NETWORK=true/);
      expect(r.stdout).toBe("");
    }
  });

  it("refuses an admin-token file without a usable token, without quoting it", () => {
    const dataDir = dir();
    writeFileSync(join(dataDir, "admin-token"), "tiny-secret\n");
    const r = run({ DATA_DIR: dataDir, HOST: "127.0.0.1" });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain(`${join(dataDir, "admin-token")}: expected one line holding a token of at least 16 characters`);
    expect(r.stderr).not.toContain("tiny-secret");
    expect(existsSync(join(dataDir, "gateway.sqlite"))).toBe(false); // refused before anything else started
  });
});

describe("open mode, explicitly", () => {
  it("serves without login on loopback (the demo) and prints no login URL", async () => {
    const gw = await start({ dataDir: dir(), env: { AUTH_MODE: "open", LOG_LEVEL: "info" } });
    expect(await status(`${gw.url}/api/devices`)).toBe(200);
    expect(loginUrls(gw.stdout())).toEqual([]);
    expect(gw.stdout()).toMatch(/"msg":"HTTP auth is in OPEN mode on loopback/);
  });

  it("serves without login on all interfaces only with AUTH_ALLOW_NETWORK=true, loudly", async () => {
    const gw = await start({ dataDir: dir(), env: { AUTH_MODE: "open", AUTH_ALLOW_NETWORK: "true", HOST: "0.0.0.0", LOG_LEVEL: "info" } });
    expect(await status(`${gw.url}/api/devices`)).toBe(200);
    expect(gw.stdout()).toMatch(/"level":40,.*"msg":"HTTP auth is in OPEN mode \(allowNetwork\): anyone on the network/);
  });
});
