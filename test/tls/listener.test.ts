// The HTTPS listener's shutdown (gateway/src/http/listener.ts) with a real certificate and Node's real clients:
// idle connections, HTTP/1.1 keep-alive and HTTP/2 sessions alike, end at once, not after the grace period,
// also an HTTP/1.1 connection whose request was still being answered when the listener stopped accepting.
import { readFileSync } from "node:fs";
import { Agent as HttpsAgent, get as httpsGet } from "node:https";
import { connect as http2Connect } from "node:http2";
import type { Socket } from "node:net";
import { Hono } from "hono";
import type { AppEnv } from "../../gateway/src/http/env.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KEEP_ALIVE_TIMEOUT_MS, startHttpListener } from "../../gateway/src/http/listener.ts";
import { createLogger } from "../../gateway/src/ops/log.ts";
import { loadTlsCredentials } from "../../gateway/src/tls/credentials.ts";
import { waitUntil } from "../helpers/wait.ts";
import { hasOpenssl, makePki, type TestPki } from "./pki.ts";

describe.skipIf(!hasOpenssl)("HTTPS listener shutdown", () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = makePki();
  });
  afterAll(() => pki?.close());

  it("closes an idle HTTP/1.1 keep-alive connection and an idle HTTP/2 session at once", async () => {
    let answerSlow!: () => void;
    const slowAnswered = new Promise<void>((resolve) => (answerSlow = resolve));
    const app = new Hono<AppEnv>().get("/", (c) => c.text("ok")).get("/slow", async (c) => {
      await slowAnswered;
      return c.text("late");
    });
    const listener = await startHttpListener(app, {
      host: "127.0.0.1",
      port: 0,
      tls: loadTlsCredentials(pki.good),
      idleTimeoutMs: 600_000, // not what closes them here
      handshakeFailed: () => {},
      log: createLogger("silent"),
    });
    const ca = readFileSync(pki.good.caCert);
    const url = `https://127.0.0.1:${listener.port}/`;
    const agent = new HttpsAgent({ keepAlive: true, ca });
    const kept = await new Promise<Socket>((resolve, reject) => {
      const req = httpsGet(url, { agent }, (res) => {
        res.resume();
        res.on("end", () => resolve(req.socket!));
      }).on("error", reject);
    });
    const session = http2Connect(url, { ca });
    session.on("error", () => {});
    await new Promise<void>((resolve, reject) => {
      const stream = session.request({ ":path": "/" });
      stream.on("error", reject).on("end", () => resolve()).resume();
    });
    // a request in flight when the listener stops accepting: its keep-alive connection must not outlive it
    const slowAgent = new HttpsAgent({ keepAlive: true, ca });
    let slowSocket: Socket | undefined;
    const slowDone = new Promise<string>((resolve, reject) => {
      const req = httpsGet(`${url}slow`, { agent: slowAgent }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString())).on("end", () => resolve(body));
      }).on("error", reject);
      req.on("socket", (s) => (slowSocket = s));
    });
    await waitUntil(() => slowSocket !== undefined && !slowSocket.connecting, { message: "the slow request sent" });
    try {
      const started = Date.now();
      listener.stopAccepting();
      answerSlow();
      expect(await slowDone).toBe("late");
      await listener.finish(600_000); // a grace period the test would never outlive
      // Not the keep-alive timeout either: the listener closed them.
      expect(Date.now() - started).toBeLessThan(KEEP_ALIVE_TIMEOUT_MS);
      expect(kept.destroyed).toBe(true);
      expect(slowSocket!.destroyed).toBe(true);
      expect(session.closed || session.destroyed).toBe(true);
    } finally {
      agent.destroy();
      slowAgent.destroy();
      session.destroy();
    }
  });
});
