/**
 * What a summary is, independent of where it is stored: which values of a reading are summarised, the bucket
 * a reading time falls in, and how `step=auto` chooses. The SQLite store (transport/sqlite/summaries.ts) keeps
 * the buckets; http/routes/series.ts answers with them.
 */
import { STEP_MS, SUMMARY_STEPS, type SummaryStep, type TelemetryData } from "../protocol/events.ts";

export type SeriesStep = "raw" | SummaryStep;
export const SERIES_STEPS = ["raw", ...SUMMARY_STEPS] as const satisfies readonly SeriesStep[];

export interface RawPoint {
  t: number;
  value: number;
  seq: number;
}

export interface BucketPoint {
  /** The bucket's start. */
  t: number;
  count: number;
  min: number;
  max: number;
  mean: number;
  last: number;
}

/** GET /api/devices/:id/series (docs/protocol.md "Summaries, series and export"); the page imports this type. */
export type Series = { deviceId: string; metric: string; from: number; to: number } & (
  | { step: "raw"; points: RawPoint[] }
  | { step: SummaryStep; points: BucketPoint[] }
);

/**
 * `auto` returns at most this many points: "about a thousand", and enough that a day of one-minute buckets
 * (1,440) still draws at one-minute resolution instead of jumping to 24 hourly points.
 */
export const AUTO_MAX_POINTS = 1500;
/** An explicit step may return at most this many points: 7 days of 1-minute buckets (10,080) fit. */
export const MAX_POINTS = 12_000;

/** Keep-for per bucket width, ms; 0 keeps forever. */
export type SummaryRetention = Record<SummaryStep, number>;

/** Buckets are aligned to UTC (a 1-day bucket is a UTC day). */
export function bucketStart(t: number, step: SummaryStep): number {
  return Math.floor(t / STEP_MS[step]) * STEP_MS[step];
}

/** The summarised values of a reading: every reading key, and `battery` unless a reading key has that name. */
export function summaryValues(data: Pick<TelemetryData, "readings" | "battery">): Array<[metric: string, value: number]> {
  const values = Object.entries(data.readings);
  if (data.battery !== null && !("battery" in data.readings)) values.push(["battery", data.battery]);
  return values;
}

/** What `auto` can know about one candidate step for a range. */
export interface StepCandidate {
  step: SeriesStep;
  /** The range starts inside what this step still keeps (raw history, bucket retention). */
  covered: boolean;
  /** Points it would return. */
  points: () => number;
}

/** The finest step that covers the range with at most AUTO_MAX_POINTS points; the coarsest otherwise. */
export function chooseStep(candidates: StepCandidate[]): SeriesStep {
  for (const c of candidates) if (c.covered && c.points() <= AUTO_MAX_POINTS) return c.step;
  return candidates[candidates.length - 1]!.step;
}

/** What series queries need of a summary store (transport/sqlite/summaries.ts). */
export interface SummaryQueries {
  buckets(deviceId: string, metric: string, step: SummaryStep, from: number, to: number): BucketPoint[];
  /** Buckets in the range, counted up to `cap` (a count beyond it answers cap + 1). */
  bucketCountIn(deviceId: string, metric: string, step: SummaryStep, from: number, to: number, cap: number): number;
  raw(deviceId: string, metric: string, from: number, to: number, limit: number): RawPoint[];
  /** Readings in the range, counted up to `cap` (a count beyond it answers cap + 1). */
  rawCountIn(deviceId: string, from: number, to: number, cap: number): number;
  /** Raw history has every reading taken at or after this time (retention deleted only older ones). */
  rawCompleteFrom(): number;
}

export interface SeriesQuery {
  deviceId: string;
  metric: string;
  from: number;
  to: number;
  step: SeriesStep | "auto";
}

/** How far back each step still has everything. */
export interface Coverage {
  /** Buckets: kept this long (0 = forever). */
  retention: SummaryRetention;
  /** false: no buckets are kept (summaries.enabled), so auto answers raw. */
  summaries: boolean;
}

export class ErrTooManyPoints extends Error {
  readonly code = "too_many_points";
  constructor(step: SeriesStep) {
    super(`step ${step} would return more than ${MAX_POINTS} points: use a coarser step or step=auto`);
    this.name = "ErrTooManyPoints";
  }
}

export function querySeries(store: SummaryQueries, q: SeriesQuery, coverage: Coverage, now = Date.now()): Series {
  const { deviceId, metric, from, to } = q;
  // Within 1 % of the retention: a page asking for "the last 30 days" by its own clock is a little older than now − 30 d here.
  const keeps = (keepMs: number) => keepMs === 0 || from >= now - keepMs * 1.01;
  // counting stops past the limit that matters: a 30-day range need not count 43,200 readings to exceed 1,500
  const count = (step: SeriesStep, cap: number) =>
    step === "raw" ? store.rawCountIn(deviceId, from, to, cap) : store.bucketCountIn(deviceId, metric, step, from, to, cap);
  const steps = coverage.summaries ? SERIES_STEPS : (["raw"] as const);
  const step =
    q.step === "auto"
      ? chooseStep(
          steps.map((s) => ({
            step: s,
            covered: s === "raw" ? from >= store.rawCompleteFrom() : keeps(coverage.retention[s]),
            points: () => count(s, AUTO_MAX_POINTS),
          })),
        )
      : q.step;
  if (q.step !== "auto") {
    if (count(step, MAX_POINTS) > MAX_POINTS) throw new ErrTooManyPoints(step);
  }
  if (step === "raw") return { deviceId, metric, from, to, step, points: store.raw(deviceId, metric, from, to, MAX_POINTS) };
  return { deviceId, metric, from, to, step, points: store.buckets(deviceId, metric, step, from, to) };
}
