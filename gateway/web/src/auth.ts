// Auth for the page (docs/protocol.md "Auth"): the gateway accepts a Bearer header, an `access_token`
// query parameter or the `sensors_token` cookie. EventSource cannot set headers, so the cookie is the
// main carrier; the query parameter is the fallback when the browser refuses cookies.

const COOKIE = "sensors_token";
const MAX_AGE_S = 30 * 24 * 3600;

let memoryToken: string | null = null;

function readCookie(): string | null {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === COOKIE) return decodeURIComponent(rest.join("="));
  }
  return null;
}

/** Stores the token for this origin (all tabs) and for this page. */
export function setToken(token: string): void {
  memoryToken = token;
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${COOKIE}=${encodeURIComponent(token)}; Path=/; Max-Age=${MAX_AGE_S}; SameSite=Strict${secure}`;
}

/**
 * Moves `?access_token=` from the address bar into the cookie, and removes it from the URL so it does not
 * stay in history or get shared with a copied link.
 */
export function adoptTokenFromUrl(): void {
  const url = new URL(location.href);
  const token = url.searchParams.get("access_token");
  if (token === null || token === "") return;
  setToken(token);
  url.searchParams.delete("access_token");
  history.replaceState(history.state, "", url);
}

/** The token to send as a Bearer header, if the page knows one. */
export function currentToken(): string | null {
  return memoryToken ?? readCookie();
}

/** Only when the cookie did not stick: the token must then travel in the stream URL. */
export function tokenForQuery(): string | null {
  return memoryToken !== null && readCookie() !== memoryToken ? memoryToken : null;
}
