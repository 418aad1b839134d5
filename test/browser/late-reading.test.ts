// A reading that waited in the device's outbox (telemetry `age`, docs/protocol.md "Reading time") in Debian's
// Chromium: the chart inserts it at the time it was taken, not at its arrival, and the card says how late it came.
// Readings are published with mqtt.js to the gateway's embedded broker; the page is read through its data attributes.
import type { MqttClient } from "mqtt";
import { mkdir } from "node:fs/promises";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestGateway } from "../helpers/gateway.ts";
import { skipReason, type Browser } from "./chromium.ts";
import { openLivePage, startGatewayBrowser, type GatewayBrowser } from "./gateway-browser.ts";

const DEVICE = "late-dev";
const AGE = 62 * 60_000; // 1 h 2 min in the outbox

interface ChartTimes {
  points: number;
  drawn: number;
  sorted: boolean;
  tFirst: number;
  tLast: number;
  tFirstSeq: number;
  tLastSeq: number;
}

describe.skipIf(skipReason !== undefined)("a late reading in a real browser", () => {
  let fixture: GatewayBrowser | undefined;
  let gw: TestGateway;
  let browser: Browser;
  let pub: MqttClient;

  beforeAll(async () => {
    fixture = await startGatewayBrowser({ clientId: "late-reading-pub" });
    ({ gw, pub, browser } = fixture);
  }, 60_000);

  afterAll(() => fixture?.close());

  const publish = (seq: number, extra: Record<string, unknown> = {}) =>
    pub.publishAsync(
      `sensors/${DEVICE}/telemetry`,
      JSON.stringify({ v: 1, seq, boot: 1, t: null, readings: { temperature: 20 + seq, humidity: 40 }, battery: 3.7, ...extra }),
      { qos: 1 },
    );

  const chart = (page: Page) => page.locator(`.device .chart[data-device-id="${DEVICE}"]`);
  const card = (page: Page) => page.locator(`.device[data-device-id="${DEVICE}"]`);

  /** Waits until the chart holds and has drawn `points` points, then reads its time attributes. */
  async function chartTimes(page: Page, points: number): Promise<ChartTimes> {
    await page.waitForFunction(
      ({ id, n }) => {
        const d = document.querySelector<HTMLElement>(`.device .chart[data-device-id="${id}"]`)?.dataset;
        return d !== undefined && d.points === String(n) && d.drawnPoints === String(n);
      },
      { id: DEVICE, n: points },
      { timeout: 15_000, polling: 50 },
    );
    return chart(page).evaluate((el) => {
      const d = (el as HTMLElement).dataset;
      return {
        points: Number(d.points),
        drawn: Number(d.drawnPoints),
        sorted: d.xSorted === "true",
        tFirst: Number(d.tFirst),
        tLast: Number(d.tLast),
        tFirstSeq: Number(d.tFirstSeq),
        tLastSeq: Number(d.tLastSeq),
      };
    });
  }

  const stored = async () =>
    ((await (await fetch(`${gw.url}/api/devices/${DEVICE}/readings`)).json()) as { readings: Array<{ seq: number; t: number; receivedAt: number }> })
      .readings;

  it("inserts the late reading at its own time and hints at its delay on the card", async () => {
    const page = await openLivePage(browser, `${gw.url}/`);

    await publish(1);
    expect(await chartTimes(page, 1)).toMatchObject({ tFirstSeq: 1, tLastSeq: 1, sorted: true });
    await expect.poll(() => card(page).locator('[data-field="late"]').isHidden()).toBe(true);

    // Arrives after seq 1, was taken 1 h 2 min before it: drawn first, not appended.
    await publish(2, { age: AGE });
    const late = await chartTimes(page, 2);
    const [r2, r1] = await stored();
    expect(r2!.seq).toBe(2);
    expect(r2!.t).toBe(r2!.receivedAt - AGE);
    expect(late).toEqual({ points: 2, drawn: 2, sorted: true, tFirst: r2!.t, tLast: r1!.t, tFirstSeq: 2, tLastSeq: 1 });

    // The card's last reading is the highest seq, shown at its own time with the delay.
    await expect.poll(() => card(page).getAttribute("data-last-seq")).toBe("2");
    expect(await card(page).getAttribute("data-reading-t")).toBe(String(r2!.t));
    expect(await card(page).getAttribute("data-time-source")).toBe("age");
    const hint = card(page).locator('[data-field="late"]');
    expect(await hint.isVisible()).toBe(true);
    expect(await hint.textContent()).toBe("taken 1 h 2 min before it arrived");
    expect(await card(page).locator('[data-field="takenAt"]').textContent()).toMatch(/^1 h 2 min ago$/);
    await mkdir("test-results", { recursive: true });
    await card(page).screenshot({ path: "test-results/late-reading.png" });

    // A fresh reading again: the hint goes, the new point is the latest in time, the late one stays first.
    await publish(3);
    expect(await chartTimes(page, 3)).toMatchObject({ sorted: true, tFirstSeq: 2, tLastSeq: 3, tFirst: r2!.t });
    await expect.poll(() => hint.isHidden()).toBe(true);
    expect(await card(page).getAttribute("data-time-source")).toBe("received");

    // A reload draws the same from the REST history (ordered by t).
    await page.reload();
    await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 15_000 });
    expect(await chartTimes(page, 3)).toMatchObject({ sorted: true, tFirstSeq: 2, tLastSeq: 3, tFirst: r2!.t });
    expect((await stored()).map((r) => r.seq)).toEqual([2, 1, 3]);
    await page.close();
  });
});
