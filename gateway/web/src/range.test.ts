// The page's pure rules, without a browser: which range a URL asks for, how time labels read, which copy of
// an alert is the newer one. The browser tests (test/browser/range-alerts.test.ts) cover them on the page.
import { describe, expect, it } from "vitest";
import { isNewerAlert } from "./alerts.ts";
import { parseRangeKey, rangeFromParams, rangeKey, rangeToUrl, rangeWindow, type Range } from "./range.ts";
import { formatTick, tickKind } from "./timeaxis.ts";
import type { AlertData } from "./types.ts";

const H = 3_600_000;
const D = 24 * H;
const q = (s: string) => new URLSearchParams(s);
const span = (r: Range) => rangeWindow(r, 0).to - rangeWindow(r, 0).from;

describe("range from the URL", () => {
  const now = Date.UTC(2026, 0, 12, 8, 0);

  it("reads presets and durations, defaulting to 24 h", () => {
    expect(rangeFromParams(q(""), now)).toEqual({ kind: "relative", key: "24h", ms: D });
    expect(rangeFromParams(q("range=1h"), now)).toEqual({ kind: "relative", key: "1h", ms: H });
    expect(rangeFromParams(q("range=30d"), now)).toEqual({ kind: "relative", key: "30d", ms: 30 * D });
    expect(rangeFromParams(q("range=90m"), now)).toEqual({ kind: "relative", key: "90m", ms: 90 * 60_000 });
    for (const bad of ["range=0h", "range=1y", "range=-1h", "range=abc", "range=99999d"]) {
      expect(span(rangeFromParams(q(bad), now)), bad).toBe(D);
    }
  });

  it("keeps the older ?hours= working", () => {
    expect(rangeFromParams(q("hours=6"), now)).toEqual({ kind: "relative", key: "6h", ms: 6 * H });
    expect(rangeFromParams(q("hours=1.5"), now)).toEqual({ kind: "relative", key: "90m", ms: 1.5 * H });
    expect(span(rangeFromParams(q("hours=0"), now))).toBe(D);
    expect(span(rangeFromParams(q("range=7d&hours=6"), now))).toBe(7 * D); // range wins
  });

  it("reads a custom from/to in ms or ISO 8601; to defaults to now; an empty range falls back", () => {
    expect(rangeFromParams(q(`from=${now - D}&to=${now}`), now)).toEqual({ kind: "custom", from: now - D, to: now });
    expect(rangeFromParams(q("from=2026-01-10T00:00:00Z&to=2026-01-11T00:00:00Z"), now)).toEqual({
      kind: "custom",
      from: Date.UTC(2026, 0, 10),
      to: Date.UTC(2026, 0, 11),
    });
    expect(rangeFromParams(q(`from=${now - H}`), now)).toEqual({ kind: "custom", from: now - H, to: now });
    expect(rangeFromParams(q(`from=${now}&to=${now - H}`), now).kind).toBe("relative");
  });

  it("writes back what it reads", () => {
    for (const s of ["range=7d", "from=2026-01-10T00:00:00.000Z&to=2026-01-11T00:00:00.000Z"]) {
      const r = rangeFromParams(q(s), now);
      const url = rangeToUrl(r, new URL("http://gw/?topic=a%2F%23&hours=3"));
      expect(url.searchParams.get("topic")).toBe("a/#");
      expect(url.searchParams.has("hours")).toBe(false);
      expect(rangeFromParams(url.searchParams, now)).toEqual(r);
    }
    expect(rangeKey(parseRangeKey("24h")!)).toBe("24h");
    expect(rangeWindow(parseRangeKey("1h")!, now)).toEqual({ from: now - H, to: now, live: true });
  });
});

describe("time axis labels", () => {
  it("times within a day, dates with times beyond, dates alone for ticks a day or more apart", () => {
    expect(tickKind(H, 10 * 60_000)).toBe("time");
    expect(tickKind(5 * 60_000, 30_000)).toBe("time-s");
    expect(tickKind(D, 4 * H)).toBe("time");
    expect(tickKind(7 * D, 12 * H)).toBe("datetime");
    expect(tickKind(30 * D, 5 * D)).toBe("date");
    expect(tickKind(2 * 365 * D, 90 * D)).toBe("month");
  });

  it("prints 24-hour times, and the day instead of 00:00", () => {
    const t = new Date(2026, 0, 12, 8, 5, 9).getTime();
    expect(formatTick(t, "time")).toBe("08:05");
    expect(formatTick(t, "time-s")).toBe("08:05:09");
    expect(formatTick(new Date(2026, 0, 12).getTime(), "time")).toBe(formatTick(t, "date"));
    expect(formatTick(t, "datetime")).toBe(`${formatTick(t, "date")} 08:05`);
  });
});

describe("alert copies", () => {
  const a: AlertData = {
    alertId: 1,
    ruleId: "hot",
    ruleName: "Too hot",
    kind: "threshold",
    severity: "warning",
    deviceId: "d1",
    topic: "sensors/d1/telemetry",
    metric: "temperature",
    state: "firing",
    message: "temperature 31 above 30",
    value: 31,
    threshold: 30,
    firedAt: 1000,
    resolvedAt: null,
    ackedAt: null,
    ackedBy: null,
    updatedAt: 1000,
  };

  it("the later update wins; at the same time, the one that came further", () => {
    expect(isNewerAlert(a, undefined)).toBe(true);
    expect(isNewerAlert({ ...a, updatedAt: 2000, ackedAt: 2000, ackedBy: "admin" }, a)).toBe(true);
    expect(isNewerAlert(a, { ...a, updatedAt: 2000, ackedAt: 2000, ackedBy: "admin" })).toBe(false);
    expect(isNewerAlert({ ...a, state: "resolved", resolvedAt: 1000 }, a)).toBe(true);
    expect(isNewerAlert(a, a)).toBe(false);
  });
});
