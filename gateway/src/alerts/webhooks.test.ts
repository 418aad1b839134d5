import { createHmac } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, test } from "vitest";
import { waitUntil } from "../../../test/helpers/wait.ts";
import { createLogger } from "../ops/log.ts";
import type { AlertData } from "../protocol/events.ts";
import { Webhooks, webhookTargetSchema, type WebhookOptions, type WebhookTarget } from "./webhooks.ts";

const SECRET = "0123456789abcdef-secret";

interface Received { headers: IncomingHttpHeaders; body: string; at: number; url: string }

/** A real HTTP receiver; `answer` decides each response (call res.end() or never, to hang). */
async function receiver(answer: (res: ServerResponse, n: number) => void = (res) => res.end("ok")) {
  const received: Received[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), at: performance.now(), url: req.url ?? "" });
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      res.on("close", () => inFlight--);
      answer(res, received.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url, received, maxInFlight: () => maxInFlight };
}

function counter() {
  return { n: 0, inc() { this.n++; } };
}

function hooks(targets: WebhookTarget[], opts: WebhookOptions = {}, lines: string[] = []) {
  const counters = { delivered: counter(), retried: counter(), deadLetters: counter() };
  const log = createLogger("debug", { write: (s: string) => void lines.push(s) });
  const webhooks = new Webhooks(targets, counters, log, { baseDelayMs: 20, timeoutMs: 1000, ...opts });
  cleanups.push(() => webhooks.close());
  return { webhooks, ...counters };
}

let nextId = 1;
function alert(over: Partial<AlertData> = {}): AlertData {
  return {
    alertId: nextId++, ruleId: "hot", ruleName: "Too hot", kind: "threshold", severity: "warning", deviceId: "dev-1",
    topic: "sensors/dev-1/telemetry", metric: "temperature", state: "firing", message: "temperature 31.2 above 30",
    value: 31.2, threshold: 30, firedAt: 1_000, resolvedAt: null, ackedAt: null, ackedBy: null, updatedAt: 1_000, ...over,
  };
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  // Webhooks first (they were pushed after their server), so nothing is left talking to a closed port.
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe("webhookTargetSchema", () => {
  test("accepts http(s) targets with a long secret and known kinds", () => {
    expect(webhookTargetSchema.parse({ url: "https://example.com/h?t=1", secret: SECRET, kinds: ["offline"] })).toEqual({
      url: "https://example.com/h?t=1", secret: SECRET, kinds: ["offline"],
    });
  });

  test("rejects other schemes, short secrets, unknown kinds and unknown keys", () => {
    expect(webhookTargetSchema.safeParse({ url: "ftp://example.com/", secret: SECRET }).success).toBe(false);
    expect(webhookTargetSchema.safeParse({ url: "https://example.com/", secret: "short" }).success).toBe(false);
    expect(webhookTargetSchema.safeParse({ url: "https://example.com/", secret: SECRET, kinds: ["nope"] }).success).toBe(false);
    expect(webhookTargetSchema.safeParse({ url: "https://example.com/", secret: SECRET, extra: 1 }).success).toBe(false);
  });
});

describe("Webhooks", () => {
  test("delivers the alert as signed JSON the receiver can verify with the secret", async () => {
    const server = await receiver();
    const h = hooks([{ url: server.url, secret: SECRET }]);
    const a = alert();
    h.webhooks.send(a);
    await waitUntil(() => h.delivered.n === 1, { message: "delivery" });

    const [req] = server.received;
    const expected = createHmac("sha256", SECRET).update(`${req!.headers["x-sensors-timestamp"]}.${req!.body}`).digest("hex");
    expect(req!.headers["x-sensors-signature"]).toBe(`sha256=${expected}`);
    expect(JSON.parse(req!.body)).toEqual({ type: "alert", alert: a });
    expect(req!.headers["content-type"]).toBe("application/json");
    expect(req!.headers["user-agent"]).toBe("sensors-gateway");
    expect(Number(req!.headers["x-sensors-timestamp"])).toBeGreaterThan(Date.now() - 60_000);
    expect(req!.headers["x-sensors-delivery"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(h.retried.n + h.deadLetters.n).toBe(0);
  });

  test("retries 500s with exponential backoff under one delivery id, then delivers", async () => {
    const server = await receiver((res, n) => {
      res.statusCode = n <= 2 ? 500 : 200;
      res.end();
    });
    const h = hooks([{ url: server.url, secret: SECRET }], { baseDelayMs: 20 });
    h.webhooks.send(alert());
    await waitUntil(() => h.delivered.n === 1, { message: "delivery on the 3rd attempt" });

    expect(server.received).toHaveLength(3);
    expect(h.retried.n).toBe(2);
    expect(h.deadLetters.n).toBe(0);
    expect(new Set(server.received.map((r) => r.headers["x-sensors-delivery"])).size).toBe(1);
    const [a, b, c] = server.received.map((r) => r.at);
    // 20 ms then 40 ms; 1 ms of slack for timer granularity (libuv measures from its cached loop time).
    expect(b! - a!).toBeGreaterThanOrEqual(20 - 1);
    expect(c! - b!).toBeGreaterThanOrEqual(40 - 1);
  });

  test("a receiver that never answers times out, is retried, and ends as one dead letter", async () => {
    const server = await receiver(() => {}); // hangs
    const lines: string[] = [];
    const target = { url: `${server.url.replace("http://", "http://user:pass@")}?token=very-secret-token`, secret: SECRET };
    const h = hooks([target], { timeoutMs: 100, attempts: 3, baseDelayMs: 10 }, lines);
    h.webhooks.send(alert());
    await waitUntil(() => h.deadLetters.n === 1, { message: "dead letter" });

    expect(server.received).toHaveLength(3);
    expect(h.retried.n).toBe(2);
    expect(h.delivered.n).toBe(0);
    // userinfo went in a header, never in a log line; the query (a token) is never logged either.
    expect(server.received[0]!.headers.authorization).toBe(`Basic ${Buffer.from("user:pass").toString("base64")}`);
    expect(server.received[0]!.url).toBe("/hook?token=very-secret-token");
    const log = lines.join("");
    expect(log).toContain("webhook delivery given up");
    expect(log).toContain(`"url":"${server.url}"`);
    expect(log).not.toContain("very-secret-token");
    expect(log).not.toContain("pass@");
    expect(log).not.toContain(SECRET);
  });

  test("a 400 is permanent: a dead letter at once, no retries", async () => {
    const server = await receiver((res) => {
      res.statusCode = 400;
      res.end();
    });
    const h = hooks([{ url: server.url, secret: SECRET }]);
    h.webhooks.send(alert());
    await waitUntil(() => h.deadLetters.n === 1, { message: "dead letter" });
    expect(server.received).toHaveLength(1);
    expect(h.retried.n).toBe(0);
  });

  test("firing then resolved reach a slow receiver in order, one at a time", async () => {
    const server = await receiver((res) => void setTimeout(() => res.end(), 50));
    const h = hooks([{ url: server.url, secret: SECRET }]);
    const firing = alert();
    h.webhooks.send(firing);
    h.webhooks.send({ ...firing, state: "resolved", resolvedAt: 2_000, updatedAt: 2_000 });
    await waitUntil(() => h.delivered.n === 2, { message: "both deliveries" });

    expect(server.received.map((r) => JSON.parse(r.body).alert.state)).toEqual(["firing", "resolved"]);
    expect(server.maxInFlight()).toBe(1);
    expect(server.received[0]!.headers["x-sensors-delivery"]).not.toBe(server.received[1]!.headers["x-sensors-delivery"]);
  });

  test("a target with kinds gets only alerts of those kinds", async () => {
    const all = await receiver();
    const offlineOnly = await receiver();
    const h = hooks([{ url: all.url, secret: SECRET }, { url: offlineOnly.url, secret: SECRET, kinds: ["offline"] }]);
    h.webhooks.send(alert({ kind: "threshold" }));
    h.webhooks.send(alert({ kind: "offline" }));
    await waitUntil(() => h.delivered.n === 3, { message: "three deliveries" });

    expect(all.received.map((r) => JSON.parse(r.body).alert.kind)).toEqual(["threshold", "offline"]);
    expect(offlineOnly.received.map((r) => JSON.parse(r.body).alert.kind)).toEqual(["offline"]);
  });

  test("a full queue drops the oldest waiting delivery and counts it as a dead letter", async () => {
    const held: ServerResponse[] = [];
    let open = false;
    const server = await receiver((res) => (open ? res.end() : held.push(res)));
    const h = hooks([{ url: server.url, secret: SECRET }], { maxQueued: 2 });
    const ids = [alert(), alert(), alert(), alert()].map((a) => {
      h.webhooks.send(a);
      return a.alertId;
    });
    await waitUntil(() => server.received.length === 1, { message: "first delivery in flight" });
    expect(h.deadLetters.n).toBe(1); // #2 dropped when #4 came: #1 in flight, #3 and #4 waiting

    open = true;
    for (const res of held) res.end();
    await waitUntil(() => h.delivered.n === 3, { message: "the rest delivered" });
    expect(server.received.map((r) => JSON.parse(r.body).alert.alertId)).toEqual([ids[0], ids[2], ids[3]]);
  });

  test("close() waits for the POST in flight and counts the queued deliveries as dead letters", async () => {
    const held: ServerResponse[] = [];
    const server = await receiver((res) => held.push(res));
    const lines: string[] = [];
    const h = hooks([{ url: server.url, secret: SECRET }], {}, lines);
    for (let i = 0; i < 3; i++) h.webhooks.send(alert());
    await waitUntil(() => server.received.length === 1, { message: "first delivery in flight" });

    let deliveredAtClose = -1;
    const closing = h.webhooks.close().then(() => (deliveredAtClose = h.delivered.n));
    await new Promise(setImmediate);
    expect(deliveredAtClose).toBe(-1); // still waiting for the one in flight
    held[0]!.end();
    await closing;

    expect(deliveredAtClose).toBe(1);
    expect(h.deadLetters.n).toBe(2);
    expect(server.received).toHaveLength(1);
    expect(lines.join("")).toContain('"undelivered":2');
    await h.webhooks.close(); // idempotent: nothing counted twice
    h.webhooks.send(alert()); // after close: never sent, counted
    expect(h.deadLetters.n).toBe(3);
  });

  test("close() ends a backoff wait at once", async () => {
    const server = await receiver((res) => {
      res.statusCode = 503;
      res.end();
    });
    const h = hooks([{ url: server.url, secret: SECRET }], { baseDelayMs: 60_000 });
    h.webhooks.send(alert());
    await waitUntil(() => h.retried.n === 1, { message: "first failure" });

    const started = performance.now();
    await h.webhooks.close();
    expect(performance.now() - started).toBeLessThan(500);
    expect(h.deadLetters.n).toBe(1);
    expect(server.received).toHaveLength(1);
  });
});
