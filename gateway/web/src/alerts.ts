// Alerts on the page (docs/protocol.md "Alerts"): every alert the page has seen, from GET /api/alerts and from
// `alert` events (each carries the whole alert after a change), the active ones at the top of the page with an
// Acknowledge button, and each device's history on its card.
import { ApiError, getAlerts } from "./api.ts";
import { clock, duration } from "./devices.ts";
import type { AlertData, AlertSeverity } from "./types.ts";

/** How far an alert has come: a copy that has come less far is older (e.g. a REST answer overtaken by an event). */
const progress = (a: AlertData) => (a.state === "resolved" ? 2 : 0) + (a.ackedAt !== null ? 1 : 0);

/** Whether `a` is a newer copy of the alert than `old`. */
export function isNewerAlert(a: AlertData, old: AlertData | undefined): boolean {
  if (old === undefined) return true;
  if (a.updatedAt !== old.updatedAt) return a.updatedAt > old.updatedAt;
  return progress(a) > progress(old);
}

const SEVERITY_RANK: Record<AlertSeverity, number> = { critical: 0, warning: 1, info: 2 };

/** Every alert the page knows, by id; only a newer copy replaces one. */
export class AlertBook {
  private readonly byId = new Map<number, AlertData>();

  get(alertId: number): AlertData | undefined {
    return this.byId.get(alertId);
  }

  /** Returns true when the alert is new or changed. */
  upsert(a: AlertData): boolean {
    if (!isNewerAlert(a, this.byId.get(a.alertId))) return false;
    this.byId.set(a.alertId, a);
    return true;
  }

  /** Firing alerts: most severe first, then the newest. */
  firing(): AlertData[] {
    return [...this.byId.values()]
      .filter((a) => a.state === "firing")
      .sort((a, b) => SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] || b.firedAt - a.firedAt || b.alertId - a.alertId);
  }

  /** One device's alerts, newest first. */
  forDevice(deviceId: string): AlertData[] {
    return [...this.byId.values()].filter((a) => a.deviceId === deviceId).sort((a, b) => b.firedAt - a.firedAt || b.alertId - a.alertId);
  }
}

const ago = (now: number, t: number) => (now >= t ? `${duration(now - t)} ago` : "just now");

function ackText(a: AlertData): string {
  return a.ackedAt === null ? "" : `acknowledged by ${a.ackedBy ?? "someone"} at ${clock(a.ackedAt)}`;
}

function setAlertData(li: HTMLElement, a: AlertData): void {
  li.dataset.alertId = String(a.alertId);
  li.dataset.state = a.state;
  li.dataset.acked = String(a.ackedAt !== null);
  li.dataset.ackedBy = a.ackedBy ?? "";
  li.dataset.deviceId = a.deviceId;
  li.dataset.ruleId = a.ruleId;
  li.dataset.kind = a.kind;
  li.dataset.severity = a.severity;
}

interface ActiveItem {
  li: HTMLLIElement;
  what: HTMLElement;
  device: HTMLElement;
  since: HTMLElement;
  acked: HTMLElement;
  button: HTMLButtonElement;
  readOnly: HTMLElement;
  error: HTMLElement;
}

/**
 * The active (firing) alerts at the top of the page: what, which device (by name), since when, and an
 * Acknowledge button (POST /api/alerts/:id/ack), or who acknowledged it and when. The button needs the
 * session's write right (setWritable): without it a hint ("read-only token") stands in its place. Items are updated in place,
 * so the clock ticking never moves the keyboard focus; the list is not a live region (its "ago" texts change
 * every second): `announce` tells screen readers about alerts that fire or resolve. `#alerts` carries data-count; each
 * `li[data-alert-id]` data-state, data-acked, data-acked-by, data-device-id, data-rule-id, data-kind, data-severity.
 */
export class ActiveAlerts {
  private readonly items = new Map<number, ActiveItem>();
  /** The session's write right; null until GET api/session answered. */
  private writable: boolean | null = null;

  constructor(
    private readonly list: HTMLElement,
    private readonly empty: HTMLElement,
    private readonly announcer: HTMLElement,
    private readonly book: AlertBook,
    private readonly label: (deviceId: string) => string,
    private readonly ack: (alertId: number) => Promise<void>,
  ) {}

  /** A live change of an alert, for screen readers: fired or resolved (acknowledging says so at the button). */
  announce(a: AlertData, before: AlertData | undefined): void {
    const what = `${a.message || a.ruleName || a.ruleId} on ${this.label(a.deviceId)}`;
    if (a.state === "firing" && before?.state !== "firing") this.announcer.textContent = `Alert: ${what}`;
    else if (a.state === "resolved" && before?.state === "firing") this.announcer.textContent = `Resolved: ${what}`;
  }

  setWritable(write: boolean | null): void {
    this.writable = write;
    this.render();
  }

  render(now = Date.now()): void {
    const firing = this.book.firing();
    const keep = new Set(firing.map((a) => a.alertId));
    for (const [id, item] of this.items) {
      if (keep.has(id)) continue;
      item.li.remove();
      this.items.delete(id);
    }
    let prev: HTMLLIElement | null = null;
    for (const a of firing) {
      const item = this.items.get(a.alertId) ?? this.create(a.alertId);
      this.fill(item, a, now);
      // In order, moving only what is out of place (a moved button would lose its focus).
      const want: ChildNode | null = prev === null ? this.list.firstChild : prev.nextSibling;
      if (want !== item.li) this.list.insertBefore(item.li, want);
      prev = item.li;
    }
    this.list.dataset.count = String(firing.length);
    this.empty.hidden = firing.length > 0;
  }

  private create(alertId: number): ActiveItem {
    const li = document.createElement("li");
    li.className = "alert";
    li.innerHTML = `
      <span class="sev"></span>
      <span class="alert-body">
        <strong class="what"></strong>
        <span class="alert-device"></span>
        <span class="since"></span>
        <span class="acked"></span>
        <span class="error" role="alert"></span>
      </span>
      <button type="button" class="ack" hidden>Acknowledge</button>
      <span class="readonly-hint" title="This token may read alerts but not acknowledge them (no write right)" hidden>read-only token</span>`;
    const q = (s: string) => li.querySelector<HTMLElement>(s)!;
    const item: ActiveItem = {
      li,
      what: q(".what"),
      device: q(".alert-device"),
      since: q(".since"),
      acked: q(".acked"),
      button: q(".ack") as HTMLButtonElement,
      readOnly: q(".readonly-hint"),
      error: q(".error"),
    };
    item.button.addEventListener("click", () => {
      item.button.disabled = true;
      item.error.textContent = "";
      this.ack(alertId)
        .catch((err: unknown) => {
          item.error.textContent = `Not acknowledged: ${err instanceof ApiError ? `${err.message} (${err.code})` : String(err)}`;
        })
        .finally(() => (item.button.disabled = false));
    });
    this.items.set(alertId, item);
    return item;
  }

  private fill(item: ActiveItem, a: AlertData, now: number): void {
    setAlertData(item.li, a);
    const sev = item.li.querySelector<HTMLElement>(".sev")!;
    sev.textContent = a.severity;
    item.what.textContent = a.message || a.ruleName || a.ruleId;
    item.device.textContent = this.label(a.deviceId);
    item.since.textContent = `since ${clock(a.firedAt)} (${ago(now, a.firedAt)})`;
    item.since.title = new Date(a.firedAt).toLocaleString();
    item.acked.textContent = ackText(a);
    item.button.hidden = a.ackedAt !== null || this.writable !== true;
    item.readOnly.hidden = a.ackedAt !== null || this.writable !== false;
    item.button.setAttribute("aria-label", `Acknowledge: ${item.what.textContent} on ${item.device.textContent}`);
  }
}

const HISTORY_LIMIT = 50;

/**
 * One device's alerts on its card, newest first, in a collapsible list: loaded from
 * GET /api/alerts?state=all&device=<id> when first opened, kept current by `alert` events.
 * `.alert-history` carries data-firing and data-loaded; each `li[data-alert-id]` the same attributes as the
 * active list.
 */
export class DeviceAlertHistory {
  private readonly details: HTMLDetailsElement;
  private readonly summary: HTMLElement;
  private readonly list: HTMLUListElement;
  private readonly note: HTMLElement;
  private loaded = false;

  constructor(
    slot: HTMLElement,
    private readonly deviceId: string,
    private readonly book: AlertBook,
    /** Called after a load added alerts to the book (the active list may change too). */
    private readonly onLoaded: () => void,
  ) {
    slot.innerHTML = `
      <details class="alert-history" data-loaded="false">
        <summary>Alert history</summary>
        <p class="note"></p>
        <ul class="alert-history-list"></ul>
      </details>`;
    this.details = slot.querySelector("details")!;
    this.summary = slot.querySelector("summary")!;
    this.list = slot.querySelector("ul")!;
    this.note = slot.querySelector(".note")!;
    this.details.addEventListener("toggle", () => {
      if (this.details.open && !this.loaded) void this.load();
    });
    this.render();
  }

  async load(): Promise<void> {
    this.note.textContent = "Loading…";
    try {
      for (const a of await getAlerts({ state: "all", device: this.deviceId, limit: HISTORY_LIMIT })) this.book.upsert(a);
      this.loaded = true;
      this.details.dataset.loaded = "true";
      this.onLoaded();
    } catch (err) {
      this.note.textContent = `Could not load the alert history: ${err instanceof ApiError ? err.message : String(err)}`;
      return;
    }
    this.render();
  }

  render(): void {
    const all = this.book.forDevice(this.deviceId);
    const firing = all.filter((a) => a.state === "firing").length;
    this.summary.textContent = firing > 0 ? `Alert history · ${firing} firing` : "Alert history";
    this.details.dataset.firing = String(firing);
    if (!this.details.open && !this.loaded) return;
    if (this.loaded) this.note.textContent = all.length === 0 ? "No alerts for this device." : "";
    const items = all.slice(0, HISTORY_LIMIT).map((a) => {
      const li = document.createElement("li");
      setAlertData(li, a);
      const parts = [
        `${a.state === "firing" ? "firing" : "resolved"} · ${a.message || a.ruleName || a.ruleId}`,
        `from ${clock(a.firedAt)}`,
        a.resolvedAt === null ? "" : `to ${clock(a.resolvedAt)}`,
        ackText(a),
      ].filter((s) => s !== "");
      li.textContent = parts.join(" · ");
      return li;
    });
    this.list.replaceChildren(...items);
  }
}
