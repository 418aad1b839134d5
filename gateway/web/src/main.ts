// Entry point: wires auth, the tab group (one stream for all tabs), the stream and the dashboard.
import { ApiError } from "./api.ts";
import { Dashboard } from "./app.ts";
import { adoptTokenFromUrl, setToken } from "./auth.ts";
import { renderConn, type TabRole } from "./conn.ts";
import { isValidFilter } from "./filter.ts";
import { joinTabGroup, type TabMessage } from "./leader.ts";
import { EventLog } from "./log.ts";
import { openStream, type Stream } from "./stream.ts";
import type { ConnState, StreamEvent } from "./types.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

adoptTokenFromUrl();
const params = new URL(location.href).searchParams;
// `?topic=` (repeatable) narrows the stream itself, e.g. for a token whose read filters do not cover `#`.
const streamTopics = params.getAll("topic");
const historyHours = Number(params.get("hours") ?? "6");

const connEl = $<HTMLElement>("conn");
const statsEl = $<HTMLElement>("stats");
const loginForm = $<HTMLFormElement>("login");
const dashboard = new Dashboard(
  $<HTMLElement>("devices"),
  $<HTMLElement>("empty"),
  new EventLog($<HTMLOListElement>("log")),
  (Number.isFinite(historyHours) && historyHours > 0 ? historyHours : 6) * 3600_000,
);

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

loginForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $<HTMLInputElement>("token");
  const token = input.value.trim();
  if (token === "") return;
  setToken(token);
  input.value = "";
  historyLoaded = false;
  if (role === "leader") startStream();
  else group.post({ type: "hello" });
  void loadHistory();
});

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
