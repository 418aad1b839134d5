// Issue 5: the dashboard in Debian's Chromium against the real gateway and simulated devices running the
// compiled firmware. The page is read through its data attributes (data-device-id, data-points, data-conn-state…).
import { mkdir } from "node:fs/promises";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lanUrl, launchBrowser, skipReason, type Browser } from "./chromium.ts";
import { chartInfo, everyTabUpdates, roles, waitForPoints } from "./page.ts";
import { startStack, type Stack } from "./stack.ts";

interface ApiReading {
  eventId: number;
  seq: number;
}

const DEVICES = 3;

/** Reads a gauge over and over until stopped: a second stream that lives only briefly still shows up. */
function watchGauge(read: () => Promise<number>): { stop(): Promise<number[]> } {
  const seen: number[] = [];
  let running = true;
  let failure: unknown;
  const loop = (async () => {
    while (running) {
      seen.push(await read());
      await new Promise((r) => setTimeout(r, 25));
    }
  })().catch((err: unknown) => (failure = err)); // reported by stop(), not as an unhandled rejection
  return {
    async stop() {
      running = false;
      await loop;
      if (failure !== undefined) throw failure;
      return seen;
    },
  };
}

describe.skipIf(skipReason !== undefined)("dashboard in a real browser", () => {
  let stack: Stack;
  let browser: Browser;

  beforeAll(async () => {
    // INTERVAL_S 20 at timeScale 10: a wake every ~2 s, asleep most of the time (for the command test).
    stack = await startStack({ devices: DEVICES, timeScale: 10, settings: { INTERVAL_S: 20 } });
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  async function openPage(url = stack.url): Promise<Page> {
    const page = await browser.context.newPage();
    page.on("pageerror", (err) => console.error("page error:", err));
    await page.goto(url);
    return page;
  }

  /**
   * Tests start from zero streams: pages of the previous test are closed, but the gateway counts a stream
   * until it has read the socket's close, which can trail page.close() on a busy machine.
   */
  async function noStreamsLeft(): Promise<void> {
    await expect.poll(() => stack.metric("gateway_sse_clients"), { timeout: 10_000 }).toBe(0);
  }

  it("shows live readings from every simulated device and saves a screenshot", async () => {
    const page = await openPage();
    const ids = stack.deviceIds();
    await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 15_000 });
    await waitForPoints(page, ids, 1);
    const before = await chartInfo(page);
    // Live: every chart grows while the page stays open (no reload).
    await waitForPoints(page, ids, Math.max(...before.map((c) => c.points)) + 2);
    for (const id of ids) {
      const card = page.locator(`.device[data-device-id="${id}"]`);
      await expect(card.locator('[data-field="temperature"]').textContent()).resolves.toMatch(/°C$/);
      await expect(card.locator('[data-field="humidity"]').textContent()).resolves.toMatch(/%$/);
    }
    await mkdir("test-results", { recursive: true });
    await page.screenshot({ path: "test-results/dashboard.png", fullPage: true });
    const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const light = await background();
    await page.emulateMedia({ colorScheme: "dark" });
    expect(await background()).not.toBe(light);
    // Charts are redrawn in the dark palette.
    await page.waitForFunction((n) => document.querySelectorAll(".chart .uplot").length === n, ids.length);
    await page.screenshot({ path: "test-results/dashboard-dark.png", fullPage: true });
    await page.emulateMedia({ colorScheme: "light" });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: "test-results/dashboard-phone.png", fullPage: true });
    // Phone width: no horizontal scrolling.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.close();
  });

  it("filters by device and MQTT topic filter, with labelled, keyboard-reachable controls", async () => {
    const page = await openPage();
    const ids = stack.deviceIds();
    await waitForPoints(page, ids, 1);
    // Every visible control has a label.
    const unlabelled = await page.$$eval("input:not([type=hidden]):not([hidden]), select", (els) =>
      els.filter((el) => (el as HTMLInputElement).labels?.length === 0).map((el) => el.outerHTML),
    );
    expect(unlabelled).toEqual([]);
    const visible = () => page.$$eval(".device:not([hidden])", (els) => els.map((el) => (el as HTMLElement).dataset.deviceId));
    // Keyboard: the device filter is reachable with Tab and filters as one types.
    await page.locator("body").focus();
    for (let i = 0; i < 5 && !(await page.locator("#filter-device").evaluate((el) => el === document.activeElement)); i++) {
      await page.keyboard.press("Tab");
    }
    await page.keyboard.type(ids[1]!.slice(0, 8));
    expect(await visible()).toEqual([ids[1]]);
    await page.locator("#filter-device").fill("");
    await page.locator("#filter-topic").fill(`sensors/${ids[2]}/+`);
    expect(await visible()).toEqual([ids[2]]);
    await page.locator("#filter-topic").fill("sensors/#/x");
    await expect.poll(() => page.locator("#filter-error").textContent()).toContain("Not a valid MQTT filter");
    expect(await page.locator("#filter-topic").getAttribute("aria-invalid")).toBe("true");
    await page.locator("#filter-topic").fill("#");
    expect((await visible()).sort()).toEqual([...ids].sort());
    await page.close();
  });

  it("10 tabs all update over ONE SSE connection, and a new leader takes over", async () => {
    await noStreamsLeft();
    const pages: Page[] = [];
    for (let i = 0; i < 10; i++) pages.push(await openPage());
    const ids = stack.deviceIds();
    for (const p of pages) await waitForPoints(p, ids, 1);
    await everyTabUpdates(pages);
    const before = await roles(pages);
    expect(before.filter((r) => r === "leader")).toHaveLength(1);
    expect(await stack.metric("gateway_sse_clients")).toBe(1);

    // Close the leader: another tab takes over the stream; still one connection, and it keeps updating.
    const leader = pages.splice(before.indexOf("leader"), 1)[0]!;
    await leader.close();
    await expect.poll(async () => (await roles(pages)).filter((r) => r === "leader").length, { timeout: 10_000 }).toBe(1);
    await everyTabUpdates(pages);
    await expect.poll(() => stack.metric("gateway_sse_clients"), { timeout: 10_000 }).toBe(1);
    for (const p of pages) expect((await chartInfo(p)).every((c) => c.seqGaps === 0)).toBe(true);
    await Promise.all(pages.map((p) => p.close()));
  });

  it("without Web Locks (plain http on a LAN address) tabs still share one stream through the lease", async () => {
    // Through a LAN-style host name the page is not a secure context, like a Pi at http://<lan-ip>.
    const url = lanUrl(stack.url);
    await noStreamsLeft();
    // Two leaders, even for a moment, would show as 2 in the gauge: watch it through the whole election.
    const election = watchGauge(() => stack.metric("gateway_sse_clients"));
    const pages: Page[] = [];
    let seen: number[];
    try {
      for (let i = 0; i < 4; i++) pages.push(await openPage(url));
      expect(await pages[0]!.evaluate(() => [isSecureContext, navigator.locks === undefined])).toEqual([false, true]);
      await expect.poll(async () => (await roles(pages)).filter((r) => r === "leader").length, { timeout: 10_000 }).toBe(1);
      for (const p of pages) await waitForPoints(p, stack.deviceIds(), 1);
      // Every tab receives live events, and the leader keeps its lease over several renewals (1 s each).
      await everyTabUpdates(pages);
    } finally {
      seen = await election.stop();
    }
    expect(Math.max(...seen)).toBe(1);
    expect(await stack.metric("gateway_sse_clients")).toBe(1);

    // The leader leaves: another tab takes the lease over and resumes the stream.
    const leader = pages.splice((await roles(pages)).indexOf("leader"), 1)[0]!;
    await leader.close();
    await expect.poll(async () => (await roles(pages)).filter((r) => r === "leader").length, { timeout: 15_000 }).toBe(1);
    // The closed leader's socket may reach the gateway a moment after the new one: wait for it to go.
    await expect.poll(() => stack.metric("gateway_sse_clients"), { timeout: 10_000 }).toBe(1);
    const takeover = watchGauge(() => stack.metric("gateway_sse_clients"));
    try {
      await everyTabUpdates(pages);
    } finally {
      seen = await takeover.stop();
    }
    expect(Math.max(...seen)).toBe(1);
    for (const p of pages) expect((await chartInfo(p)).every((c) => c.seqGaps === 0)).toBe(true);
    await Promise.all(pages.map((p) => p.close()));
  });

  it("a command to a sleeping device shows queued, then acked", async () => {
    const page = await openPage();
    const id = stack.deviceIds()[0]!;
    const card = page.locator(`.device[data-device-id="${id}"]`);
    await card.and(page.locator('[data-status="sleeping"]')).waitFor({ timeout: 20_000 });
    await card.getByLabel("Action").selectOption("stay-awake");
    await card.getByLabel("Seconds").fill("2");
    await card.getByRole("button", { name: "Send" }).click();
    const item = card.locator(".command-list li").first();
    await expect.poll(() => item.getAttribute("data-state"), { timeout: 5000 }).not.toBeNull();
    await expect.poll(() => item.getAttribute("data-state"), { timeout: 30_000 }).toBe("acked");
    const trail = (await item.getAttribute("data-trail"))!.split(" ");
    expect(trail[0]).toBe("queued");
    expect(trail.at(-1)).toBe("acked");
    // The gateway agrees.
    const cid = (await item.getAttribute("data-command-id"))!;
    const cmd = await stack.api<{ state: string }>(`api/devices/${id}/commands/${cid}`);
    expect(cmd.state).toBe("acked");
    await page.close();
  });

  it("a gateway restart (kill -9) mid-stream ends with complete charts: no gap, no duplicate", async () => {
    const page = await openPage();
    const ids = stack.deviceIds();
    await waitForPoints(page, ids, 2);
    await stack.restartGateway({
      hard: true,
      // The page must notice the drop before the gateway comes back.
      beforeStart: () => page.waitForSelector('#conn[data-conn-state="reconnecting"]', { timeout: 10_000 }).then(() => undefined),
    });
    await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 20_000 });
    const resumed = Object.fromEntries((await chartInfo(page)).map((c) => [c.deviceId, c.lastSeq ?? 0]));
    // Readings flow again after the restart (the devices flushed their outboxes to the new broker).
    await page.waitForFunction(
      (prev) =>
        Object.entries(prev).every(([id, seq]) => {
          const el = document.querySelector<HTMLElement>(`.device .chart[data-device-id="${id}"]`);
          return el !== null && Number(el.dataset.lastSeq) >= seq + 2;
        }),
      resumed,
      { timeout: 30_000 },
    );
    // Freeze the devices, then the page must hold exactly what the gateway stored.
    await stack.fleet.stop();
    for (const id of ids) {
      const { readings } = await stack.api<{ readings: ApiReading[] }>(`api/devices/${id}/readings?since=0&limit=1000`);
      const seqs = readings.map((r) => r.seq);
      expect(new Set(seqs).size).toBe(seqs.length);
      await expect
        .poll(async () => (await chartInfo(page)).find((c) => c.deviceId === id), { timeout: 10_000 })
        .toEqual({
          deviceId: id,
          points: seqs.length,
          firstSeq: Math.min(...seqs),
          lastSeq: Math.max(...seqs),
          seqGaps: 0,
        });
    }
    // A gateway that lost its database cannot resume our id: the page says so and keeps what it drew.
    const drawn = await chartInfo(page);
    await stack.restartGateway({ wipeData: true });
    await page.waitForSelector('#conn[data-conn-state="live"][data-reset]:not([data-reset=""])', { timeout: 20_000 });
    expect(await page.locator("#conn").textContent()).toContain("history reset");
    expect(await chartInfo(page)).toEqual(drawn);
    await page.close();
  });
});
