import uPlot from "uplot";

/** A reading as both the REST history and the `telemetry` event carry it. */
export interface ChartReading {
  seq: number;
  /** When the reading was taken (the gateway always sets it; docs/protocol.md "Telemetry"): its x. */
  t: number;
  readings: Record<string, number>;
}

interface Point {
  seq: number;
  /** Seconds since epoch (uPlot's time unit). */
  x: number;
  temperature: number | null;
  humidity: number | null;
}

/** Memory bound per chart; the oldest points go first. */
const MAX_POINTS = 10_000;
const DRAW_DELAY_MS = 60;
const HEIGHT = 220;

const cssVar = (name: string) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/**
 * Temperature and humidity of one device over time. Points are keyed by `seq`, the reading's identity
 * with the device id (docs/protocol.md), so history reloads and stream replays never draw a point twice.
 * Each point sits at the time its reading was taken (`t`), so a reading that arrives late (it waited in
 * the device's outbox) is inserted among the earlier points, not appended.
 * For tests and tools the element carries data-points, data-first-seq, data-last-seq and data-seq-gaps
 * (readings missing between the first and the last seq shown); data-t-first / data-t-last (ms) and
 * data-t-first-seq / data-t-last-seq: the earliest and latest point in time; data-drawn-points and
 * data-x-sorted ("true" when the x data last handed to uPlot was in order).
 */
export class DeviceChart {
  private readonly bySeq = new Map<number, Point>();
  /** Sorted by x, then seq: the order uPlot needs. */
  private sorted: Point[] = [];
  private minSeq = Infinity;
  private maxSeq = -Infinity;
  private plot: uPlot | null = null;
  private drawTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly resize = new ResizeObserver(() => this.fit());

  constructor(
    private readonly el: HTMLElement,
    readonly deviceId: string,
  ) {
    el.dataset.deviceId = deviceId;
    this.resize.observe(el);
    this.updateAttributes();
  }

  /** Adds a reading; returns false when that seq is already drawn. */
  add(r: ChartReading): boolean {
    if (this.bySeq.has(r.seq)) return false;
    const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
    const p: Point = {
      seq: r.seq,
      x: r.t / 1000,
      temperature: num(r.readings.temperature),
      humidity: num(r.readings.humidity),
    };
    this.bySeq.set(p.seq, p);
    this.sorted.splice(this.insertIndex(p), 0, p);
    this.minSeq = Math.min(this.minSeq, p.seq);
    this.maxSeq = Math.max(this.maxSeq, p.seq);
    if (this.sorted.length > MAX_POINTS) this.dropOldest(this.sorted.length - MAX_POINTS);
    this.updateAttributes();
    this.scheduleDraw();
    return true;
  }

  /** Redraws from scratch, e.g. when the colour scheme changes. */
  rebuild(): void {
    this.plot?.destroy();
    this.plot = null;
    this.scheduleDraw();
  }

  destroy(): void {
    clearTimeout(this.drawTimer);
    this.resize.disconnect();
    this.plot?.destroy();
  }

  private insertIndex(p: Point): number {
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
    this.minSeq = Math.min(...this.bySeq.keys());
  }

  private updateAttributes(): void {
    const n = this.bySeq.size;
    this.el.dataset.points = String(n);
    this.el.dataset.firstSeq = n > 0 ? String(this.minSeq) : "";
    this.el.dataset.lastSeq = n > 0 ? String(this.maxSeq) : "";
    // Seqs are unique per device and +1 per reading, so the range minus the count is what is missing.
    this.el.dataset.seqGaps = String(n > 0 ? this.maxSeq - this.minSeq + 1 - n : 0);
    const first = this.sorted[0];
    const last = this.sorted[n - 1];
    this.el.dataset.tFirst = first === undefined ? "" : String(Math.round(first.x * 1000));
    this.el.dataset.tLast = last === undefined ? "" : String(Math.round(last.x * 1000));
    this.el.dataset.tFirstSeq = first === undefined ? "" : String(first.seq);
    this.el.dataset.tLastSeq = last === undefined ? "" : String(last.seq);
  }

  private scheduleDraw(): void {
    if (this.drawTimer !== undefined) return;
    this.drawTimer = setTimeout(() => {
      this.drawTimer = undefined;
      this.draw();
    }, DRAW_DELAY_MS);
  }

  private data(): uPlot.AlignedData {
    return [
      this.sorted.map((p) => p.x),
      this.sorted.map((p) => p.temperature),
      this.sorted.map((p) => p.humidity),
    ];
  }

  private draw(): void {
    const data = this.data();
    const xs = data[0];
    this.el.dataset.drawnPoints = String(xs.length);
    this.el.dataset.xSorted = String(xs.every((x, i) => i === 0 || xs[i - 1]! <= x));
    if (this.plot !== null) return this.plot.setData(data);
    const fg = cssVar("--fg");
    const grid = { stroke: cssVar("--grid"), width: 1 };
    const axis = { stroke: fg, grid, ticks: grid };
    this.plot = new uPlot(
      {
        width: Math.max(this.el.clientWidth, 200),
        height: HEIGHT,
        scales: {
          // One point would otherwise stretch the time axis over years.
          x: { time: true, range: (_u, min, max) => (min === max ? [min - 60, max + 60] : [min, max]) },
          temp: { auto: true },
          hum: { auto: true },
        },
        series: [
          { label: "time" },
          { label: "temperature °C", scale: "temp", stroke: cssVar("--temp"), width: 2, spanGaps: false },
          { label: "humidity %", scale: "hum", stroke: cssVar("--hum"), width: 2, spanGaps: false },
        ],
        axes: [
          axis,
          { ...axis, scale: "temp", label: "°C" },
          { ...axis, scale: "hum", side: 1, label: "%", grid: { show: false } },
        ],
      },
      data,
      this.el,
    );
  }

  private fit(): void {
    if (this.plot !== null && this.el.clientWidth > 0) {
      this.plot.setSize({ width: this.el.clientWidth, height: HEIGHT });
    }
  }
}
