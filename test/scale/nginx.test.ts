/**
 * Issue 12: the shipped nginx config (hardware/pi/nginx/sleepy-sensors.conf, rendered for these gateways) with
 * Debian's nginx in front of the compiled gateway's three --workers (Redis mode). SSE passes unbuffered and
 * uncompressed and resumes with Last-Event-ID; the API (POST included), the dashboard's script (gzip) and both
 * ways of sending credentials (header, cookie) pass through.
 */
import mqtt, { type MqttClient } from "mqtt";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectSse, type SseClient } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";
import { redisAvailable, startRedis } from "../helpers/redis.ts";
import { startCompiledWorkers } from "./compiled-gateway.ts";
import { nginxAvailable, startNginx, type RunningNginx } from "./nginx.ts";

const hasNginx = nginxAvailable();
const hasRedis = redisAvailable();
const DEVICE = "nginx-1";
const telemetry = (seq: number) => JSON.stringify({ v: 1, seq, boot: 1, t: null, readings: { temperature: 20 + seq }, battery: null });

interface Backends {
  /** host:port of each gateway, for the nginx upstream. */
  upstreams: string[];
  /** Where devices publish. */
  mqttUrl: string;
  /** A token every gateway accepts. */
  adminToken: string;
  stop(): Promise<unknown>;
}

/**
 * The gateways behind nginx: `server.js --workers 3` in Redis mode (ports base..base+2, one admin token), so
 * each request below may land on any worker.
 */
async function startBackends(): Promise<Backends> {
  const redis = await startRedis();
  const workers = await startCompiledWorkers(3, redis.url).catch(async (e: unknown) => {
    await redis.close();
    throw e;
  });
  return {
    upstreams: workers.ports.map((p) => `127.0.0.1:${p}`),
    mqttUrl: workers.mqttUrl,
    adminToken: workers.adminToken,
    stop: async () => {
      await workers.stop();
      await redis.close();
    },
  };
}

describe.skipIf(!hasNginx || !hasRedis)("nginx in front of three gateway workers (shipped config)", () => {
  let backends: Backends;
  let proxy: RunningNginx;
  let pub: MqttClient;
  const streams: SseClient[] = [];
  const open = async (...args: Parameters<typeof connectSse>) => {
    const s = await connectSse(...args);
    streams.push(s);
    return s;
  };

  beforeAll(async () => {
    backends = await startBackends();
    proxy = await startNginx({ gateways: backends.upstreams });
    pub = await mqtt.connectAsync(backends.mqttUrl, { clientId: "nginx-test-pub" });
  });
  afterAll(async () => {
    for (const s of streams) s.close();
    await pub?.endAsync();
    await proxy?.stop();
    await backends?.stop();
  });

  let ids: string[] = [];

  it("delivers each SSE event before the next is published, uncompressed although the client accepts gzip", async () => {
    const sse = await open(proxy.url, {
      topics: [`sensors/${DEVICE}/telemetry`],
      token: backends.adminToken,
      headers: { "Accept-Encoding": "gzip, deflate, br" },
    });
    expect(sse.response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(sse.response.headers.get("content-encoding")).toBeNull();
    expect(sse.response.headers.get("x-accel-buffering")).toBe("no");
    // Event n is published only after event n-1 came out of nginx: a buffering proxy would hold the first
    // small event back and this would time out.
    for (let seq = 1; seq <= 5; seq++) {
      await pub.publishAsync(`sensors/${DEVICE}/telemetry`, telemetry(seq), { qos: 1 });
      await sse.waitForEvents(seq, (e) => e.event === "telemetry");
    }
    const events = sse.events.filter((e) => e.event === "telemetry");
    expect(events.map((e) => e.json.seq)).toEqual([1, 2, 3, 4, 5]);
    ids = events.map((e) => e.id!);
  });

  it("resumes after Last-Event-ID through nginx (header and query)", async () => {
    const byHeader = await open(proxy.url, { topics: [`sensors/${DEVICE}/telemetry`], token: backends.adminToken, lastEventId: ids[1] });
    const byQuery = await open(proxy.url, { topics: [`sensors/${DEVICE}/telemetry`], token: backends.adminToken, lastEventIdQuery: ids[1] });
    for (const s of [byHeader, byQuery]) {
      const replayed = await s.waitForEvents(3, (e) => e.event === "telemetry");
      expect(replayed.map((e) => e.json.seq)).toEqual([3, 4, 5]);
    }
  });

  it("needs a token through nginx, and keeps access_token out of its access log", async () => {
    expect((await fetch(`${proxy.url}/api/devices`)).status).toBe(401);
    const secret = backends.adminToken;
    const sse = await open(proxy.url, { token: secret, tokenVia: "query" });
    sse.close();
    const log = await waitUntil(() => (proxy.accessLog().includes("/events") ? proxy.accessLog() : undefined), { message: "the access log line" });
    expect(log).not.toContain(secret);
  });

  it("logs in with POST /api/session, then sends a command with the cookie from the page's origin", async () => {
    const login = await fetch(`${proxy.url}/api/session`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Origin: proxy.url },
      body: JSON.stringify({ token: backends.adminToken }),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.get("set-cookie")!.split(";")[0];
    expect(cookie).toMatch(/^sensors_token=/);

    const devices = await fetch(`${proxy.url}/api/devices`, { headers: { Cookie: cookie, "Accept-Encoding": "gzip" } });
    expect(devices.status).toBe(200);
    expect(devices.headers.get("content-encoding")).toBe("gzip"); // the JSON API is still compressed
    const script = await fetch(`${proxy.url}/app.js`, { headers: { "Accept-Encoding": "gzip" } });
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toMatch(/javascript/);
    expect(script.headers.get("content-encoding")).toBe("gzip"); // the dashboard's script too (text/javascript)
    expect((await devices.json()).devices.map((d: { deviceId: string }) => d.deviceId)).toContain(DEVICE);

    // A browser's same-origin POST: Origin is nginx's address, so the Host nginx forwards must keep the port.
    const command = await fetch(`${proxy.url}/api/devices/${DEVICE}/commands`, {
      method: "POST",
      headers: { Cookie: cookie, Origin: proxy.url, "Content-Type": "application/json" },
      body: JSON.stringify({ op: "set-interval", seconds: 300 }),
    });
    expect(command.status, await command.clone().text()).toBe(202);
    expect((await command.json()).state).toBe("queued");
  });
});

// The gateway sends X-Accel-Buffering: no, which nginx honours; the shipped config must not rely on it (another
// backend, or a header lost on the way, would bring buffering back). So here the upstream is a bare SSE
// endpoint without that header, and the config alone has to pass each event at once.
describe.skipIf(!hasNginx)("nginx's SSE settings without the gateway's X-Accel-Buffering header", () => {
  let upstream: Server;
  let proxy: RunningNginx;
  const writers: ServerResponse[] = [];
  beforeAll(async () => {
    upstream = createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
      res.write(": open\n\n");
      writers.push(res);
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    proxy = await startNginx({ gateways: [`127.0.0.1:${(upstream.address() as AddressInfo).port}`] });
  });
  afterAll(async () => {
    for (const w of writers) w.end();
    await proxy?.stop();
    await new Promise((r) => upstream?.close(r));
  });

  it("passes each event through before the next is written", async () => {
    const sse = await connectSse(proxy.url, { headers: { "Accept-Encoding": "gzip" } });
    try {
      expect(sse.response.headers.get("content-encoding")).toBeNull();
      const writer = await waitUntil(() => writers.at(-1), { message: "the stream to reach the upstream" });
      for (let n = 1; n <= 3; n++) {
        writer.write(`id: ${n}\nevent: telemetry\ndata: {"n":${n}}\n\n`);
        await sse.waitForEvents(n, (e) => e.event === "telemetry");
      }
      expect(sse.events.filter((e) => e.event === "telemetry").map((e) => e.json.n)).toEqual([1, 2, 3]);
    } finally {
      sse.close();
    }
  });
});
