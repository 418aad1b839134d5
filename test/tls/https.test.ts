// Issue 13: the gateway's own HTTPS (HTTP/2 with HTTP/1.1 fallback) with real certificates and Node's real
// clients: SSE over HTTP/2, a wrong CA and an expired certificate refused, the HTTP→HTTPS redirect, Secure cookies.
import { request as httpRequest } from "node:http";
import { connect as http2Connect, type ClientHttp2Session } from "node:http2";
import { Agent as HttpsAgent, get as httpsGet } from "node:https";
import { connect as tlsConnect } from "node:tls";
import { readFileSync } from "node:fs";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitUntil } from "../helpers/wait.ts";
import { hasOpenssl, makePki, type TestPki } from "./pki.ts";

interface HttpsAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  httpVersion: string;
  serial: string;
}

/** GET over HTTPS (HTTP/1.1, Node's https module), trusting `ca` only. Rejects on a refused certificate. */
function httpsGetWith(url: string, ca: Buffer): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { ca, agent: false }, (res) => {
      const serial = (res.socket as import("node:tls").TLSSocket).getPeerCertificate().serialNumber;
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body, httpVersion: res.httpVersion, serial }));
    });
    req.on("error", reject);
  });
}

async function refusedWith(url: string, ca: Buffer): Promise<string | undefined> {
  try {
    await httpsGetWith(url, ca);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
  throw new Error(`${url} was accepted`);
}

describe.skipIf(!hasOpenssl)("gateway over HTTPS with a real certificate", () => {
  let pki: TestPki;
  let gw: TestGateway;
  let ca: Buffer;
  beforeAll(async () => {
    pki = makePki();
    ca = readFileSync(pki.good.caCert);
    // heartbeat 1 s: idle connections close after 2 s (gateway.ts), streams stay open with their heartbeat
    gw = await startTestGateway({ config: { tls: { cert: pki.good.cert, key: pki.good.key }, httpRedirectPort: 0, sse: { heartbeatMs: 1000 } } });
  });
  const metric = async (pattern: RegExp) => Number(pattern.exec(await gw.metrics.registry.metrics())?.[1] ?? 0);
  const sseClients = () => metric(/^gateway_sse_clients (\d+)/m);
  afterAll(async () => {
    await gw?.close();
    pki?.close();
  });

  it("serves HTTPS on its port (HTTP/1.1 to a client that does not offer h2), with the configured certificate", async () => {
    expect(gw.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await httpsGetWith(`${gw.url}/healthz`, ca);
    expect(r.status).toBe(200);
    expect(r.httpVersion).toBe("1.1");
    expect(r.serial).toBe(pki.good.serial);
    expect(JSON.parse(r.body)).toMatchObject({ ok: true });
  });

  it("streams SSE over HTTP/2: a reading published over MQTT arrives on /events, and a second stream shares the connection", async () => {
    const session: ClientHttp2Session = http2Connect(gw.url, { ca });
    try {
      await new Promise<void>((resolve, reject) => session.once("connect", () => resolve()).once("error", reject));
      expect(session.alpnProtocol).toBe("h2");
      const open = (path: string) => {
        const stream = session.request({ ":path": path, accept: "text/event-stream" });
        const state = { headers: undefined as Record<string, unknown> | undefined, body: "" };
        stream.on("response", (h) => (state.headers = h));
        stream.setEncoding("utf8");
        stream.on("data", (d: string) => (state.body += d));
        return { stream, state };
      };
      const all = open("/events");
      const onlyTelemetry = open("/events?topic=sensors/%2B/telemetry");
      await waitUntil(() => all.state.body.includes("retry:") && onlyTelemetry.state.body.includes("retry:"), { message: "both streams open" });
      expect(session.remoteSettings.maxConcurrentStreams).toBe(100); // one connection cannot open any number of streams
      await waitUntil(async () => (await sseClients()) === 2, { message: "the gateway serving both streams" });
      expect(all.state.headers?.[":status"]).toBe(200);
      expect(all.state.headers?.["content-type"]).toBe("text/event-stream; charset=utf-8");

      const pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: "https-sse-pub", reconnectPeriod: 0 });
      try {
        await pub.publishAsync(
          "sensors/h2-dev/telemetry",
          JSON.stringify({ v: 1, seq: 1, boot: 1, t: null, readings: { temperature: 21.5 }, battery: 3.9 }),
          { qos: 1 },
        );
      } finally {
        await pub.endAsync();
      }
      for (const s of [all, onlyTelemetry]) {
        await waitUntil(() => /event: telemetry\ndata: .*"deviceId":"h2-dev"/.test(s.state.body), { message: "the reading on an HTTP/2 stream" });
      }
      // Both streams stay open past the idle timeout (2 s): their heartbeats are traffic.
      const heartbeats = () => all.state.body.match(/^:/gm)?.length ?? 0;
      await waitUntil(() => heartbeats() >= 3, { message: "three heartbeats on the stream" });
      expect(session.closed).toBe(false);
      all.stream.close();
      onlyTelemetry.stream.close();
      await waitUntil(async () => (await sseClients()) === 0, { message: "the gateway ending both streams closed by the client" });
      expect(session.closed).toBe(false); // closing streams leaves the connection
    } finally {
      session.close();
    }
  });

  it("a client that trusts another CA is refused, and the failed handshake is counted", async () => {
    const handshakeErrors = () => metric(/^gateway_tls_handshake_errors_total\{listener="https"\} (\d+)/m);
    const before = await handshakeErrors();
    expect(await refusedWith(`${gw.url}/healthz`, readFileSync(pki.otherCaCert))).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    await waitUntil(async () => (await handshakeErrors()) === before + 1, { message: "gateway_tls_handshake_errors_total{listener=https} + 1" });
  });

  it("closes idle connections: an HTTP/2 session without streams, HTTP/1.1 keep-alive, TLS without a request", async () => {
    const session = http2Connect(gw.url, { ca });
    session.on("error", () => {});
    // HTTP/1.1: one request, then the connection sits idle in the agent
    const agent = new HttpsAgent({ keepAlive: true, ca });
    const kept = await new Promise<import("node:net").Socket>((resolve, reject) => {
      const req = httpsGet(`${gw.url}/healthz`, { agent }, (res) => {
        res.resume();
        res.on("end", () => resolve(req.socket!));
      }).on("error", reject);
    });
    // TLS handshake, then nothing
    const silent = tlsConnect({ host: "127.0.0.1", port: gw.port, ca, servername: "localhost" });
    silent.on("error", () => {});
    await new Promise<void>((resolve) => silent.once("secureConnect", () => resolve()));
    try {
      await waitUntil(() => session.closed && kept.destroyed && silent.destroyed, { timeoutMs: 15_000, message: "the gateway closing all three idle connections" });
    } finally {
      agent.destroy();
      session.destroy();
      silent.destroy();
    }
  });

  it("the plain HTTP port redirects every request to the same path on HTTPS (308)", async () => {
    const r = await new Promise<{ status: number; location: string | undefined }>((resolve, reject) => {
      httpRequest(`http://127.0.0.1:${gw.redirectPort}/api/devices?x=1`, { method: "POST" }, (res) => {
        res.resume();
        resolve({ status: res.statusCode!, location: res.headers.location });
      })
        .on("error", reject)
        .end();
    });
    expect(r.status).toBe(308); // 308 keeps the method and body, unlike 301
    expect(r.location).toBe(`https://127.0.0.1:${gw.port}/api/devices?x=1`);
  });

  it("the redirect echoes only a well-formed Host, takes only path and query, and is not cached", async () => {
    const redirectOf = (path: string, host: string) =>
      new Promise<{ location: string | undefined; cache: string | undefined }>((resolve, reject) => {
        httpRequest({ host: "127.0.0.1", port: gw.redirectPort, path, headers: { host } }, (res) => {
          res.resume();
          resolve({ location: res.headers.location, cache: res.headers["cache-control"] });
        })
          .on("error", reject)
          .end();
      });
    expect(await redirectOf("/x", "pi.local:8081")).toEqual({ location: `https://pi.local:${gw.port}/x`, cache: "no-store" });
    expect((await redirectOf("/x", "a@evil.example")).location).toBe(`https://127.0.0.1:${gw.port}/x`);
    expect((await redirectOf("http://pi.local:8081/api?y=2", "pi.local")).location).toBe(`https://pi.local:${gw.port}/api?y=2`);
  });
});

describe.skipIf(!hasOpenssl)("a stalled SSE stream over HTTP/2", () => {
  let pki: TestPki;
  let gw: TestGateway;
  beforeAll(async () => {
    pki = makePki();
    gw = await startTestGateway({
      config: { tls: { cert: pki.good.cert, key: pki.good.key }, sse: { maxQueueBytes: 256 * 1024, maxQueueEvents: 100_000, heartbeatMs: 1000 } },
    });
  });
  afterAll(async () => {
    await gw?.close();
    pki?.close();
  });

  const metric = async (pattern: RegExp) => Number(pattern.exec(await gw.metrics.registry.metrics())?.[1] ?? 0);

  it("is dropped by its queue limit while another stream on the same connection gets every event", async () => {
    const session = http2Connect(gw.url, { ca: readFileSync(pki.good.caCert) });
    try {
      await new Promise<void>((resolve, reject) => session.once("connect", () => resolve()).once("error", reject));
      const stalled = session.request({ ":path": "/events?topic=sensors/%2B/telemetry" });
      stalled.pause(); // never reads: its HTTP/2 window fills, then the gateway's queue for it
      const stalledClosed = new Promise<void>((resolve) => stalled.once("close", () => resolve()));
      const reader = session.request({ ":path": "/events?topic=sensors/%2B/telemetry" });
      reader.setEncoding("utf8");
      let text = "";
      reader.on("data", (d: string) => (text += d));
      await waitUntil(async () => (await metric(/^gateway_sse_clients (\d+)/m)) === 2, { message: "both streams open" });

      const pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: "h2-slow-pub", reconnectPeriod: 0 });
      const TOTAL = 3_000;
      // 16 readings with 32-character keys: ~800-byte payloads, valid per docs/protocol.md.
      const readings = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}_`.padEnd(32, "x"), i + 0.5]));
      try {
        // QoS 1 in batches of 25: each batch acknowledged before the next (publisher, gateway and client share a thread)
        for (let seq = 1; seq <= TOTAL; seq += 25) {
          const batch = Array.from({ length: Math.min(25, TOTAL - seq + 1) }, (_, i) =>
            pub.publishAsync("sensors/h2-slow/telemetry", JSON.stringify({ v: 1, seq: seq + i, boot: 1, t: null, readings, battery: null }), { qos: 1 }),
          );
          await Promise.all(batch);
        }
        const count = () => text.match(/^event: telemetry$/gm)?.length ?? 0;
        await waitUntil(() => count() === TOTAL, { timeoutMs: 60_000, message: `all ${TOTAL} events on the reading stream` });
      } finally {
        await pub.endAsync();
      }
      await waitUntil(async () => (await metric(/^gateway_sse_dropped_clients_total\{[^}]*\} (\d+)/m)) >= 1, { message: "the stalled stream dropped" });
      stalled.resume(); // reads what was buffered, then sees the end the gateway gave that stream only
      await stalledClosed;
      expect(session.destroyed).toBe(false);
      expect(reader.closed).toBe(false);
      expect(await metric(/^gateway_sse_clients (\d+)/m)).toBe(1);
      reader.close();
    } finally {
      session.close();
    }
  });
});

describe.skipIf(!hasOpenssl)("session cookie over HTTPS", () => {
  let pki: TestPki;
  let gw: TestGateway;
  beforeAll(async () => {
    pki = makePki();
    gw = await startTestGateway({ config: { auth: { mode: "tokens" }, tls: { cert: pki.good.cert, key: pki.good.key } } });
  });
  afterAll(async () => {
    await gw?.close();
    pki?.close();
  });

  it("is Secure when the gateway itself serves HTTPS", async () => {
    const session = http2Connect(gw.url, { ca: readFileSync(pki.good.caCert) });
    try {
      const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const req = session.request({ ":method": "POST", ":path": "/api/session", "content-type": "application/json", origin: gw.url });
        req.on("response", (h) => resolve(h));
        req.on("error", reject);
        req.end(JSON.stringify({ token: gw.adminToken!.token }));
        req.resume();
      });
      expect(headers[":status"]).toBe(200);
      const cookie = String(headers["set-cookie"]);
      expect(cookie).toMatch(/sensors_token=/);
      expect(cookie).toMatch(/; Secure/);
      expect(cookie).toMatch(/; HttpOnly/);
    } finally {
      session.close();
    }
  });
});

describe.skipIf(!hasOpenssl)("an expired certificate", () => {
  let pki: TestPki;
  let gw: TestGateway;
  beforeAll(async () => {
    pki = makePki();
    gw = await startTestGateway({ config: { tls: { cert: pki.expired.cert, key: pki.expired.key }, mqtt: { tlsPort: 0 } } });
  });
  afterAll(async () => {
    await gw?.close();
    pki?.close();
  });

  it("is refused by HTTPS and mqtts clients that trust its CA", async () => {
    const ca = readFileSync(pki.good.caCert);
    expect(await refusedWith(`${gw.url}/healthz`, ca)).toBe("CERT_HAS_EXPIRED");
    const err = await mqtt
      .connectAsync(gw.broker!.urls.mqtts!, { ca, clientId: "expired-client", reconnectPeriod: 0, connectTimeout: 5_000 })
      .then(
        async (c) => {
          await c.endAsync(true);
          throw new Error("connected despite an expired certificate");
        },
        (e: NodeJS.ErrnoException) => e,
      );
    expect(err.code).toBe("CERT_HAS_EXPIRED");
  });
});
