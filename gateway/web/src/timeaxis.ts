// The time axis of the charts: labels formatted by the range shown (time only within a day, date and time or
// the date alone for longer ones) and spaced by their own measured width, so two labels never overlap.
// uPlot's time scale is in seconds; everything here is in ms except where a uPlot callback says otherwise.

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** The font of the axis values (uPlot's option and our measurements use the same one). */
export const AXIS_FONT = "12px system-ui, sans-serif";
/** Free pixels between two neighbouring labels, at the least. */
const LABEL_GAP = 16;

export type TickKind = "time-s" | "time" | "datetime" | "date" | "month";

/** Spans up to this print times only (a "24 h" range, with a little slack for a live window's edge). */
const WITHIN_A_DAY = DAY + HOUR;

/** How the labels read, from the span shown and the distance between two ticks. */
export function tickKind(spanMs: number, incrMs: number): TickKind {
  if (incrMs >= 28 * DAY) return "month";
  if (incrMs >= DAY) return "date";
  if (spanMs <= WITHIN_A_DAY) return incrMs < MINUTE ? "time-s" : "time";
  return "datetime";
}

const pad = (n: number) => String(n).padStart(2, "0");
const dateFmt = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const monthFmt = new Intl.DateTimeFormat(undefined, { month: "short", year: "numeric" });

/** One label, in the browser's time zone; a tick at local midnight says the day instead of "00:00". */
export function formatTick(ms: number, kind: TickKind): string {
  const d = new Date(ms);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const midnight = d.getHours() === 0 && d.getMinutes() === 0 && d.getSeconds() === 0;
  switch (kind) {
    case "time-s":
      return `${hm}:${pad(d.getSeconds())}`;
    case "time":
      return midnight ? dateFmt.format(d) : hm;
    case "datetime":
      return midnight ? dateFmt.format(d) : `${dateFmt.format(d)} ${hm}`;
    case "date":
      return dateFmt.format(d);
    case "month":
      return monthFmt.format(d);
  }
}

/** A tooltip/legend form of a moment: date and time to the second. */
export function formatMoment(ms: number): string {
  const d = new Date(ms);
  return `${dateFmt.format(d)} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

let measureCtx: CanvasRenderingContext2D | null = null;

/** Width in CSS pixels of `text` in the axis font. */
export function labelWidth(text: string): number {
  measureCtx ??= document.createElement("canvas").getContext("2d");
  if (measureCtx === null) return text.length * 7.5;
  measureCtx.font = AXIS_FONT;
  return measureCtx.measureText(text).width;
}

// The widest label each span can get: late September, two-digit hours (month names differ in width by locale).
const WIDEST = new Date(2026, 8, 28, 23, 58, 58).getTime();

/**
 * Minimum distance in CSS pixels between two ticks for a span (uPlot `axis.space`): the widest label
 * that span can print plus a gap. uPlot then picks the smallest increment that leaves at least that much.
 */
export function tickSpace(spanMs: number): number {
  const kinds: TickKind[] = spanMs <= WITHIN_A_DAY ? ["time-s", "date"] : ["datetime", "date", "month"];
  return Math.ceil(Math.max(...kinds.map((k) => labelWidth(formatTick(WIDEST, k))))) + LABEL_GAP;
}

/** Whether labels centred at `xs` (CSS px, ascending) with these texts would touch. */
export function labelsOverlap(xs: number[], labels: string[]): boolean {
  for (let i = 1; i < xs.length; i++) {
    const right = xs[i - 1]! + labelWidth(labels[i - 1]!) / 2;
    const left = xs[i]! - labelWidth(labels[i]!) / 2;
    if (left - right < 2) return true;
  }
  return false;
}
