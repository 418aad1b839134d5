/**
 * HTTP auth and read/write rules, allowed and refused, on a real gateway (issue 4 "Auth"); the session cookie,
 * the login URL, the admin token and the refusal of cross-origin writes (issue 10 "Secure by default").
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { connectSse, ErrSseHttp } from "../helpers/sse.ts";

const ADMIN = "admin-token-aaaaaaaaaaaa";
const KITCHEN = "kitchen-token-bbbbbbbbbb";

const telemetry = (seq: number) => JSON.stringify({ v: 1, seq, boot: 1, t: null, readings: { temperature: 1 }, battery: null });

describe("HTTP auth with tokens", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({
      config: {
        auth: {
          mode: "tokens",
          tokens: [
            { name: "admin", token: ADMIN, read: ["#"], write: true },
            { name: "kitchen", token: KITCHEN, read: ["sensors/kitchen/#"], write: false },
          ],
        },
      },
    });
    const pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: "auth-pub", reconnectPeriod: 0 });
    await pub.publishAsync("sensors/kitchen/telemetry", telemetry(1), { qos: 1 });
    await pub.publishAsync("sensors/garage/telemetry", telemetry(1), { qos: 1 });
    await pub.endAsync();
  });
  afterAll(() => gw?.close());

  const get = (path: string, token?: string) =>
    fetch(`${gw.url}${path}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });

  it("refuses requests without a valid token with 401 JSON", async () => {
    for (const path of ["/events", "/api/devices", "/api/devices/kitchen/readings"]) {
      for (const token of [undefined, "wrong-token-cccccccccccc"]) {
        const res = await get(path, token);
        expect(res.status, `${path} ${token}`).toBe(401);
        expect(await res.json()).toMatchObject({ error: { code: "unauthorized" } });
      }
    }
    const cmd = await fetch(`${gw.url}/api/devices/kitchen/commands`, { method: "POST", body: '{"op":"ping"}' });
    expect(cmd.status).toBe(401);
  });

  it("keeps /healthz, /metrics and the page public", async () => {
    expect((await get("/healthz")).status).toBe(200);
    expect((await get("/metrics")).status).toBe(200);
    expect((await get("/")).status).toBe(200);
  });

  it("streams only what a token's read filters cover, via header, query or cookie", async () => {
    for (const tokenVia of ["header", "query", "cookie"] as const) {
      const sse = await connectSse(gw.url, { token: KITCHEN, tokenVia, lastEventId: 0 });
      const events = await sse.waitForEvents(1);
      sse.close();
      expect(events.every((e) => e.json.deviceId === "kitchen"), tokenVia).toBe(true);
    }
    const admin = await connectSse(gw.url, { token: ADMIN, lastEventId: 0 });
    await admin.waitForEvents(2);
    admin.close();
    expect(new Set(admin.events.map((e) => e.json.deviceId))).toEqual(new Set(["kitchen", "garage"]));
  });

  it("answers 403 when requested filters exceed the token's read filters", async () => {
    for (const topics of [["#"], ["sensors/+/telemetry"], ["sensors/garage/telemetry"], ["sensors/kitchen/#", "sensors/garage/#"]]) {
      const err = await connectSse(gw.url, { token: KITCHEN, topics }).catch((e: unknown) => e);
      expect((err as ErrSseHttp).status, topics.join()).toBe(403);
      expect(JSON.parse((err as ErrSseHttp).body)).toMatchObject({ error: { code: "forbidden" } });
    }
    const ok = await connectSse(gw.url, { token: KITCHEN, topics: ["sensors/kitchen/telemetry"] });
    expect(ok.status).toBe(200);
    ok.close();
  });

  it("limits devices, readings and commands to the token's rights", async () => {
    const kitchenDevices = (await (await get("/api/devices", KITCHEN)).json()) as { devices: any[] };
    expect(kitchenDevices.devices.map((d) => d.deviceId)).toEqual(["kitchen"]);
    const adminDevices = (await (await get("/api/devices", ADMIN)).json()) as { devices: any[] };
    expect(adminDevices.devices.map((d) => d.deviceId).sort()).toEqual(["garage", "kitchen"]);

    expect((await get("/api/devices/kitchen/readings", KITCHEN)).status).toBe(200);
    const refused = await get("/api/devices/garage/readings", KITCHEN);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: "forbidden" } });

    const send = (token: string, device: string) =>
      fetch(`${gw.url}/api/devices/${device}/commands`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ op: "ping" }),
      });
    expect((await send(KITCHEN, "kitchen")).status).toBe(403); // no write right
    expect((await send(ADMIN, "kitchen")).status).toBe(202);
  });
});

/** The Set-Cookie of `res` for the token cookie, split into its attributes (lower-cased names). */
function tokenCookie(res: Response): { value: string; attrs: Map<string, string> } | undefined {
  const raw = res.headers.getSetCookie().find((c) => c.startsWith("sensors_token="));
  if (raw === undefined) return undefined;
  const [pair, ...rest] = raw.split(";").map((p) => p.trim());
  const attrs = new Map(rest.map((a) => [a.split("=")[0]!.toLowerCase(), a.split("=").slice(1).join("=")]));
  return { value: decodeURIComponent(pair!.slice("sensors_token=".length)), attrs };
}

async function errorCount(gw: TestGateway, code: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  return Number(new RegExp(`^gateway_http_errors_total\\{code="${code}"\\} (\\d+)$`, "m").exec(text)?.[1] ?? 0);
}

describe("sessions: the HttpOnly cookie, the login URL and the admin token", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({
      config: { auth: { mode: "tokens", tokens: [{ name: "kitchen", token: KITCHEN, read: ["sensors/kitchen/#"], write: false }] } },
    });
  });
  afterAll(() => gw?.close());

  const session = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${gw.url}/api/session`, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body });

  it("creates the admin token in the data dir (mode 0600) beside the configured tokens", async () => {
    const admin = gw.adminToken!;
    expect(admin.file).toBe(join(gw.dataDir, "admin-token"));
    expect(admin.created).toBe(true);
    expect(statSync(admin.file).mode & 0o777).toBe(0o600);
    expect(admin.token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes
    const as = (token: string) => fetch(`${gw.url}/api/session`, { headers: { Authorization: `Bearer ${token}` } });
    expect(await (await as(admin.token)).json()).toEqual({ mode: "tokens", name: "admin", read: ["#"], write: true });
    expect(await (await as(KITCHEN)).json()).toEqual({ mode: "tokens", name: "kitchen", read: ["sensors/kitchen/#"], write: false });
    expect((await as("not-a-token-0123456789")).status).toBe(401);
  });

  it("POST /api/session sets an HttpOnly, SameSite=Strict cookie (Secure over HTTPS) that the API and SSE accept", async () => {
    const res = await session(JSON.stringify({ token: KITCHEN }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ mode: "tokens", name: "kitchen", read: ["sensors/kitchen/#"], write: false });
    expect(res.headers.get("cache-control")).toBe("no-store");
    const cookie = tokenCookie(res)!;
    expect(cookie.value).toBe(KITCHEN);
    expect(cookie.attrs.has("httponly")).toBe(true);
    expect(cookie.attrs.get("samesite")).toBe("Strict");
    expect(cookie.attrs.get("path")).toBe("/");
    expect(Number(cookie.attrs.get("max-age"))).toBe(30 * 24 * 3600);
    expect(cookie.attrs.has("secure")).toBe(false); // plain HTTP: a Secure cookie would never come back

    // behind a TLS-terminating proxy (nginx sends X-Forwarded-Proto $scheme)
    const viaTls = tokenCookie(await session(JSON.stringify({ token: KITCHEN }), { "X-Forwarded-Proto": "https" }))!;
    expect(viaTls.attrs.has("secure")).toBe(true);

    const withCookie = { headers: { Cookie: `sensors_token=${encodeURIComponent(cookie.value)}` } };
    expect((await fetch(`${gw.url}/api/devices`, withCookie)).status).toBe(200);
    const sse = await connectSse(gw.url, { token: KITCHEN, tokenVia: "cookie", topics: ["sensors/kitchen/#"] });
    expect(sse.status).toBe(200);
    sse.close();
  });

  it("refuses unknown tokens and malformed bodies without setting a cookie", async () => {
    for (const [body, status, code] of [
      [JSON.stringify({ token: "wrong-token-cccccccccccc" }), 401, "unauthorized"],
      [JSON.stringify({ token: "" }), 400, "invalid_session"],
      [JSON.stringify({ nope: 1 }), 400, "invalid_session"],
      ["null", 400, "invalid_session"],
      ["{", 400, "invalid_json"],
    ] as const) {
      const res = await session(body);
      expect(res.status, body).toBe(status);
      expect(await res.json()).toMatchObject({ error: { code } });
      expect(tokenCookie(res), body).toBeUndefined();
    }
  });

  it("DELETE /api/session logs out: the cookie is cleared, also when its token is no longer valid", async () => {
    for (const cookie of [`sensors_token=${KITCHEN}`, "sensors_token=rotated-away-0123456789", ""]) {
      const res = await fetch(`${gw.url}/api/session`, { method: "DELETE", headers: cookie ? { Cookie: cookie } : {} });
      expect(res.status).toBe(204);
      const cleared = tokenCookie(res)!;
      expect(cleared.value).toBe("");
      expect(cleared.attrs.get("max-age")).toBe("0");
      expect(cleared.attrs.has("httponly")).toBe(true);
    }
    expect((await fetch(`${gw.url}/api/session`)).status).toBe(401);
  });

  it("turns the login URL's token into the cookie and redirects to the page without it", async () => {
    const admin = gw.adminToken!.token;
    const go = (path: string) => fetch(`${gw.url}${path}`, { redirect: "manual" });
    const res = await go(`/?token=${admin}&topic=sensors%2Fkitchen%2F%23`);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("./?topic=sensors%2Fkitchen%2F%23");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    const cookie = tokenCookie(res)!;
    expect(cookie.value).toBe(admin);
    expect(cookie.attrs.has("httponly")).toBe(true);
    expect(cookie.attrs.get("samesite")).toBe("Strict");

    const legacy = await go(`/index.html?access_token=${KITCHEN}`);
    expect(legacy.status).toBe(303);
    expect(legacy.headers.get("location")).toBe("index.html");
    expect(tokenCookie(legacy)?.value).toBe(KITCHEN);

    // an unknown token sets nothing; the page then shows its login form
    const bad = await go("/?token=wrong-token-cccccccccccc");
    expect(bad.status).toBe(303);
    expect(bad.headers.get("location")).toBe("./");
    expect(tokenCookie(bad)).toBeUndefined();
    // and the page itself stays public
    expect((await go("/")).status).toBe(200);
  });
});

describe("admin token switched off", () => {
  it("accepts only the configured tokens and writes no file", async () => {
    const gw = await startTestGateway({
      config: { auth: { mode: "tokens", adminToken: false, tokens: [{ name: "kitchen", token: KITCHEN, read: ["#"] }] } },
    });
    try {
      expect(gw.adminToken).toBeUndefined();
      expect(existsSync(join(gw.dataDir, "admin-token"))).toBe(false);
      expect((await fetch(`${gw.url}/api/devices`, { headers: { Authorization: `Bearer ${KITCHEN}` } })).status).toBe(200);
    } finally {
      await gw.close();
    }
  });
});

describe("cross-origin writes are refused (CSRF)", () => {
  let gw: TestGateway;
  let open: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ config: { auth: { mode: "tokens", tokens: [{ name: "admin", token: ADMIN, read: ["#"], write: true }] } } });
    open = await startTestGateway(); // open mode on loopback: the laptop demo
  });
  afterAll(async () => {
    await gw?.close();
    await open?.close();
  });

  const command = (target: TestGateway, headers: Record<string, string>) =>
    fetch(`${target.url}/api/devices/kitchen/commands`, { method: "POST", headers, body: JSON.stringify({ op: "ping" }) });
  const cookie = `sensors_token=${ADMIN}`;
  const own = () => new URL(gw.url).host;

  it("refuses a cookie-carrying POST whose Sec-Fetch-Site or Origin is not this origin, with 403 cross_origin", async () => {
    const before = await errorCount(gw, "cross_origin");
    const refused: Array<Record<string, string>> = [
      { "Sec-Fetch-Site": "cross-site", Origin: "https://evil.example" },
      { "Sec-Fetch-Site": "same-site", Origin: "http://127.0.0.1:1" }, // another port on the same host
      { "Sec-Fetch-Site": "none" },
      { Origin: "https://evil.example" }, // an older browser without Sec-Fetch-*
      { Origin: "null" }, // sandboxed frame, data: URL
      { Origin: `http://${new URL(gw.url).hostname}:1` }, // same host name, other port
    ];
    for (const h of refused) {
      const res = await command(gw, { Cookie: cookie, "Content-Type": "text/plain", ...h });
      expect(res.status, JSON.stringify(h)).toBe(403);
      expect(await res.json()).toMatchObject({ error: { code: "cross_origin" } });
    }
    // also a Bearer header does not make a cookie-carrying cross-origin request acceptable
    const both = await command(gw, { Cookie: cookie, Authorization: `Bearer ${ADMIN}`, Origin: "https://evil.example" });
    expect(both.status).toBe(403);
    expect(await errorCount(gw, "cross_origin")).toBe(before + refused.length + 1);
  });

  it("lets same-origin pages, scripts with a Bearer header and non-browser clients through", async () => {
    const allowed: Array<Record<string, string>> = [
      { Cookie: cookie, "Sec-Fetch-Site": "same-origin", Origin: gw.url },
      { Cookie: cookie, Origin: gw.url }, // no Sec-Fetch-Site: Origin decides
      // host and port are compared, not the scheme: behind a TLS-terminating proxy the page is https, the gateway http
      { Cookie: cookie, Origin: `https://${own()}` },
      { Cookie: cookie }, // curl with a cookie jar: neither header
      { Authorization: `Bearer ${ADMIN}`, Origin: "https://evil.example", "Sec-Fetch-Site": "cross-site" }, // not CSRF-able
    ];
    for (const h of allowed) expect((await command(gw, { "Content-Type": "application/json", ...h })).status, JSON.stringify(h)).toBe(202);
    // safe methods are never refused on these grounds
    const get = await fetch(`${gw.url}/api/devices`, { headers: { Cookie: cookie, "Sec-Fetch-Site": "cross-site" } });
    expect(get.status).toBe(200);
  });

  it("guards login and logout too", async () => {
    const evil = { Origin: "https://evil.example", "Sec-Fetch-Site": "cross-site" };
    const login = await fetch(`${gw.url}/api/session`, { method: "POST", headers: evil, body: JSON.stringify({ token: ADMIN }) });
    expect(login.status).toBe(403);
    expect(tokenCookie(login)).toBeUndefined();
    expect((await fetch(`${gw.url}/api/session`, { method: "DELETE", headers: { ...evil, Cookie: cookie } })).status).toBe(403);
  });

  it("refuses a cross-site text/plain form post in open mode, where no token would stop it", async () => {
    const res = await command(open, { "Content-Type": "text/plain;charset=UTF-8", Origin: "https://evil.example", "Sec-Fetch-Site": "cross-site" });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: "cross_origin" } });
    expect((await command(open, { "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin", Origin: open.url })).status).toBe(202);
  });
});

describe("MQTT device auth of the embedded broker in /metrics", () => {
  it("exports the broker's refusal and client-error counters", async () => {
    const gw = await startTestGateway({ config: { broker: { auth: { mode: "devices" } } } });
    try {
      const scrape = async () => await (await fetch(`${gw.url}/metrics`)).text();
      expect(await scrape()).toMatch(/^gateway_broker_refusals_total\{kind="connect"\} 0$/m);
      await expect(
        mqtt.connectAsync(gw.mqttUrl, { clientId: "intruder", username: "intruder", password: "nope", reconnectPeriod: 0 }),
      ).rejects.toThrow();
      const text = await scrape();
      expect(text).toMatch(/^gateway_broker_refusals_total\{kind="connect"\} 1$/m);
      expect(text).toMatch(/^gateway_broker_refusals_total\{kind="publish"\} 0$/m);
      expect(text).toMatch(/^gateway_broker_refusals_total\{kind="subscribe"\} 0$/m);
      expect(text).toMatch(/^gateway_broker_client_errors_total \d+$/m);
    } finally {
      await gw.close();
    }
  });
});
