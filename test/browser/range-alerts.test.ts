// The dashboard's range picker, summaries, alerts and device names in Debian's Chromium against the real
// gateway (in this process, embedded broker), fed by real MQTT telemetry published with mqtt.js. Readings carry
// the device's own `t` (docs/protocol.md "Reading time"), which is how days of history are seeded in seconds.
// The page is read through its data attributes (gateway/web/README.md "For tests and tools").
import mqtt, { type MqttClient } from "mqtt";
import { mkdir } from "node:fs/promises";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestGateway } from "../helpers/gateway.ts";
import { waitUntil } from "../helpers/wait.ts";
import { skipReason, type Browser } from "./chromium.ts";
import { openLivePage, startGatewayBrowser, type GatewayBrowser } from "./gateway-browser.ts";

const HOT = "hot-dev";
const SLEEPY = "sleepy-dev";
const RANGED = "ranged-dev";
const NAMED = "named-dev";
const BATT = "batt-dev";
const NO_BATT = "nobatt-dev";
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

interface ApiAlert {
  alertId: number;
  ruleId: string;
  deviceId: string;
  state: string;
  ackedAt: number | null;
  ackedBy: string | null;
}

interface ApiSeries {
  step: string;
  from: number;
  to: number;
  points: Array<{ t: number; count?: number }>;
}

interface ChartState {
  step: string;
  range: string;
  loadState: string;
  bands: string;
  points: number;
  bucketReadings: number;
  from: number;
  to: number;
  xLabels: string;
  xOverlap: string;
}

describe.skipIf(skipReason !== undefined)("ranges, summaries, alerts and names in a real browser", () => {
  let fixture: GatewayBrowser | undefined;
  let gw: TestGateway;
  let browser: Browser;
  let pub: MqttClient;
  const seqs = new Map<string, number>();

  beforeAll(async () => {
    fixture = await startGatewayBrowser({
      clientId: "range-alerts-pub",
      config: {
        summaries: { coalesceMs: 200 },
        alerts: {
          checkIntervalMs: 200,
          rules: [
            { id: "hot", name: "Too hot", kind: "threshold", metric: "temperature", above: 30, hysteresis: 1, severity: "critical", scope: { device: HOT } },
            // Overdue at once after the announced wake, for the one device that sleeps in this file.
            { id: "overdue", kind: "overdue", factor: 1, graceS: 0, scope: { device: SLEEPY } },
          ],
        },
      },
    });
    ({ gw, pub, browser } = fixture);
  }, 60_000);

  afterAll(() => fixture?.close());

  /** One reading of `deviceId` (the next seq), taken at `t` (the device's clock) or, without it, now. */
  function reading(client: MqttClient, deviceId: string, readings: Record<string, number>, t: number | null = null, battery: number | null = null) {
    const seq = (seqs.get(deviceId) ?? 0) + 1;
    seqs.set(deviceId, seq);
    const payload = { v: 1, seq, boot: 1, t, readings, battery };
    return client.publishAsync(`sensors/${deviceId}/telemetry`, JSON.stringify(payload), { qos: 1 });
  }

  /** Publishes readings taken at `times` (ms), a few hundred in flight at a time. */
  async function seed(client: MqttClient, deviceId: string, times: number[], value: (t: number) => Record<string, number>) {
    for (let i = 0; i < times.length; i += 250) {
      await Promise.all(times.slice(i, i + 250).map((t) => reading(client, deviceId, value(t), t)));
    }
  }

  const api = async <T>(path: string, init?: RequestInit): Promise<T> => {
    const res = await fetch(`${gw.url}/${path}`, init);
    if (!res.ok) throw new Error(`${init?.method ?? "GET"} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };

  const openPage = (query = ""): Promise<Page> => openLivePage(browser, `${gw.url}/${query}`);

  const card = (page: Page, id: string) => page.locator(`.device[data-device-id="${id}"]`);
  /** `.chart` the card's main chart, `.battery-chart` its small battery chart. */
  type ChartClass = "chart" | "battery-chart";
  const chart = (page: Page, id: string, cls: ChartClass = "chart") => page.locator(`.device .${cls}[data-device-id="${id}"]`);

  async function chartState(page: Page, id: string, cls: ChartClass = "chart"): Promise<ChartState> {
    return chart(page, id, cls).evaluate((el) => {
      const d = (el as HTMLElement).dataset;
      return {
        step: d.step ?? "",
        range: d.range ?? "",
        loadState: d.loadState ?? "",
        bands: d.bands ?? "",
        points: Number(d.points),
        bucketReadings: Number(d.bucketReadings || 0),
        from: Number(d.from),
        to: Number(d.to),
        xLabels: d.xLabels ?? "",
        xOverlap: d.xOverlap ?? "",
      };
    });
  }

  /** Waits until the chart has loaded `range` and drawn what it holds. */
  async function loaded(page: Page, id: string, range: string, timeout = 20_000, cls: ChartClass = "chart"): Promise<ChartState> {
    await page.waitForFunction(
      ({ id, range, cls }) => {
        const d = document.querySelector<HTMLElement>(`.device .${cls}[data-device-id="${id}"]`)?.dataset;
        return d !== undefined && d.range === range && d.loadState === "ready" && d.drawnPoints === d.points && d.xLabels !== undefined;
      },
      { id, range, cls },
      { timeout, polling: 50 },
    );
    return chartState(page, id, cls);
  }

  it("a rule fires while the page is open, is acknowledged with the button, resolves and leaves the list", async () => {
    await reading(pub, HOT, { temperature: 22, humidity: 40 });
    await api(`api/devices/${HOT}`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: "Boiler room", location: "Basement" }),
    });
    const page = await openPage();
    const other = await openPage(); // a second tab: the leader's stream feeds it
    await card(page, HOT).waitFor();
    expect(await page.locator("#alerts").getAttribute("data-count")).toBe("0");
    expect(await page.locator("#alerts-empty").isVisible()).toBe(true);

    await reading(pub, HOT, { temperature: 31.5, humidity: 40 });
    const item = page.locator(`#alerts li[data-rule-id="hot"][data-device-id="${HOT}"]`);
    await item.waitFor({ timeout: 10_000 });
    expect(await item.getAttribute("data-state")).toBe("firing");
    expect(await item.getAttribute("data-acked")).toBe("false");
    expect(await item.getAttribute("data-severity")).toBe("critical");
    const text = (await item.textContent())!;
    expect(text).toContain("Boiler room"); // the device's name, not only its id
    expect(text).toMatch(/since \w+ \d+ \d\d:\d\d/);
    expect(text).toContain("31.5");
    await other.locator(`#alerts li[data-rule-id="hot"]`).waitFor({ timeout: 10_000 });
    // Screen readers hear of it (the list itself is not a live region: its "ago" texts tick).
    expect(await page.locator("#alerts-announce").textContent()).toBe("Alert: temperature 31.5 above 30 on Boiler room (hot-dev)");
    // The card counts its firing alerts.
    await expect.poll(() => card(page, HOT).getAttribute("data-alerts-firing")).toBe("1");
    await mkdir("test-results", { recursive: true });
    await page.screenshot({ path: "test-results/alerts.png" });
    // Phone width: the alert, the range picker and the cards wrap, no horizontal scrolling.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: "test-results/alerts-phone.png" });
    await page.setViewportSize({ width: 1280, height: 900 });

    const alertId = Number(await item.getAttribute("data-alert-id"));
    await item.getByRole("button", { name: /^Acknowledge/ }).click();
    await expect.poll(() => item.getAttribute("data-acked"), { timeout: 10_000 }).toBe("true");
    expect(await item.textContent()).toMatch(/acknowledged by open at/);
    expect(await item.getByRole("button", { name: /^Acknowledge/ }).isHidden()).toBe(true);
    const [acked] = await api<{ alerts: ApiAlert[] }>(`api/alerts?state=all&device=${HOT}`).then((r) => r.alerts.filter((a) => a.alertId === alertId));
    expect(acked).toMatchObject({ state: "firing", ackedBy: "open" });
    expect(acked!.ackedAt).toBeGreaterThan(0);
    // The other tab learns of the acknowledgement from the `alert` event.
    await expect.poll(() => other.locator(`#alerts li[data-alert-id="${alertId}"]`).getAttribute("data-acked"), { timeout: 10_000 }).toBe("true");

    // Back below 30 − hysteresis: resolved, it leaves the active list in both tabs.
    await reading(pub, HOT, { temperature: 25, humidity: 40 });
    await expect.poll(() => page.locator("#alerts li").count(), { timeout: 10_000 }).toBe(0);
    await expect.poll(() => other.locator("#alerts li").count(), { timeout: 10_000 }).toBe(0);
    expect(await page.locator("#alerts").getAttribute("data-count")).toBe("0");
    expect(await page.locator("#alerts-empty").isVisible()).toBe(true);
    expect(await page.locator("#alerts-announce").textContent()).toMatch(/^Resolved: .* on Boiler room \(hot-dev\)$/);
    await expect.poll(() => card(page, HOT).getAttribute("data-alerts-firing")).toBe("0");

    // The card's history (loaded when opened) keeps it: resolved and acknowledged.
    await card(page, HOT).locator(".alert-history summary").click();
    const past = card(page, HOT).locator(`.alert-history li[data-alert-id="${alertId}"]`);
    await past.waitFor({ timeout: 10_000 });
    expect(await past.getAttribute("data-state")).toBe("resolved");
    expect(await past.getAttribute("data-acked")).toBe("true");
    // A reloaded page starts from GET /api/alerts: nothing firing.
    await page.reload();
    await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 15_000 });
    await card(page, HOT).waitFor();
    await expect.poll(() => page.locator("#alerts").getAttribute("data-count")).toBe("0");

    // It fires again: the new alert appears in the history too, live.
    await card(page, HOT).locator(".alert-history summary").click();
    await card(page, HOT).locator(`.alert-history li[data-alert-id="${alertId}"]`).waitFor({ timeout: 10_000 });
    await reading(pub, HOT, { temperature: 33, humidity: 40 });
    await page.locator('#alerts li[data-rule-id="hot"][data-state="firing"]').waitFor({ timeout: 10_000 });
    await expect.poll(() => card(page, HOT).locator('.alert-history li[data-state="firing"]').count(), { timeout: 10_000 }).toBe(1);
    await reading(pub, HOT, { temperature: 20, humidity: 40 });
    await expect.poll(() => page.locator("#alerts li").count(), { timeout: 10_000 }).toBe(0);
    await Promise.all([page.close(), other.close()]);
  });

  it("a device past its announced wake shows overdue, with when it was due, until it reports", async () => {
    const page = await openPage();
    const sleepMs = 1500;
    await pub.publishAsync(`sensors/${SLEEPY}/status`, JSON.stringify({ v: 1, state: "sleeping", sleepMs, boot: 1 }), { qos: 1 });
    await expect.poll(() => card(page, SLEEPY).getAttribute("data-status"), { timeout: 10_000 }).toBe("overdue");
    const dueAt = Number(await card(page, SLEEPY).getAttribute("data-next-wake-at"));
    expect(dueAt).toBeGreaterThan(0);
    const status = (await card(page, SLEEPY).locator('[data-field="status"]').textContent())!;
    expect(status).toMatch(/^overdue · was due at \w+ \d+ \d\d:\d\d \(.+ ago\)$/);
    await page.locator(`#alerts li[data-kind="overdue"][data-device-id="${SLEEPY}"]`).waitFor({ timeout: 10_000 });
    await expect
      .poll(async () => (await api<{ devices: Array<{ deviceId: string; status: string }> }>("api/devices")).devices.find((d) => d.deviceId === SLEEPY)?.status)
      .toBe("overdue");
    await card(page, SLEEPY).screenshot({ path: "test-results/overdue.png" });
    // Its next report ends it.
    await reading(pub, SLEEPY, { temperature: 21, humidity: 50 });
    await expect.poll(() => card(page, SLEEPY).getAttribute("data-status"), { timeout: 10_000 }).toBe("online");
    await expect.poll(() => page.locator(`#alerts li[data-device-id="${SLEEPY}"]`).count(), { timeout: 10_000 }).toBe(0);
    await page.close();
  });

  it("the range picker switches 1 h / 24 h / 7 d / 30 d; the chart shows the API's step, bands when bucketed", async () => {
    const now = Date.now();
    // Every 30 s over the last day (too many to draw raw over 24 h), every 10 min over the 29 days before.
    const times: number[] = [];
    for (let t = now - 30 * DAY + HOUR; t < now - DAY; t += 10 * MINUTE) times.push(t);
    for (let t = now - DAY + 30_000; t < now; t += 30_000) times.push(t);
    await seed(pub, RANGED, times, (t) => ({ temperature: 20 + 5 * Math.sin(t / (6 * HOUR)), humidity: 50 + 10 * Math.cos(t / DAY) }));
    await waitUntil(async () => (await api<ApiSeries>(`api/devices/${RANGED}/series?metric=temperature&step=raw&from=${now - HOUR}`)).points.length >= 119, {
      timeoutMs: 20_000,
      message: "the seeded readings stored",
    });

    const page = await openPage();
    const picker = page.locator("#range");
    expect(await picker.getAttribute("data-range")).toBe("24h"); // the default
    const expected: Record<string, string> = { "1h": "raw", "24h": "1m" };
    for (const [label, key] of [["1 h", "1h"], ["24 h", "24h"], ["7 d", "7d"], ["30 d", "30d"]] as const) {
      await page.getByLabel(label, { exact: true }).check();
      await expect.poll(() => picker.getAttribute("data-range")).toBe(key);
      expect(new URL(page.url()).searchParams.get("range")).toBe(key);
      const c = await loaded(page, RANGED, key);
      // The step the page shows is the one the gateway chose for that window, and it drew what the gateway has.
      const answer = await api<ApiSeries>(`api/devices/${RANGED}/series?metric=temperature&from=${c.from}&to=${c.to}&step=${c.step}`);
      expect(c.step).toBe(answer.step);
      if (expected[key] !== undefined) expect(c.step).toBe(expected[key]);
      expect(c.bands).toBe(String(c.step !== "raw"));
      expect(c.points).toBe(answer.points.length);
      if (c.step !== "raw") expect(c.bucketReadings).toBe(answer.points.reduce((s, p) => s + (p.count ?? 0), 0));
      expect(c.to - c.from).toBeGreaterThanOrEqual({ "1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY }[key] - 1000);
      // Time axis: labels never touch; within a day only times, beyond a day dates (with times when close).
      expect(c.xOverlap).toBe("false");
      const labels = c.xLabels.split(" | ");
      expect(labels.length).toBeGreaterThanOrEqual(2);
      const time = /^\d\d:\d\d$/;
      const date = /^[A-Z][a-z]{2} \d{1,2}$/;
      if (key === "1h" || key === "24h") for (const l of labels) expect(l).toMatch(new RegExp(`${time.source}|${date.source}`));
      if (key === "30d") for (const l of labels) expect(l).toMatch(date);
      // The step shown is the one the CSV link exports, over the same window.
      const href = new URL((await card(page, RANGED).locator('a[data-field="csv"]').getAttribute("href"))!);
      expect(Object.fromEntries(href.searchParams)).toEqual({ device: RANGED, from: String(c.from), to: String(c.to), step: c.step });
      expect(await card(page, RANGED).locator('[data-field="step"]').getAttribute("data-step")).toBe(c.step);
      await card(page, RANGED).screenshot({ path: `test-results/range-${key}.png` });
    }
    // The export behind the link: buckets of the step shown.
    const href = (await card(page, RANGED).locator('a[data-field="csv"]').getAttribute("href"))!;
    const csv = await (await fetch(href)).text();
    const [header, ...rows] = csv.trim().split("\n");
    expect(header).toBe("time,t,device_id,device_name,step,metric,count,min,max,mean,last");
    expect(rows.length).toBeGreaterThan(0);
    const shownStep = (await chartState(page, RANGED)).step;
    expect(rows.every((r) => r.split(",")[4] === shownStep)).toBe(true);

    // Live in bucketed mode: a new reading updates its bucket through `summary` events (30 d: 1-hour buckets).
    const before = await chartState(page, RANGED);
    expect(before.step).toBe("1h");
    await reading(pub, RANGED, { temperature: 21, humidity: 55 });
    await expect.poll(async () => (await chartState(page, RANGED)).bucketReadings, { timeout: 10_000 }).toBe(before.bucketReadings + 1);

    // …and inserts a bucket that was not there (24 h: 1-minute buckets; a reading of the next minute).
    await page.getByLabel("24 h", { exact: true }).check();
    const perMinute = await loaded(page, RANGED, "24h");
    expect(perMinute.step).toBe("1m");
    await reading(pub, RANGED, { temperature: 22, humidity: 52 }, Math.ceil(Date.now() / MINUTE) * MINUTE + 1000);
    await expect.poll(async () => (await chartState(page, RANGED)).points, { timeout: 10_000 }).toBe(perMinute.points + 1);
    expect((await chartState(page, RANGED)).bucketReadings).toBe(perMinute.bucketReadings + 1);

    // Live in raw mode: a reading taken 20 min ago that arrives now lands at its own time, among the others.
    await page.getByLabel("1 h", { exact: true }).check();
    const raw = await loaded(page, RANGED, "1h");
    expect(raw.step).toBe("raw");
    await reading(pub, RANGED, { temperature: 19, humidity: 45 }, Date.now() - 20 * MINUTE - 7000);
    const lateSeq = seqs.get(RANGED)!;
    await expect.poll(async () => (await chartState(page, RANGED)).points, { timeout: 10_000 }).toBe(raw.points + 1);
    await expect.poll(() => chart(page, RANGED).getAttribute("data-drawn-points")).toBe(String(raw.points + 1));
    expect(await chart(page, RANGED).getAttribute("data-x-sorted")).toBe("true");
    expect(await chart(page, RANGED).getAttribute("data-last-seq")).toBe(String(lateSeq)); // the highest seq…
    expect(await chart(page, RANGED).getAttribute("data-t-last-seq")).not.toBe(String(lateSeq)); // …not appended: at its own time

    // A custom from/to, and ?range= survives a reload.
    await page.getByLabel("Custom", { exact: true }).check();
    const from = new Date(now - 3 * DAY);
    const to = new Date(now - 2 * DAY);
    const local = (d: Date) => new Date(d.getTime() - d.getTimezoneOffset() * MINUTE).toISOString().slice(0, 16);
    await page.getByLabel("From", { exact: true }).fill(local(from));
    await page.getByLabel("To", { exact: true }).fill(local(to));
    await page.locator(".range-custom").getByRole("button", { name: "Show" }).click();
    const custom = await loaded(page, RANGED, "custom");
    // The inputs hold whole minutes: exactly one day apart.
    expect(custom.to - custom.from).toBe(DAY);
    expect(new URL(page.url()).searchParams.get("from")).toBe(new Date(custom.from).toISOString());
    expect(custom.xOverlap).toBe("false");
    await page.goto(`${gw.url}/?range=7d`);
    await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 15_000 });
    expect((await loaded(page, RANGED, "7d")).range).toBe("7d");
    expect(await page.getByLabel("7 d", { exact: true }).isChecked()).toBe(true);
    await page.close();
  }, 120_000);

  it("a name and location set on the card show instead of the id, in other tabs too, and survive a reload", async () => {
    await reading(pub, NAMED, { temperature: 20, humidity: 40 });
    const page = await openPage();
    const other = await openPage();
    const c = card(page, NAMED);
    await c.waitFor();
    expect(await c.locator('[data-field="name"]').textContent()).toBe(NAMED);
    // No battery in its readings: the card says why there is no value.
    expect(await c.locator('[data-field="batteryHint"]').textContent()).toBe("no battery sensor reported");
    expect(await c.locator('[data-field="battery"]').getAttribute("title")).toBe("no battery sensor reported");

    await c.locator(".device-edit summary").click();
    await c.getByLabel("Name", { exact: true }).fill("  Greenhouse  ");
    await c.getByLabel("Location", { exact: true }).fill("North wall");
    await c.getByRole("button", { name: "Save" }).click();
    await expect.poll(() => c.locator('[data-field="name"]').textContent(), { timeout: 10_000 }).toBe("Greenhouse");
    expect(await c.locator('[data-field="location"]').textContent()).toBe("North wall");
    expect(await c.locator('[data-field="deviceId"]').textContent()).toBe(NAMED); // the id stays as a detail
    expect(await c.getAttribute("data-name")).toBe("Greenhouse");
    const stored = (await api<{ devices: Array<{ deviceId: string; name: string; location: string }> }>("api/devices")).devices.find((d) => d.deviceId === NAMED);
    expect(stored).toMatchObject({ name: "Greenhouse", location: "North wall" });
    // The other tab hears of it through the `device` event.
    await expect.poll(() => card(other, NAMED).locator('[data-field="name"]').textContent(), { timeout: 10_000 }).toBe("Greenhouse");
    // The log names it too, and the device filter finds it by name.
    await reading(pub, NAMED, { temperature: 20.5, humidity: 41 });
    await expect.poll(() => page.locator(`#log li[data-kind="telemetry"][data-device-id="${NAMED}"]`).first().textContent(), { timeout: 10_000 }).toContain(
      "Greenhouse",
    );
    await page.locator("#filter-device").fill("greenh");
    expect(await page.$$eval(".device:not([hidden])", (els) => els.map((el) => (el as HTMLElement).dataset.deviceId))).toEqual([NAMED]);
    await page.locator("#filter-device").fill("");

    await page.reload();
    await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 15_000 });
    await expect.poll(() => card(page, NAMED).locator('[data-field="name"]').textContent(), { timeout: 10_000 }).toBe("Greenhouse");
    expect(await card(page, NAMED).locator('[data-field="location"]').textContent()).toBe("North wall");
    await card(page, NAMED).screenshot({ path: "test-results/named-card.png" });

    // Clearing the name shows the id again.
    await card(page, NAMED).locator(".device-edit summary").click();
    await card(page, NAMED).getByLabel("Name", { exact: true }).fill("");
    await card(page, NAMED).getByRole("button", { name: "Save" }).click();
    await expect.poll(() => card(page, NAMED).locator('[data-field="name"]').textContent(), { timeout: 10_000 }).toBe(NAMED);
    await Promise.all([page.close(), other.close()]);
  });

  it("a device that reports its battery gets a small battery chart, raw and bucketed like the main one; one that does not, none", async () => {
    const now = Date.now();
    // Every minute over two days (more than step=auto answers raw: 30 days are bucketed), the battery draining
    // from 3.9 V to 3.7 V.
    const times: number[] = [];
    for (let t = now - 2 * DAY + 5 * MINUTE; t < now - MINUTE; t += MINUTE) times.push(t);
    const volts = (t: number) => Math.round((3.9 - (0.2 * (t - (now - 2 * DAY))) / (2 * DAY)) * 1000) / 1000;
    for (let i = 0; i < times.length; i += 250) {
      await Promise.all(times.slice(i, i + 250).map((t) => reading(pub, BATT, { temperature: 21, humidity: 45 }, t, volts(t))));
    }
    await reading(pub, NO_BATT, { temperature: 20, humidity: 40 });
    const batterySeries = (from: number, to: number, step: string) =>
      api<ApiSeries>(`api/devices/${BATT}/series?metric=battery&from=${from}&to=${to}&step=${step}`);
    await waitUntil(async () => (await batterySeries(now - 3 * DAY, now, "1m")).points.reduce((n, p) => n + (p.count ?? 0), 0) === times.length, {
      timeoutMs: 20_000,
      message: "the seeded battery values summarised",
    });

    // 1 h: raw, in the main chart's step.
    const page = await openPage("?range=1h");
    const battery = chart(page, BATT, "battery-chart");
    const raw = await loaded(page, BATT, "1h", 20_000, "battery-chart");
    expect(raw.step).toBe("raw");
    expect((await loaded(page, BATT, "1h")).step).toBe("raw");
    expect(raw.points).toBe((await batterySeries(raw.from, raw.to, "raw")).points.length);
    expect(raw.points).toBeGreaterThanOrEqual(5);
    expect(await battery.isVisible()).toBe(true);
    expect(await battery.getAttribute("aria-label")).toBe(`Battery voltage of ${BATT} over time`);
    expect(raw.xOverlap).toBe("false");
    // Live: a reading with a battery value adds a point; one without adds none (the main chart takes both).
    const mainBefore = (await chartState(page, BATT)).points;
    await reading(pub, BATT, { temperature: 21.5, humidity: 44 }, null, 3.69);
    await expect.poll(async () => (await chartState(page, BATT, "battery-chart")).points, { timeout: 10_000 }).toBe(raw.points + 1);
    await expect.poll(async () => (await chartState(page, BATT)).points, { timeout: 10_000 }).toBe(mainBefore + 1);
    await reading(pub, BATT, { temperature: 21.6, humidity: 44 });
    await expect.poll(async () => (await chartState(page, BATT)).points, { timeout: 10_000 }).toBe(mainBefore + 2);
    expect((await chartState(page, BATT, "battery-chart")).points).toBe(raw.points + 1);
    await mkdir("test-results", { recursive: true });
    await card(page, BATT).screenshot({ path: "test-results/battery-1h.png" });

    // 30 d: more readings than auto answers raw, so buckets: a min–max band and mean, the same step as the main chart.
    await page.getByLabel("30 d", { exact: true }).check();
    const main = await loaded(page, BATT, "30d");
    const bucketed = await loaded(page, BATT, "30d", 20_000, "battery-chart");
    expect(bucketed.step).not.toBe("raw");
    expect(bucketed.step).toBe(main.step);
    expect(bucketed.bands).toBe("true");
    const answer = await batterySeries(bucketed.from, bucketed.to, bucketed.step);
    expect(bucketed.points).toBe(answer.points.length);
    expect(bucketed.bucketReadings).toBe(times.length + 1);
    expect(bucketed.xOverlap).toBe("false");
    await card(page, BATT).screenshot({ path: "test-results/battery-30d.png" });

    // No battery reported: no battery chart (and the card says why there is no value).
    const none = await loaded(page, NO_BATT, "30d", 20_000, "battery-chart");
    expect(none.points).toBe(0);
    expect(await chart(page, NO_BATT, "battery-chart").isHidden()).toBe(true);
    expect(await chart(page, NO_BATT).isVisible()).toBe(true);
    expect(await card(page, NO_BATT).locator('[data-field="batteryHint"]').textContent()).toBe("no battery sensor reported");
    await page.close();
  });

  it("a 30-day range of 10 devices loads: 1-hour buckets holding every seeded reading", async () => {
    const DEVICES = 10;
    const EVERY = 10 * MINUTE;
    const now = Date.now();
    const ids = Array.from({ length: DEVICES }, (_, i) => `fleet-${String(i).padStart(2, "0")}`);
    const times: number[] = [];
    for (let t = now - 30 * DAY + 2 * HOUR; t < now - MINUTE; t += EVERY) times.push(t);
    const started = Date.now();
    await Promise.all(
      ids.map(async (id, i) => {
        const client = await mqtt.connectAsync(gw.mqttUrl, { clientId: `seed-${id}`, reconnectPeriod: 0 });
        try {
          await seed(client, id, times, (t) => ({ temperature: 18 + i + 3 * Math.sin(t / DAY), humidity: 45 + 5 * Math.cos(t / (3 * HOUR)) }));
        } finally {
          await client.endAsync();
        }
      }),
    );
    const seeded = Date.now() - started;
    await waitUntil(
      async () => {
        const s = await api<ApiSeries>(`api/devices/${ids.at(-1)}/series?metric=temperature&step=1h&from=${now - 30 * DAY}&to=${now}`);
        return s.points.reduce((n, p) => n + (p.count ?? 0), 0) === times.length;
      },
      { timeoutMs: 30_000, message: "every seeded reading in the summaries" },
    );

    const opened = Date.now();
    const page = await openPage("?range=30d");
    for (const id of ids) {
      const c = await loaded(page, id, "30d", 30_000);
      expect(c.step).toBe("1h");
      expect(c.bands).toBe("true");
      expect(c.bucketReadings).toBe(times.length);
      expect(c.points).toBeGreaterThanOrEqual(Math.floor((30 * DAY - 2 * HOUR) / HOUR));
      expect(c.xOverlap).toBe("false");
    }
    const loadMs = Date.now() - opened;
    // Every chart's time axis spans the 30 days, also those of devices with a single bucket.
    const axes = await page.$$eval(".device .chart", (els) => els.map((el) => (el as HTMLElement).dataset.xLabels ?? ""));
    expect(axes.length).toBeGreaterThan(DEVICES);
    for (const labels of axes) for (const l of labels.split(" | ")) expect(l).toMatch(/^[A-Z][a-z]{2} \d{1,2}$/);
    console.log(`30 d × ${DEVICES} devices: ${times.length * DEVICES} readings seeded over MQTT in ${seeded} ms; page live and every chart drawn in ${loadMs} ms`);
    expect(loadMs).toBeLessThan(30_000);
    await page.screenshot({ path: "test-results/range-30d-fleet.png", fullPage: true });
    await page.close();
  }, 180_000);
});
