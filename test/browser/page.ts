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
