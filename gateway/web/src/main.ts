// Entry point: wires auth, the tab group (one stream for all tabs), the stream and the dashboard.
import { ApiError } from "./api.ts";
import { Dashboard } from "./app.ts";
import { currentSession, login, logout, takeTokenFromUrl } from "./auth.ts";
import { renderConn, type TabRole } from "./conn.ts";
import { isValidFilter } from "./filter.ts";
import { joinTabGroup, type TabMessage } from "./leader.ts";
import { EventLog } from "./log.ts";
import { rangeFromParams, RangePicker } from "./range.ts";
import { openStream, type Stream } from "./stream.ts";
import type { ConnState, StreamEvent } from "./types.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const urlToken = takeTokenFromUrl();
const params = new URL(location.href).searchParams;
// `?topic=` (repeatable) narrows the stream itself, e.g. for a token whose read filters do not cover `#`.
const streamTopics = params.getAll("topic");
// `?range=1h|24h|7d|30d|<n>h…` or `?from=&to=` (also the older `?hours=<n>`): what the charts show.
const initialRange = rangeFromParams(params);

const connEl = $<HTMLElement>("conn");
const statsEl = $<HTMLElement>("stats");
const loginForm = $<HTMLFormElement>("login");
const loginError = $<HTMLElement>("login-error");
const logoutButton = $<HTMLButtonElement>("logout");
const dashboard: Dashboard = new Dashboard(
  $<HTMLElement>("devices"),
  $<HTMLElement>("empty"),
  new EventLog($<HTMLOListElement>("log"), (id) => dashboard.label(id)),
  initialRange,
  { list: $<HTMLElement>("alerts"), empty: $<HTMLElement>("alerts-empty"), announcer: $<HTMLElement>("alerts-announce") },
);
new RangePicker($<HTMLElement>("range"), initialRange, (r) => dashboard.setRange(r));

let role: TabRole = "follower";
let conn: ConnState = { state: "connecting", missed: 0, reset: null, lastEventId: null };
let stream: Stream | null = null;
let malformed = 0;
let historyLoaded = false;

function showConn(s: ConnState): void {
  const wasLive = conn.state === "live";
  conn = s;
  renderConn(connEl, s, role);
  loginForm.hidden = s.state !== "unauthorized";
  if (s.state === "unauthorized") {
    logoutButton.hidden = true;
    sessionAsked++; // an answer still under way is out of date
    showWrite(null);
  } else if (s.state === "live" && !wasLive) void refreshSession();
  // History is fetched once the stream is live, so nothing falls between the REST answer and the stream.
  // A stream that never saw an event has no id to resume from: refill from REST after each reconnect.
  if (s.state === "live" && (!historyLoaded || (!wasLive && s.lastEventId === null))) void loadHistory();
}

async function loadHistory(): Promise<void> {
  historyLoaded = true;
  try {
    await dashboard.loadHistory();
  } catch (err) {
    historyLoaded = false;
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      showConn({ ...conn, state: "unauthorized" });
    } else {
      console.error("history load failed", err);
    }
  }
}

let sessionAsked = 0;

/**
 * "Sign out" only where signing in means something (token auth) and we are signed in; acknowledging, renaming
 * and commands only with the write right (a read-only token gets a hint instead).
 */
async function refreshSession(): Promise<void> {
  const asked = ++sessionAsked;
  const s = await currentSession();
  if (asked !== sessionAsked) return; // a later question overtook this one
  logoutButton.hidden = s === null || s.mode !== "tokens";
  // Not answered (e.g. the gateway briefly unreachable): keep what we knew; 401 ends in "unauthorized" anyway.
  if (s !== null) showWrite(s.write);
}

/** `body[data-write]`: true | false, empty while not known. */
function showWrite(write: boolean | null): void {
  document.body.dataset.write = write === null ? "" : String(write);
  dashboard.setWrite(write);
}

function updateStats(): void {
  statsEl.textContent = `${dashboard.eventsSeen} events${malformed > 0 ? `, ${malformed} malformed ignored` : ""}`;
  statsEl.dataset.malformed = String(malformed);
}

const group = joinTabGroup({
  name: streamTopics.join(",") || "#",
  onLeader() {
    role = "leader";
    startStream();
  },
  onFollower() {
    role = "follower";
    stream?.close();
    stream = null;
    renderConn(connEl, conn, role);
  },
  onMessage(msg: TabMessage) {
    if (msg.type === "event") {
      dashboard.handle(msg.event);
      updateStats();
    } else if (msg.type === "state" && role === "follower") {
      showConn(msg.state);
    } else if (msg.type === "logout") {
      location.reload(); // signed out in another tab: this one must not keep showing (or streaming) data
    } else if (msg.type === "hello" && role === "leader") {
      // A new tab, or a tab where someone just signed in: retry if we were locked out.
      if (conn.state === "unauthorized") startStream();
      else group.post({ type: "state", state: conn });
    }
  },
});

function startStream(): void {
  stream?.close();
  stream = openStream({
    topics: streamTopics,
    // A new leader resumes from the last id any tab saw, so the takeover has no gap.
    lastEventId: dashboard.lastEventId,
    onEvent(ev: StreamEvent) {
      dashboard.handle(ev);
      group.post({ type: "event", event: ev });
      updateStats();
    },
    onState(s: ConnState) {
      showConn(s);
      group.post({ type: "state", state: s });
    },
    onMalformed() {
      malformed++;
      updateStats();
    },
  });
}

async function signIn(token: string): Promise<void> {
  const result = await login(token);
  if (result !== "ok") {
    loginError.textContent = result === "denied" ? "That token was not accepted." : "The gateway could not be reached; try again.";
    showConn({ ...conn, state: "unauthorized" });
    return;
  }
  loginError.textContent = "";
  historyLoaded = false;
  if (role === "leader") startStream();
  else group.post({ type: "hello" });
  void loadHistory();
  void refreshSession();
}

loginForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $<HTMLInputElement>("token");
  const token = input.value.trim();
  if (token === "") return;
  input.value = "";
  void signIn(token);
});

logoutButton.addEventListener("click", () => {
  void logout().then(() => {
    group.post({ type: "logout" });
    location.reload();
  });
});
if (urlToken !== null) void signIn(urlToken);

const deviceInput = $<HTMLInputElement>("filter-device");
const topicInput = $<HTMLInputElement>("filter-topic");
const filterError = $<HTMLElement>("filter-error");
function applyFilter(): void {
  const topic = topicInput.value.trim() || "#";
  const valid = isValidFilter(topic);
  topicInput.setAttribute("aria-invalid", String(!valid));
  filterError.textContent = valid ? "" : "Not a valid MQTT filter: + and # must fill a whole level, # only at the end.";
  if (valid) dashboard.setFilter({ device: deviceInput.value, topic });
}
deviceInput.addEventListener("input", applyFilter);
topicInput.addEventListener("input", applyFilter);

setInterval(() => dashboard.tick(), 1000);
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => dashboard.restyle());
showConn(conn);
addEventListener("pagehide", () => {
  stream?.close();
  group.close();
});
// Back from the back/forward cache the page has left its tab group and has no stream: start over.
addEventListener("pageshow", (e) => {
  if (e.persisted) location.reload();
});
