import type { ConnState } from "./types.ts";

export type TabRole = "leader" | "follower";

/**
 * The connection indicator. It is an aria-live status region, so the text changes only when the state does,
 * not on every event. data-conn-state, data-missed, data-reset and data-role are for tests and tools.
 */
export function renderConn(el: HTMLElement, s: ConnState, role: TabRole): void {
  let text: string;
  switch (s.state) {
    case "connecting":
      text = "Connecting…";
      break;
    case "reconnecting":
      text = "Reconnecting… (will resume where it stopped)";
      break;
    case "unauthorized":
      text = "Not signed in: enter an access token";
      break;
    case "live":
      text = "Live";
      if (s.missed > 0) text += ` · resumed after ${s.missed} missed event${s.missed === 1 ? "" : "s"}`;
      if (s.reset !== null) text += ` · history reset: events before #${s.reset.earliestId} are gone, charts reloaded`;
  }
  if (role === "follower") text += " (stream shared by another tab)";
  if (el.textContent !== text) el.textContent = text;
  el.dataset.connState = s.state;
  el.dataset.missed = String(s.missed);
  el.dataset.reset = s.reset === null ? "" : String(s.reset.earliestId);
  el.dataset.role = role;
}
