import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { auth, canRead, coversFilters, loadAdminToken, resolveAuth } from "./auth.ts";
import type { AppEnv } from "./env.ts";
import { errorHandlers } from "./errors.ts";

const READER = "reader-token-0123456789";
const WRITER = "writer-token-0123456789";

function app() {
  const a = new Hono<AppEnv>();
  a.onError(errorHandlers(() => {}, console).onError);
  a.use("*", auth({
    mode: "tokens",
    tokens: [
      { name: "reader", token: READER, read: ["sensors/kitchen/#"], write: false },
      { name: "writer", token: WRITER, read: ["#"], write: true },
    ],
  }));
  a.get("/who", (c) => c.json(c.get("principal")));
  return a;
}

describe("auth middleware", () => {
  it("accepts a Bearer header, an access_token query parameter and the sensors_token cookie", async () => {
    const a = app();
    const viaHeader = await a.request("/who", { headers: { Authorization: `Bearer ${READER}` } });
    const viaQuery = await a.request(`/who?access_token=${WRITER}`);
    const viaCookie = await a.request("/who", { headers: { Cookie: `sensors_token=${READER}` } });
    expect(await viaHeader.json()).toEqual({ name: "reader", read: ["sensors/kitchen/#"], write: false });
    expect((await viaQuery.json()).name).toBe("writer");
    expect((await viaCookie.json()).name).toBe("reader");
  });

  it("answers 401 unauthorized without a token or with an unknown one", async () => {
    const a = app();
    for (const init of [{}, { headers: { Authorization: "Bearer nope-nope-nope-nope" } }, { headers: { Authorization: "Basic abc" } }]) {
      const res = await a.request("/who", init);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: { code: "unauthorized" } });
    }
  });

  it("open mode lets everyone read and write, explicitly", async () => {
    const a = new Hono<AppEnv>();
    a.use("*", auth({ mode: "open" }));
    a.get("/who", (c) => c.json(c.get("principal")));
    expect(await (await a.request("/who")).json()).toEqual({ name: "open", write: true });
  });

  it("decides read scope with MQTT filter semantics", () => {
    const p = { name: "r", read: ["sensors/kitchen/#", "sensors/+/status"], write: false };
    expect(canRead(p, "sensors/kitchen/telemetry")).toBe(true);
    expect(canRead(p, "sensors/garage/status")).toBe(true);
    expect(canRead(p, "sensors/garage/telemetry")).toBe(false);
    expect(coversFilters(p, ["sensors/kitchen/+", "sensors/+/status"])).toBe(true);
    expect(coversFilters(p, ["#"])).toBe(false);
    expect(coversFilters(p, ["sensors/+/telemetry"])).toBe(false);
  });
});

describe("admin token file", () => {
  it("is created once, then read back; resolveAuth puts it first, beside the configured tokens", () => {
    const dir = mkdtempSync(join(tmpdir(), "admin-token-"));
    try {
      const first = loadAdminToken(join(dir, "nested"));
      expect(first.created).toBe(true);
      expect(readFileSync(first.file, "utf8")).toBe(`${first.token}\n`);
      const again = loadAdminToken(join(dir, "nested"));
      expect(again).toEqual({ ...first, created: false });
      const { http, admin } = resolveAuth(
        { mode: "tokens", adminToken: true, tokens: [{ name: "ui", token: READER, read: ["#"], write: false }] },
        join(dir, "nested"),
      );
      expect(admin?.token).toBe(first.token);
      expect(http).toEqual({
        mode: "tokens",
        tokens: [
          { name: "admin", token: first.token, read: ["#"], write: true },
          { name: "ui", token: READER, read: ["#"], write: false },
        ],
      });
      expect(resolveAuth({ mode: "open", allowNetwork: false }, dir)).toEqual({ http: { mode: "open" }, admin: undefined });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("is read from adminTokenFile when set (every --workers worker uses the supervisor's), not from the data dir", () => {
    const dir = mkdtempSync(join(tmpdir(), "admin-token-"));
    try {
      const shared = loadAdminToken(dir);
      const { admin } = resolveAuth({ mode: "tokens", adminToken: true, tokens: [], adminTokenFile: shared.file }, join(dir, "worker-0"));
      expect(admin).toMatchObject({ token: shared.token, file: shared.file, created: false });
      expect(existsSync(join(dir, "worker-0", "admin-token"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
