import uPlot from "uplot";
import { AXIS_FONT, formatMoment, formatTick, labelsOverlap, tickKind, tickSpace } from "./timeaxis.ts";
import { STEP_MS, type SeriesAnswer, type SeriesStep, type SummaryBucket } from "./types.ts";

/** A reading as both the REST history and the `telemetry` event carry it. */
export interface ChartReading {
  seq: number;
  /** When the reading was taken (the gateway always sets it; docs/protocol.md "Telemetry"): its x. */
  t: number;
  readings: Record<string, number>;
}

/** One metric a chart draws, on its own y scale (the first on the left, the others on the right). */
export interface ChartMetric {
  /** The series API's metric (a reading key, or `battery`). */
  key: string;
  label: string;
  unit: string;
  /** The CSS variable of its colour. */
  color: string;
}

/** The card's main chart. */
export const CLIMATE_METRICS: readonly ChartMetric[] = [
  { key: "temperature", label: "temperature", unit: "°C", color: "--temp" },
  { key: "humidity", label: "humidity", unit: "%", color: "--hum" },
];
/** The card's small battery chart. */
export const BATTERY_METRICS: readonly ChartMetric[] = [{ key: "battery", label: "battery", unit: "V", color: "--batt" }];

interface RawPoint {
  seq: number;
  /** Seconds since epoch (uPlot's time unit). */
  x: number;
  /** One per metric, in the chart's order. */
  values: (number | null)[];
}

interface Agg {
  count: number;
  min: number;
  max: number;
  mean: number;
}

interface Bucket {
  /** Bucket start, ms. */
  start: number;
  /** One per metric, in the chart's order. */
  aggs: (Agg | null)[];
}

/** What the chart shows: [from, to] (ms); `live`: `to` follows the clock; `key` names the range (data-range). */
export interface ChartWindow {
  from: number;
  to: number;
  live: boolean;
  key: string;
}

/** Two loads of the same id show the same thing: a live range by its key, a fixed one by its bounds. */
const windowId = (w: ChartWindow) => (w.live ? w.key : `${w.key}:${w.from}:${w.to}`);

type Input = { kind: "reading"; r: ChartReading } | { kind: "buckets"; b: SummaryBucket[] };

/** Memory bound per chart; the oldest points go first. */
const MAX_POINTS = 10_000;
const DRAW_DELAY_MS = 60;

const cssVar = (name: string) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
/** `#rrggbb` with an alpha (for band fills); other colour forms are used as they are. */
const alpha = (color: string, a: string) => (/^#[0-9a-f]{6}$/i.test(color) ? `${color}${a}` : color);
const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);

const STEP_TEXT: Record<SeriesStep, string> = {
  raw: "every reading",
  "1m": "per minute: min–max band and mean",
  "1h": "per hour: min–max band and mean",
  "1d": "per day: min–max band and mean",
};

/** The metric answers of one load (by metric key), all in `step`, as the Dashboard fetched them. */
export interface ChartLoad {
  step: SeriesStep;
  from: number;
  to: number;
  series: Partial<Record<string, SeriesAnswer>>;
}

export interface ChartOptions {
  /** What it draws; default CLIMATE_METRICS. */
  metrics?: readonly ChartMetric[];
  /** Plot height in px; default 220. */
  height?: number;
  /** Hidden (the `hidden` attribute) while it holds no point, e.g. the battery of a device that reports none. */
  hideWhenEmpty?: boolean;
  /**
   * A one-metric chart under a two-metric one: an empty right axis as wide as the other's, so that both plots
   * are equally wide and their time axes line up.
   */
  rightGutter?: boolean;
  /** Told the step and window after each load (the card's caption and CSV link). */
  onShown?: (step: SeriesStep, from: number, to: number) => void;
}

/**
 * Some metrics of one device (temperature and humidity, or the battery) over the chosen range, in the step
 * the gateway's series API chose: raw readings (keyed by `seq`, the reading's identity with the device id, so history reloads and stream
 * replays never draw a point twice) or buckets of the summaries (keyed by their start; drawn as a min–max
 * band with the mean line). Live input keeps it current in both: `telemetry` readings in raw mode (each at the
 * time it was taken, `t`, so a late reading is inserted among the earlier points, not appended), `summary`
 * buckets of the same step in bucketed mode. While a load is under way live input waits, then is applied on
 * top of the answer.
 *
 * For tests and tools the element carries data-points, data-first-seq, data-last-seq and data-seq-gaps (raw
 * mode; readings missing between the first and the last seq shown), data-t-first / data-t-last (ms; bucket
 * starts in bucketed mode) and data-t-first-seq / data-t-last-seq, data-drawn-points and data-x-sorted; and
 * data-step (raw | 1m | 1h | 1d), data-range, data-from / data-to (the window of the last load, ms),
 * data-bands ("true" when min–max bands are drawn), data-bucket-readings (readings the buckets hold),
 * data-load-state (loading | ready | error), data-x-labels (the time axis labels, " | "-separated) and
 * data-x-overlap ("true" if two of them touch). A reading that carries none of the chart's metrics is not a
 * point of it (as in the series API's raw answer).
 */
export class DeviceChart {
  private step: SeriesStep = "raw";
  private window: ChartWindow | null = null;
  private readonly bySeq = new Map<number, RawPoint>();
  /** Sorted by x, then seq: the order uPlot needs. */
  private sorted: RawPoint[] = [];
  private minSeq = Infinity;
  private maxSeq = -Infinity;
  private readonly byStart = new Map<number, Bucket>();
  private buckets: Bucket[] = [];
  /** Generation of the load under way (null: none); live input is held back meanwhile. */
  private loading: number | null = null;
  private pendingWindow: ChartWindow | null = null;
  private generation = 0;
  private held: Input[] = [];
  private plot: uPlot | null = null;
  private plotMode: "raw" | "bands" | null = null;
  private drawTimer: ReturnType<typeof setTimeout> | undefined;
  private lastDrawAt = 0;
  private xLabels: { splits: number[]; labels: string[] } = { splits: [], labels: [] };
  private drawnX: readonly number[] = [];
  private readonly resize = new ResizeObserver(() => this.fit());
  private readonly metrics: readonly ChartMetric[];
  private readonly height: number;
  private readonly hideWhenEmpty: boolean;
  private readonly rightGutter: boolean;
  private readonly onShown: (step: SeriesStep, from: number, to: number) => void;

  constructor(
    private readonly el: HTMLElement,
    readonly deviceId: string,
    opts: ChartOptions = {},
  ) {
    this.metrics = opts.metrics ?? CLIMATE_METRICS;
    this.height = opts.height ?? 220;
    this.hideWhenEmpty = opts.hideWhenEmpty ?? false;
    this.rightGutter = opts.rightGutter ?? false;
    this.onShown = opts.onShown ?? (() => undefined);
    el.dataset.deviceId = deviceId;
    el.dataset.loadState = "ready";
    this.resize.observe(el);
    this.updateAttributes();
  }

  get shownStep(): SeriesStep {
    return this.step;
  }

  /** The metric keys it draws (what the Dashboard loads for it). */
  get metricKeys(): string[] {
    return this.metrics.map((m) => m.key);
  }

  /** Starts a load for `w`: returns its generation, for finishLoad/failLoad. Live input waits until then. */
  beginLoad(w: ChartWindow): number {
    this.loading = ++this.generation;
    this.el.dataset.loadState = "loading";
    this.el.dataset.range = w.key;
    this.pendingWindow = w;
    return this.loading;
  }

  /**
   * Applies a load's answer. The same step over the same range merges (a reload after a reconnect or a
   * reset keeps what was drawn); a different one replaces. Then the held-back live input.
   */
  finishLoad(gen: number, load: ChartLoad): void {
    if (gen !== this.loading || this.pendingWindow === null) return;
    const w = this.pendingWindow;
    // Raw points that came before the first load stay (a reading between the stream going live and the answer).
    const merge = this.step === load.step && (this.window === null || windowId(this.window) === windowId(w));
    this.window = { ...w, from: load.from, to: w.live ? Math.max(w.to, load.to) : load.to };
    if (!merge) this.clear();
    this.step = load.step;
    if (load.step === "raw") {
      const bySeq = new Map<number, ChartReading>();
      for (const { key } of this.metrics) {
        const s = load.series[key];
        if (s === undefined || s.step !== "raw") continue;
        for (const p of s.points) {
          let r = bySeq.get(p.seq);
          if (r === undefined) bySeq.set(p.seq, (r = { seq: p.seq, t: p.t, readings: {} }));
          r.readings[key] = p.value;
        }
      }
      for (const r of bySeq.values()) this.addRaw(r);
    } else {
      this.metrics.forEach(({ key }, i) => {
        const s = load.series[key];
        if (s === undefined || s.step === "raw") return;
        for (const p of s.points) this.upsertBucket(i, p.t, p);
      });
    }
    this.done(load.from, load.to);
  }

  /** The load failed: keep what is drawn (raw mode if nothing was ever loaded) and apply the held input. */
  failLoad(gen: number): void {
    if (gen !== this.loading) return;
    const w = this.pendingWindow!;
    if (this.window === null || windowId(this.window) !== windowId(w)) {
      this.window = w;
      this.clear();
      this.step = "raw";
    }
    this.done(w.from, w.to, "error");
  }

  private done(from: number, to: number, state: "ready" | "error" = "ready"): void {
    this.loading = null;
    this.pendingWindow = null;
    const held = this.held;
    this.held = [];
    for (const i of held) this.apply(i);
    this.el.dataset.loadState = state;
    this.el.dataset.step = this.step;
    this.el.dataset.from = String(Math.round(from));
    this.el.dataset.to = String(Math.round(to));
    this.el.dataset.range = this.window!.key;
    this.updateAttributes();
    this.onShown(this.step, from, to);
    this.scheduleDraw();
  }

  /** A live reading (`telemetry`); returns false when that seq is already drawn or it is not shown. */
  add(r: ChartReading): boolean {
    return this.apply({ kind: "reading", r });
  }

  /** Live buckets (`summary`): those of the step shown update or insert theirs. */
  addBuckets(b: SummaryBucket[]): void {
    this.apply({ kind: "buckets", b });
  }

  private apply(i: Input): boolean {
    if (this.loading !== null) {
      this.held.push(i);
      return false;
    }
    let changed = false;
    if (i.kind === "reading") {
      if (this.step !== "raw" || !this.inWindow(i.r.t)) return false;
      changed = this.addRaw(i.r);
    } else {
      if (this.step === "raw") return false;
      for (const b of i.b) {
        const m = this.metrics.findIndex((x) => x.key === b.metric);
        if (b.step !== this.step || m < 0) continue;
        if (!this.inWindow(b.start + STEP_MS[b.step] - 1) || (this.window !== null && !this.window.live && b.start > this.window.to)) continue;
        changed = this.upsertBucket(m, b.start, b) || changed;
      }
    }
    if (changed) {
      this.updateAttributes();
      this.scheduleDraw();
    }
    return changed;
  }

  private inWindow(t: number): boolean {
    const w = this.window;
    if (w === null) return true;
    return t >= w.from && (w.live || t <= w.to);
  }

  /** The clock moved: a live range slides (old points leave) and is redrawn now and then. */
  slide(now: number): void {
    const w = this.window;
    if (w === null || !w.live) return;
    const span = w.to - w.from;
    w.to = now;
    w.from = now - span;
    const before = this.bySeq.size + this.byStart.size;
    this.trim();
    if (this.bySeq.size + this.byStart.size !== before) this.updateAttributes();
    // About a pixel's worth of time on a wide chart, at most once a second.
    if (now - this.lastDrawAt > Math.max(1000, span / 1000)) this.scheduleDraw();
  }

  /** Redraws from scratch, e.g. when the colour scheme changes. */
  rebuild(): void {
    this.plot?.destroy();
    this.plot = null;
    this.plotMode = null;
    this.scheduleDraw();
  }

  destroy(): void {
    clearTimeout(this.drawTimer);
    this.resize.disconnect();
    this.plot?.destroy();
  }

  private clear(): void {
    this.bySeq.clear();
    this.sorted = [];
    this.minSeq = Infinity;
    this.maxSeq = -Infinity;
    this.byStart.clear();
    this.buckets = [];
  }

  private addRaw(r: ChartReading): boolean {
    if (this.bySeq.has(r.seq)) return false;
    const values = this.metrics.map((m) => num(r.readings[m.key]));
    if (values.every((v) => v === null)) return false;
    const p: RawPoint = { seq: r.seq, x: r.t / 1000, values };
    this.bySeq.set(p.seq, p);
    this.sorted.splice(this.insertIndex(p), 0, p);
    this.minSeq = Math.min(this.minSeq, p.seq);
    this.maxSeq = Math.max(this.maxSeq, p.seq);
    if (this.sorted.length > MAX_POINTS) this.dropOldest(this.sorted.length - MAX_POINTS);
    return true;
  }

  /** Inserts or updates one metric of a bucket; a bucket never goes back to fewer readings (an older copy). */
  private upsertBucket(metric: number, start: number, a: Agg): boolean {
    let b = this.byStart.get(start);
    if (b === undefined) {
      b = { start, aggs: this.metrics.map(() => null) };
      this.byStart.set(start, b);
      const i = this.buckets.findLastIndex((x) => x.start < start) + 1;
      this.buckets.splice(i, 0, b);
      if (this.buckets.length > MAX_POINTS) for (const x of this.buckets.splice(0, this.buckets.length - MAX_POINTS)) this.byStart.delete(x.start);
    }
    const old = b.aggs[metric] ?? null;
    if (old !== null && a.count < old.count) return false;
    if (old !== null && old.count === a.count && old.min === a.min && old.max === a.max && old.mean === a.mean) return false;
    b.aggs[metric] = { count: a.count, min: a.min, max: a.max, mean: a.mean };
    return true;
  }

  private trim(): void {
    const w = this.window;
    if (w === null) return;
    let n = 0;
    while (n < this.sorted.length && this.sorted[n]!.x * 1000 < w.from) n++;
    if (n > 0) this.dropOldest(n);
    if (this.step !== "raw") {
      const stepMs = STEP_MS[this.step];
      let k = 0;
      while (k < this.buckets.length && this.buckets[k]!.start + stepMs <= w.from) k++;
      for (const b of this.buckets.splice(0, k)) this.byStart.delete(b.start);
    }
  }

  private insertIndex(p: RawPoint): number {
    let lo = 0;
    let hi = this.sorted.length;
    // Live points usually come last: check the end before searching.
    const last = this.sorted[hi - 1];
    if (last === undefined || last.x < p.x || (last.x === p.x && last.seq < p.seq)) return hi;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const m = this.sorted[mid]!;
      if (m.x < p.x || (m.x === p.x && m.seq < p.seq)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private dropOldest(n: number): void {
    for (const p of this.sorted.splice(0, n)) this.bySeq.delete(p.seq);
    this.minSeq = this.bySeq.size === 0 ? Infinity : Math.min(...this.bySeq.keys());
  }

  private updateAttributes(): void {
    const d = this.el.dataset;
    d.step = this.step;
    if (this.step === "raw") {
      const n = this.bySeq.size;
      d.points = String(n);
      d.firstSeq = n > 0 ? String(this.minSeq) : "";
      d.lastSeq = n > 0 ? String(this.maxSeq) : "";
      // Seqs are unique per device and +1 per reading, so the range minus the count is what is missing.
      d.seqGaps = String(n > 0 ? this.maxSeq - this.minSeq + 1 - n : 0);
      const first = this.sorted[0];
      const last = this.sorted[n - 1];
      d.tFirst = first === undefined ? "" : String(Math.round(first.x * 1000));
      d.tLast = last === undefined ? "" : String(Math.round(last.x * 1000));
      d.tFirstSeq = first === undefined ? "" : String(first.seq);
      d.tLastSeq = last === undefined ? "" : String(last.seq);
      d.bucketReadings = "";
    } else {
      const n = this.buckets.length;
      d.points = String(n);
      d.firstSeq = "";
      d.lastSeq = "";
      d.seqGaps = "0";
      d.tFirst = n > 0 ? String(this.buckets[0]!.start) : "";
      d.tLast = n > 0 ? String(this.buckets[n - 1]!.start) : "";
      d.tFirstSeq = "";
      d.tLastSeq = "";
      d.bucketReadings = String(this.buckets.reduce((s, b) => s + Math.max(0, ...b.aggs.map((a) => a?.count ?? 0)), 0));
    }
    if (this.hideWhenEmpty) this.el.hidden = d.points === "0";
  }

  private scheduleDraw(): void {
    if (this.drawTimer !== undefined) return;
    this.drawTimer = setTimeout(() => {
      this.drawTimer = undefined;
      this.draw();
    }, DRAW_DELAY_MS);
  }

  private data(): uPlot.AlignedData {
    if (this.step === "raw") {
      return [this.sorted.map((p) => p.x), ...this.metrics.map((_m, i) => this.sorted.map((p) => p.values[i] ?? null))];
    }
    // A bucket is drawn at its middle: a day's mean belongs to noon, not to midnight.
    const half = STEP_MS[this.step] / 2;
    const b = this.buckets;
    const col = (m: number, k: "min" | "max" | "mean") => b.map((x) => x.aggs[m]?.[k] ?? null);
    // Three series per metric: mean, min, max (the band fills max down to min).
    return [b.map((x) => (x.start + half) / 1000), ...this.metrics.flatMap((_m, i) => [col(i, "mean"), col(i, "min"), col(i, "max")])];
  }

  /**
   * [from, to] of the x scale in seconds: the whole window chosen (a live one ending now), and any point
   * after its end (a device clock ahead). From our own data: uPlot stretches a single point's range by days.
   */
  private xRange(): uPlot.Range.MinMax {
    const xs = this.drawnX;
    const dataMax = xs.length > 0 ? xs[xs.length - 1]! : null;
    const w = this.window;
    if (w === null) {
      const max = dataMax ?? Date.now() / 1000;
      return [max - 3600, max + 60];
    }
    const end = w.live ? Math.max(w.to, Date.now()) : w.to;
    const from = (end - (w.to - w.from)) / 1000;
    const to = Math.max(end / 1000, dataMax ?? -Infinity);
    return to > from ? [from, to] : [from - 60, from + 60];
  }

  private draw(): void {
    this.lastDrawAt = Date.now();
    const data = this.data();
    const xs = data[0];
    this.drawnX = xs as number[];
    this.el.dataset.drawnPoints = String(xs.length);
    this.el.dataset.xSorted = String(xs.every((x, i) => i === 0 || xs[i - 1]! <= x));
    const mode = this.step === "raw" ? "raw" : "bands";
    this.el.dataset.bands = String(mode === "bands");
    if (this.plot !== null && this.plotMode !== mode) {
      this.plot.destroy();
      this.plot = null;
    }
    if (this.plot !== null) return this.plot.setData(data);
    this.plotMode = mode;
    this.plot = new uPlot(this.options(mode), data, this.el);
  }

  private options(mode: "raw" | "bands"): uPlot.Options {
    const fg = cssVar("--fg");
    const grid = { stroke: cssVar("--grid"), width: 1 };
    const axis = { stroke: fg, grid, ticks: grid, font: AXIS_FONT };
    const line = (label: string, scale: string, stroke: string): uPlot.Series => ({ label, scale, stroke, width: 2, spanGaps: false });
    const edge = (label: string, scale: string, stroke: string): uPlot.Series => ({
      label,
      scale,
      stroke: alpha(stroke, "66"),
      width: 1,
      points: { show: false },
      spanGaps: false,
    });
    const series: uPlot.Series[] = [{ label: "time", value: (_u, v) => (v == null ? "–" : formatMoment(v * 1000)) }];
    const bands: uPlot.Band[] = [];
    const scales: uPlot.Scales = { x: { time: true, range: () => this.xRange() } };
    const yAxes: uPlot.Axis[] = [];
    this.metrics.forEach((m, i) => {
      const color = cssVar(m.color);
      const name = `${m.label} ${m.unit}`;
      if (mode === "raw") {
        series.push(line(name, m.key, color));
      } else {
        series.push(line(`${name} mean`, m.key, color), edge("min", m.key, color), edge("max", m.key, color));
        // Fill from the max series down to the min series.
        bands.push({ series: [3 * i + 3, 3 * i + 2], fill: alpha(color, "33") });
      }
      scales[m.key] = { auto: true };
      yAxes.push(i === 0 ? { ...axis, scale: m.key, label: m.unit } : { ...axis, scale: m.key, side: 1, label: m.unit, grid: { show: false } });
    });
    if (this.rightGutter && this.metrics.length === 1) {
      // Same size and label room as a labelled right axis, nothing drawn in it.
      yAxes.push({ ...axis, scale: this.metrics[0]!.key, side: 1, label: "", values: () => [], ticks: { show: false }, grid: { show: false } });
    }
    const span = (u: uPlot) => ((u.scales.x.max ?? 0) - (u.scales.x.min ?? 0)) * 1000;
    return {
      width: Math.max(this.el.clientWidth, 200),
      height: this.height,
      scales,
      series,
      bands,
      axes: [
        {
          ...axis,
          // At least the widest label this span can print between two ticks: labels never overlap.
          space: (_u, _i, min, max) => tickSpace((max - min) * 1000),
          values: (u, splits, _i, _space, incr) => {
            const kind = tickKind(span(u), incr * 1000);
            const labels = splits.map((s) => formatTick(s * 1000, kind));
            this.xLabels = { splits, labels };
            return labels;
          },
        },
        ...yAxes,
      ],
      hooks: { draw: [(u) => this.checkLabels(u)] },
    };
  }

  /** data-x-labels / data-x-overlap: what the time axis printed, and whether two labels touch. */
  private checkLabels(u: uPlot): void {
    const { splits, labels } = this.xLabels;
    const min = u.scales.x.min ?? -Infinity;
    const max = u.scales.x.max ?? Infinity;
    const shown = splits.map((s, i) => ({ s, l: labels[i]! })).filter((x) => x.s >= min && x.s <= max && x.l !== "");
    this.el.dataset.xLabels = shown.map((x) => x.l).join(" | ");
    this.el.dataset.xOverlap = String(labelsOverlap(shown.map((x) => u.valToPos(x.s, "x")), shown.map((x) => x.l)));
  }

  private fit(): void {
    if (this.plot !== null && this.el.clientWidth > 0) {
      this.plot.setSize({ width: this.el.clientWidth, height: this.height });
    }
  }

  /** The step's description for the caption. */
  static stepText(step: SeriesStep): string {
    return STEP_TEXT[step];
  }
}
