// Reads the dashboard through the data attributes it exposes for tests (never pixels).
import type { Page } from "playwright-core";

export interface ChartInfo {
  deviceId: string;
  points: number;
  firstSeq: number | null;
  lastSeq: number | null;
  seqGaps: number;
}

/** One entry per device card: what its chart holds. */
export async function chartInfo(page: Page): Promise<ChartInfo[]> {
  return page.$$eval(".device .chart", (els) =>
    els.map((el) => {
      const d = (el as HTMLElement).dataset;
      const num = (v: string | undefined) => (v === undefined || v === "" ? null : Number(v));
      return {
        deviceId: d.deviceId ?? "",
        points: Number(d.points ?? 0),
        firstSeq: num(d.firstSeq),
        lastSeq: num(d.lastSeq),
        seqGaps: Number(d.seqGaps ?? 0),
      };
    }),
  );
}

export async function connState(page: Page): Promise<{ state: string; role: string; missed: number }> {
  return page.$eval("#conn", (el) => {
    const d = (el as HTMLElement).dataset;
    return { state: d.connState ?? "", role: d.role ?? "", missed: Number(d.missed ?? 0) };
  });
}

/** Each tab's role in its tab group: "leader" (holds the stream) or "follower". */
export async function roles(pages: Page[]): Promise<string[]> {
  return Promise.all(pages.map(async (p) => (await connState(p)).role));
}

/** Waits until every tab has a reading newer than those its charts held when called. */
export async function everyTabUpdates(pages: Page[], timeout = 20_000): Promise<void> {
  const before = await Promise.all(pages.map(async (p) => (await chartInfo(p)).map((c) => c.lastSeq ?? 0)));
  await Promise.all(
    pages.map((p, i) =>
      p.waitForFunction(
        (prev) =>
          [...document.querySelectorAll<HTMLElement>(".device .chart")].some((el, j) => Number(el.dataset.lastSeq) > (prev[j] ?? 0)),
        before[i]!,
        { timeout },
      ),
    ),
  );
}

/** Waits until every listed device's chart holds at least `min` points. */
export async function waitForPoints(page: Page, deviceIds: string[], min: number, timeout = 30_000): Promise<void> {
  await page.waitForFunction(
    ({ ids, min }) =>
      ids.every((id) => {
        const el = document.querySelector<HTMLElement>(`.device .chart[data-device-id="${id}"]`);
        return el !== null && Number(el.dataset.points) >= min;
      }),
    { ids: deviceIds, min },
    { timeout, polling: 100 },
  );
}
