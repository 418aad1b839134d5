/**
 * HTTP auth (docs/protocol.md "Auth"). A token comes as `Authorization: Bearer <t>`, an `access_token` query
 * parameter (EventSource cannot set headers) or the `sensors_token` cookie. No valid token → 401
 * `unauthorized`. The middleware only identifies the caller; routes decide 403 `forbidden` with
 * {@link canRead} / {@link coversFilters} / the principal's `write` flag.
 *
 * Also here, because they are the same concern:
 * - the admin token kept in `<dataDir>/admin-token` ({@link loadAdminToken}, {@link resolveAuth});
 * - the session cookie: `POST /api/session`, `GET /api/session`, `DELETE /api/session` ({@link sessionRoutes}) and
 *   the login URL `/?token=…` ({@link loginFromUrl});
 * - refusing state-changing requests from other origins ({@link sameOriginWrites}).
 *
 * @example
 * const authn = createAuthenticator({ mode: "tokens", tokens: [{ name: "ui", token: "…", read: ["sensors/#"], write: true }] });
 * app.use("*", sameOriginWrites());
 * app.route("/api/session", sessionRoutes(authn));
 * app.use("/api/*", authn.middleware);
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, linkSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { getCookie, setCookie } from "hono/cookie";
import { ErrBadConfig, type AuthConfig, type TokenConfig } from "../config.ts";
import { anyMatches, filterCovers } from "../protocol/topic-filter.ts";
import type { AppEnv, Principal } from "./env.ts";
import { ApiError } from "./errors.ts";

export const TOKEN_COOKIE = "sensors_token";
/** How long a browser stays signed in (the token itself does not expire). */
export const COOKIE_MAX_AGE_S = 30 * 24 * 3600;
/** The admin token's file in the data directory. */
export const ADMIN_TOKEN_FILE = "admin-token";

/** What the HTTP app needs: open, or the full list of accepted tokens (the admin token included). */
export type HttpAuth = { mode: "open" } | { mode: "tokens"; tokens: readonly TokenConfig[] };

const OPEN: Principal = { name: "open", read: undefined, write: true };

// Compare digests, not the tokens: equal lengths for timingSafeEqual, and no early exit that
// would leak how many leading characters of a guess were right.
const digest = (s: string): Buffer => createHash("sha256").update(s).digest();

const BEARER = /^Bearer\s+(\S+)\s*$/i;

function tokenFrom(header: string | undefined, query: string | undefined, cookie: string | undefined): string | undefined {
  const bearer = header?.match(BEARER)?.[1];
  return bearer ?? query ?? cookie;
}

export interface Authenticator {
  readonly mode: HttpAuth["mode"];
  /** The principal a token stands for, or undefined. Compares against every known token in constant time. */
  verify(token: string): Principal | undefined;
  /** Sets `principal` or throws 401 `unauthorized`. */
  readonly middleware: MiddlewareHandler<AppEnv>;
}

export function createAuthenticator(config: HttpAuth): Authenticator {
  if (config.mode === "open") {
    return {
      mode: "open",
      verify: () => OPEN,
      middleware: async (c, next) => {
        c.set("principal", OPEN);
        await next();
      },
    };
  }
  const known = config.tokens.map((t) => ({
    digest: digest(t.token),
    principal: { name: t.name, read: t.read, write: t.write } satisfies Principal,
  }));
  const verify = (presented: string): Principal | undefined => {
    const d = digest(presented);
    let match: Principal | undefined;
    for (const k of known) if (timingSafeEqual(k.digest, d)) match = k.principal;
    return match;
  };
  return {
    mode: "tokens",
    verify,
    middleware: async (c, next) => {
      const presented = tokenFrom(c.req.header("authorization"), c.req.query("access_token"), getCookie(c, TOKEN_COOKIE));
      if (!presented) throw new ApiError(401, "unauthorized", "a token is required (Bearer header, access_token or cookie)");
      const match = verify(presented);
      if (!match) throw new ApiError(401, "unauthorized", "unknown token");
      c.set("principal", match);
      await next();
    },
  };
}

/** The auth middleware alone. */
export function auth(config: HttpAuth): MiddlewareHandler<AppEnv> {
  return createAuthenticator(config).middleware;
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

// ---------------------------------------------------------------------------------------------------------
// The admin token

export interface AdminToken {
  token: string;
  /** `<dataDir>/admin-token`. */
  file: string;
  /** True on the start that wrote the file. */
  created: boolean;
  /** True when the file was readable by others and its mode was set back to 0600. */
  madePrivate: boolean;
}

/**
 * The admin token (full read and write) from `<dataDir>/admin-token` (or `file`), created with mode 0600 when the
 * file does not exist. Delete the file (and restart) to rotate it; write your own (one line, at least 16
 * characters) to choose it. A file that does not hold a usable token is a configuration error.
 */
export function loadAdminToken(dataDir: string, file = join(dataDir, ADMIN_TOKEN_FILE)): AdminToken {
  mkdirSync(dirname(file), { recursive: true });
  let created = false;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    const token = randomBytes(32).toString("base64url");
    // Written whole under another name, then linked: the token file never exists half-written, and of two
    // gateways starting at once on one data dir only one token wins (link fails with EEXIST).
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    writeFileSync(tmp, `${token}\n`, { mode: 0o600, flag: "wx" });
    try {
      linkSync(tmp, file);
      created = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    } finally {
      unlinkSync(tmp);
    }
    text = readFileSync(file, "utf8");
  }
  const token = text.trim();
  if (!/^\S{16,}$/.test(token)) {
    throw new ErrBadConfig([
      `${file}: expected one line holding a token of at least 16 characters, without spaces; ` +
        `delete the file and restart to get a new one`,
    ]);
  }
  let madePrivate = false;
  if ((statSync(file).mode & 0o077) !== 0) {
    chmodSync(file, 0o600);
    madePrivate = true;
  }
  return { token, file, created, madePrivate };
}

/**
 * Replaces the admin token file's content (Redis mode: every gateway takes the one the first gateway shared, so a
 * login works on all of them). Written whole under another name, then renamed over the file, mode 0600.
 */
export function replaceAdminToken(file: string, token: string): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, `${token}\n`, { mode: 0o600, flag: "wx" });
  renameSync(tmp, file);
}

/** The configured tokens plus, unless `adminToken: false`, the admin token (created on the first start). */
export function resolveAuth(config: AuthConfig, dataDir: string): { http: HttpAuth; admin: AdminToken | undefined } {
  if (config.mode === "open") return { http: { mode: "open" }, admin: undefined };
  const admin = config.adminToken ? loadAdminToken(dataDir, config.adminTokenFile) : undefined;
  const tokens: TokenConfig[] = [...config.tokens];
  if (admin) tokens.unshift({ name: "admin", token: admin.token, read: ["#"], write: true });
  return { http: { mode: "tokens", tokens }, admin };
}

// ---------------------------------------------------------------------------------------------------------
// The session cookie

/**
 * Did the browser reach us over HTTPS? Directly, or through a proxy that says so (nginx:
 * `X-Forwarded-Proto $scheme`). The header is trusted for one thing only, adding `Secure`: a client that lies
 * about it merely keeps its own cookie off plain HTTP.
 */
function overHttps(c: Context): boolean {
  if (new URL(c.req.url).protocol === "https:") return true;
  return c.req.header("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase() === "https";
}

/**
 * HttpOnly: page scripts (and anything injected into them) cannot read it. SameSite=Strict: the page's own
 * fetch and EventSource requests are same-site, so they carry it; no request started by another site does
 * (Lax would still send it on cross-site top-level GET navigations, which the API has no use for).
 * Secure when the request came over HTTPS.
 */
function setSessionCookie(c: Context, token: string, maxAge = COOKIE_MAX_AGE_S): void {
  setCookie(c, TOKEN_COOKIE, token, { path: "/", httpOnly: true, sameSite: "Strict", secure: overHttps(c), maxAge });
}

const principalBody = (mode: HttpAuth["mode"], p: Principal) => ({ mode, name: p.name, read: p.read ?? null, write: p.write });

/**
 * Mounted at `/api/session`, before the API's auth middleware:
 * - `POST` `{"token":"…"}` → 200 `{"mode","name","read","write"}` and the cookie; 401 `unauthorized` for an
 *   unknown token (open mode: 200, no cookie);
 * - `GET` → who the request's token (or cookie) is, 401 without one;
 * - `DELETE` → 204, the cookie removed (logout; works also when the cookie's token is no longer valid).
 */
export function sessionRoutes(authn: Authenticator): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use("*", async (c, next) => {
    await next();
    c.header("Cache-Control", "no-store");
  });
  app.post(
    "/",
    bodyLimit({
      maxSize: 4096,
      onError: () => {
        throw new ApiError(413, "body_too_large", "session bodies are at most 4096 bytes");
      },
    }),
    async (c) => {
      let token: unknown;
      try {
        token = (JSON.parse(await c.req.text()) as { token?: unknown } | null)?.token;
      } catch {
        throw new ApiError(400, "invalid_json", 'the body must be JSON: {"token":"…"}');
      }
      if (typeof token !== "string" || token === "") throw new ApiError(400, "invalid_session", 'the body must be {"token":"…"}');
      const p = authn.verify(token);
      if (!p) throw new ApiError(401, "unauthorized", "unknown token");
      if (authn.mode === "tokens") setSessionCookie(c, token);
      return c.json(principalBody(authn.mode, p));
    },
  );
  app.get("/", authn.middleware, (c) => c.json(principalBody(authn.mode, c.get("principal"))));
  app.delete("/", (c) => {
    setSessionCookie(c, "", 0);
    return c.body(null, 204);
  });
  return app;
}

/**
 * `GET /?token=…` (the login URL the gateway prints at start; `access_token` works too): a valid token becomes
 * the session cookie, and a 303 to the same page without the token takes it out of the address bar (and out
 * of the Referer of anything the page loads). An unknown token sets nothing: the page then shows its login form.
 */
export function loginFromUrl(authn: Authenticator): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = c.req.query("token") ?? c.req.query("access_token");
    if (token === undefined) return next();
    if (authn.mode === "tokens" && token !== "" && authn.verify(token)) setSessionCookie(c, token);
    const url = new URL(c.req.url);
    url.searchParams.delete("token");
    url.searchParams.delete("access_token");
    // Relative, so it also works behind a proxy that serves the dashboard under a sub-path.
    const location = (url.pathname.split("/").pop() || "./") + url.search;
    c.header("Cache-Control", "no-store");
    c.header("Referrer-Policy", "no-referrer");
    return c.redirect(location, 303);
  };
}

// ---------------------------------------------------------------------------------------------------------
// Cross-origin writes (CSRF)

const SAFE_METHOD = /^(GET|HEAD|OPTIONS)$/;

/** host[:port] of `origin` and of the Host header, default ports dropped alike; undefined when unparsable. */
function sameHost(origin: string, requestHost: string): boolean {
  try {
    const o = new URL(origin);
    return o.host === new URL(`${o.protocol}//${requestHost}`).host;
  } catch {
    return false;
  }
}

/**
 * Refuses POST/PUT/PATCH/DELETE from another origin with 403 `cross_origin`, in every auth mode (in open mode on
 * loopback any web page could otherwise send commands through the browser).
 * - `Authorization: Bearer` and no cookie: a script or curl; browsers never add that header to a cross-origin
 *   request without a CORS preflight, which this gateway does not grant. Allowed.
 * - `Sec-Fetch-Site` present (every current browser): only `same-origin` passes.
 * - else `Origin` present: its host must be the request's own host (`Host`, or `:authority` over HTTP/2, which
 *   has no Host header; both end up in the request URL).
 * - neither: not a browser (browsers send Origin with every cross-origin POST). Allowed.
 *
 * Not Hono's `csrf()`: it checks only form-like content types (the commands route reads any body as JSON, so a
 * text/plain form post must be refused too), has no Bearer rule, and answers plain text, not the API's JSON.
 */
export function sameOriginWrites(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (SAFE_METHOD.test(c.req.method)) return next();
    const bearer = BEARER.test(c.req.header("authorization") ?? "");
    if (bearer && getCookie(c, TOKEN_COOKIE) === undefined) return next();
    const site = c.req.header("sec-fetch-site");
    if (site !== undefined) {
      if (site === "same-origin") return next();
      throw new ApiError(403, "cross_origin", `${c.req.method} from another origin is refused (Sec-Fetch-Site: ${site})`);
    }
    const origin = c.req.header("origin");
    if (origin === undefined || sameHost(origin, new URL(c.req.url).host)) return next();
    throw new ApiError(403, "cross_origin", `${c.req.method} from another origin is refused (Origin does not match Host)`);
  };
}
