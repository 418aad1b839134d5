/**
 * One HTTP error type (gateway/src/http/errors.ts): every error answer has the documented JSON shape and is
 * counted by its code in gateway_http_errors_total, 4xx as much as 5xx.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";

const WRITER = "writer-token-0123456789abcdef";
const READER = "reader-token-0123456789abcdef";

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({
    config: {
      auth: {
        mode: "tokens",
        tokens: [
          { name: "writer", token: WRITER, read: ["#"], write: true },
          { name: "reader", token: READER, read: ["sensors/kitchen/#"], write: false },
        ],
      },
    },
  });
});
afterAll(() => gw?.close());

async function errorCounts(): Promise<Record<string, number>> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^gateway_http_errors_total\{code="([^"]+)"\} (\d+)$/gm)) counts[m[1]!] = Number(m[2]);
  return counts;
}

const as = (token: string, init: RequestInit = {}): RequestInit => ({
  ...init,
  headers: { Authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) },
});

describe("HTTP errors", () => {
  it("answers each error as {error: {code, message}} and counts it by code", async () => {
    const cases: Array<[string, RequestInit, number, string]> = [
      ["/api/devices", {}, 401, "unauthorized"],
      ["/api/devices", as("not-a-token-at-all-0000"), 401, "unauthorized"],
      ["/api/devices/bad%20id/readings", as(WRITER), 400, "invalid_device_id"],
      ["/api/devices/d1/readings?limit=0", as(WRITER), 400, "invalid_query"],
      ["/api/devices/d1/readings", as(READER), 403, "forbidden"],
      ["/events?topic=a/%23/b", as(WRITER), 400, "invalid_topic_filter"],
      ["/events", as(WRITER, { headers: { "Last-Event-ID": "-1" } }), 400, "invalid_last_event_id"],
      ["/api/devices/d1/commands", as(WRITER, { method: "POST", body: "{" }), 400, "invalid_json"],
      ["/api/devices/d1/commands", as(WRITER, { method: "POST", body: JSON.stringify({ op: "set-interval", seconds: 1 }) }), 400, "invalid_command"],
      ["/api/devices/d1/commands", as(WRITER, { method: "POST", body: "x".repeat(5000) }), 413, "body_too_large"],
      ["/api/devices/d1/commands", as(READER, { method: "POST", body: JSON.stringify({ op: "ping" }) }), 403, "forbidden"],
      ["/api/devices/d1/commands/c-unknown", as(WRITER), 404, "not_found"],
      ["/no/such/route", as(WRITER), 404, "not_found"],
    ];
    const before = await errorCounts();
    const expected: Record<string, number> = {};
    for (const [path, init, status, code] of cases) {
      const res = await fetch(`${gw.url}${path}`, init);
      expect(res.status, `${init.method ?? "GET"} ${path}`).toBe(status);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code, path).toBe(code);
      expect(body.error.message.length, path).toBeGreaterThan(0);
      expected[code] = (expected[code] ?? 0) + 1;
    }
    const after = await errorCounts();
    for (const [code, n] of Object.entries(expected)) expect(after[code]! - (before[code] ?? 0), code).toBe(n);
  });
});
