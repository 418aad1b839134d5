/**
 * Token auth for the HTTP API (issue 4). A token comes as `Authorization: Bearer <t>`, an
 * `access_token` query parameter (EventSource cannot set headers) or the `sensors_token` cookie.
 * No valid token → 401 `unauthorized`. The middleware only identifies the caller; routes decide
 * 403 `forbidden` with {@link canRead} / {@link coversFilters} / the principal's `write` flag.
 *
 * @example
 * app.use("/api/*", auth({ mode: "tokens", tokens: [{ name: "ui", token: "…", read: ["sensors/#"], write: true }] }));
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { AuthConfig } from "../../config.ts";
import type { AppEnv, Principal } from "../../http/env.ts";
import { jsonError } from "../../http/errors.ts";
import { anyMatches, filterCovers } from "../../topics.ts";

export const TOKEN_COOKIE = "sensors_token";

const OPEN: Principal = { name: "open", read: undefined, write: true };

// Compare digests, not the tokens: equal lengths for timingSafeEqual, and no early exit that
// would leak how many leading characters of a guess were right.
const digest = (s: string): Buffer => createHash("sha256").update(s).digest();

function tokenFrom(header: string | undefined, query: string | undefined, cookie: string | undefined): string | undefined {
  const bearer = header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  return bearer ?? query ?? cookie;
}

export function auth(config: AuthConfig): MiddlewareHandler<AppEnv> {
  if (config.mode === "open") {
    return async (c, next) => {
      c.set("principal", OPEN);
      await next();
    };
  }
  const known = config.tokens.map((t) => ({
    digest: digest(t.token),
    principal: { name: t.name, read: t.read, write: t.write } satisfies Principal,
  }));
  return async (c, next) => {
    const presented = tokenFrom(c.req.header("authorization"), c.req.query("access_token"), getCookie(c, TOKEN_COOKIE));
    if (!presented) return jsonError(c, 401, "unauthorized", "a token is required (Bearer header, access_token or cookie)");
    const d = digest(presented);
    let match: Principal | undefined;
    for (const k of known) if (timingSafeEqual(k.digest, d)) match = k.principal;
    if (!match) return jsonError(c, 401, "unauthorized", "unknown token");
    c.set("principal", match);
    await next();
  };
}

/** May this caller read events on `topic`? */
export function canRead(p: Principal, topic: string): boolean {
  return p.read === undefined || anyMatches(p.read, topic);
}

/** Does the caller's read scope cover every requested filter? */
export function coversFilters(p: Principal, filters: string[]): boolean {
  if (p.read === undefined) return true;
  const read = p.read;
  return filters.every((f) => read.some((r) => filterCovers(r, f)));
}
