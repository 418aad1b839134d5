// Auth for the page (docs/protocol.md "Auth"). The gateway keeps the token in the `sensors_token` cookie,
// HttpOnly, so no script on the page can read it: the page signs in with POST api/session (the gateway sets
// the cookie) and out with DELETE api/session. The login URL `/?token=…` the gateway prints is turned into the
// cookie by the gateway itself, which redirects to the page without the token.
// Only when the browser refuses the cookie does the page keep the token in memory, for this page alone: as a
// Bearer header on REST calls and `access_token` on the stream URL (EventSource cannot set headers).
import { apiUrl } from "./api.ts";

let memoryToken: string | null = null;

export type LoginResult = "ok" | "denied" | "error";

/**
 * Who the gateway says we are: `mode` "open" (no login) or "tokens"; `read` the token's read filters (null:
 * everything); `write` whether it may change anything (acknowledge, rename, commands; always true in open mode).
 */
export interface Session {
  mode: "open" | "tokens";
  name: string;
  read: string[] | null;
  write: boolean;
}

async function session(headers: HeadersInit = {}): Promise<Session | null> {
  const res = await fetch(apiUrl("api/session"), { headers, credentials: "same-origin", cache: "no-store" });
  return res.ok ? ((await res.json()) as Session) : null;
}

/** The session of the cookie (or of the in-memory token), null when not signed in or unreachable. */
export async function currentSession(): Promise<Session | null> {
  try {
    return await session(memoryToken === null ? {} : { Authorization: `Bearer ${memoryToken}` });
  } catch {
    return null;
  }
}

/** Signs in: the gateway checks the token and sets the cookie. */
export async function login(token: string): Promise<LoginResult> {
  let res: Response;
  try {
    res = await fetch(apiUrl("api/session"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token }),
      credentials: "same-origin",
    });
  } catch {
    return "error";
  }
  if (res.status === 401 || res.status === 400) return "denied";
  if (!res.ok) return "error";
  // Did the cookie stick? Ask without any token of our own; keep the token in memory only if it did not.
  memoryToken = null;
  const viaCookie = await session().catch(() => null);
  if (viaCookie === null) memoryToken = token;
  return "ok";
}

/** Signs out: the gateway removes the cookie. */
export async function logout(): Promise<void> {
  memoryToken = null;
  await fetch(apiUrl("api/session"), { method: "DELETE", credentials: "same-origin" }).catch(() => undefined);
}

/**
 * A token left in the address bar (`?token=` or `?access_token=`: normally the gateway has already taken it
 * out with a redirect) is removed from the URL at once, so it does not stay in history or a copied link, and
 * used to sign in.
 */
export function takeTokenFromUrl(): string | null {
  const url = new URL(location.href);
  const token = url.searchParams.get("token") ?? url.searchParams.get("access_token");
  if (token === null) return null;
  url.searchParams.delete("token");
  url.searchParams.delete("access_token");
  history.replaceState(history.state, "", url);
  return token === "" ? null : token;
}

/** The token to send as a Bearer header: only when the cookie did not stick. */
export function currentToken(): string | null {
  return memoryToken;
}

/** Only when the cookie did not stick: the token must then travel in the stream URL. */
export function tokenForQuery(): string | null {
  return memoryToken;
}
