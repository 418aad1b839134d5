// The time range the charts show: a duration back from now that follows the clock (1 h, 24 h, 7 d, 30 d, or
// any `?range=<n>m|h|d`), or a fixed custom from/to. Read from and written to the page URL, so a reload or a
// shared link shows the same range.

export type Range = { kind: "relative"; key: string; ms: number } | { kind: "custom"; from: number; to: number };

export const PRESETS = [
  { key: "1h", label: "1 h" },
  { key: "24h", label: "24 h" },
  { key: "7d", label: "7 d" },
  { key: "30d", label: "30 d" },
] as const;

export const DEFAULT_RANGE_KEY = "24h";
const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** Longest range: as far as the 1-hour summaries reach (2 years). */
const MAX_MS = 2 * 366 * 86_400_000;

/** "90m", "6h", "7d" → a relative range; anything else → null. */
export function parseRangeKey(key: string): Range | null {
  const m = /^(\d{1,6})(m|h|d)$/.exec(key.trim());
  if (m === null) return null;
  const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  return ms > 0 && ms <= MAX_MS ? { kind: "relative", key: `${Number(m[1])}${m[2]}`, ms } : null;
}

/** A moment from the URL: ms since epoch, or anything Date parses (ISO 8601, "2026-01-12T08:00"). */
function parseMoment(v: string | null): number | null {
  if (v === null || v.trim() === "") return null;
  const n = /^\d+$/.test(v.trim()) ? Number(v) : Date.parse(v);
  return Number.isFinite(n) ? n : null;
}

/**
 * The range a URL asks for: `?range=1h|24h|7d|30d|<n>m|<n>h|<n>d`, or `?from=&to=` (ms or ISO 8601; `to`
 * defaults to now), or the older `?hours=<n>`; default 24 h.
 */
export function rangeFromParams(p: URLSearchParams, now = Date.now()): Range {
  const from = parseMoment(p.get("from"));
  if (from !== null) {
    const to = parseMoment(p.get("to")) ?? now;
    if (to > from) return { kind: "custom", from, to };
  }
  const byKey = parseRangeKey(p.get("range") ?? "");
  if (byKey !== null) return byKey;
  const hours = Number(p.get("hours"));
  if (p.has("hours") && Number.isFinite(hours) && hours > 0) {
    const byHours = Number.isInteger(hours) ? parseRangeKey(`${hours}h`) : parseRangeKey(`${Math.round(hours * 60)}m`);
    if (byHours !== null) return byHours;
  }
  return parseRangeKey(DEFAULT_RANGE_KEY)!;
}

/** Writes the range into `url` (`range=`, or `from`/`to` as ISO 8601), dropping `hours`. */
export function rangeToUrl(r: Range, url: URL): URL {
  for (const k of ["range", "from", "to", "hours"]) url.searchParams.delete(k);
  if (r.kind === "relative") url.searchParams.set("range", r.key);
  else {
    url.searchParams.set("from", new Date(r.from).toISOString());
    url.searchParams.set("to", new Date(r.to).toISOString());
  }
  return url;
}

/** The key shown in data-range: the preset or duration ("1h", "6h"…), or "custom". */
export const rangeKey = (r: Range): string => (r.kind === "relative" ? r.key : "custom");

/** [from, to] in ms now; `live`: `to` follows the clock. */
export function rangeWindow(r: Range, now = Date.now()): { from: number; to: number; live: boolean } {
  return r.kind === "relative" ? { from: now - r.ms, to: now, live: true } : { from: r.from, to: r.to, live: false };
}

/** "YYYY-MM-DDTHH:mm" in local time, the value of an <input type="datetime-local">. */
function localInput(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/**
 * The range picker: radio buttons for the presets (and for a duration the URL asked for), "Custom" with
 * from/to inputs. `#range` carries data-range (the key) and data-from / data-to (ms, the window when chosen).
 */
export class RangePicker {
  private range: Range;
  private readonly custom: HTMLElement;
  private readonly fromInput: HTMLInputElement;
  private readonly toInput: HTMLInputElement;
  private readonly error: HTMLElement;

  constructor(
    private readonly root: HTMLElement,
    initial: Range,
    private readonly onChange: (r: Range) => void,
  ) {
    this.range = initial;
    const keys: { key: string; label: string }[] = [...PRESETS];
    if (initial.kind === "relative" && !keys.some((k) => k.key === initial.key)) {
      keys.push({ key: initial.key, label: initial.key.replace(/(\d)([mhd])$/, "$1 $2") });
    }
    root.innerHTML = `
      <fieldset class="range-choices">
        <legend>Time range</legend>
        ${keys
          .map((k) => `<label class="range-choice"><input type="radio" name="range" value="${k.key}"> ${k.label}</label>`)
          .join("")}
        <label class="range-choice"><input type="radio" name="range" value="custom"> Custom</label>
      </fieldset>
      <form class="range-custom" novalidate hidden>
        <div><label for="range-from">From</label><input id="range-from" type="datetime-local" required></div>
        <div><label for="range-to">To</label><input id="range-to" type="datetime-local" required></div>
        <button type="submit">Show</button>
        <p class="error" role="alert"></p>
      </form>`;
    this.custom = root.querySelector<HTMLElement>(".range-custom")!;
    this.fromInput = root.querySelector<HTMLInputElement>("#range-from")!;
    this.toInput = root.querySelector<HTMLInputElement>("#range-to")!;
    this.error = root.querySelector<HTMLElement>(".range-custom .error")!;
    for (const input of root.querySelectorAll<HTMLInputElement>('input[name="range"]')) {
      input.addEventListener("change", () => {
        if (!input.checked) return;
        if (input.value === "custom") {
          const w = rangeWindow(this.range);
          this.fromInput.value ||= localInput(w.from);
          this.toInput.value ||= localInput(w.to);
          this.custom.hidden = false;
          this.fromInput.focus();
          return;
        }
        this.custom.hidden = true;
        this.set(parseRangeKey(input.value)!);
      });
    }
    this.custom.addEventListener("submit", (e) => {
      e.preventDefault();
      const from = new Date(this.fromInput.value).getTime();
      const to = new Date(this.toInput.value).getTime();
      if (!Number.isFinite(from) || !Number.isFinite(to)) {
        this.error.textContent = "Enter both a start and an end.";
        return;
      }
      if (to <= from) {
        this.error.textContent = "The end must be after the start.";
        return;
      }
      this.error.textContent = "";
      this.set({ kind: "custom", from, to });
    });
    this.render();
  }

  get current(): Range {
    return this.range;
  }

  private set(r: Range): void {
    this.range = r;
    this.render();
    history.replaceState(history.state, "", rangeToUrl(r, new URL(location.href)));
    this.onChange(r);
  }

  private render(): void {
    const key = rangeKey(this.range);
    for (const input of this.root.querySelectorAll<HTMLInputElement>('input[name="range"]')) input.checked = input.value === key;
    if (this.range.kind === "custom") {
      this.custom.hidden = false;
      this.fromInput.value = localInput(this.range.from);
      this.toInput.value = localInput(this.range.to);
    }
    const w = rangeWindow(this.range);
    this.root.dataset.range = key;
    this.root.dataset.from = String(Math.round(w.from));
    this.root.dataset.to = String(Math.round(w.to));
  }
}
