// Issue 13: Debian's Chromium loads the dashboard from the gateway's own HTTPS with a real certificate, over
// HTTP/2, and its SSE stream brings a reading published over MQTT. Chromium trusts exactly that certificate's key
// (--ignore-certificate-errors-spki-list), not every certificate; with another key it refuses the page.
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, skipReason, type Browser } from "../browser/chromium.ts";
import { waitForPoints } from "../browser/page.ts";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { hasOpenssl, makePki, spkiHash, type TestPki } from "./pki.ts";

const DEVICE = "h2-browser-dev";

describe.skipIf(skipReason !== undefined || !hasOpenssl)("dashboard over HTTPS and HTTP/2 in a real browser", () => {
  let pki: TestPki;
  let gw: TestGateway;
  let browser: Browser | undefined;
  beforeAll(async () => {
    pki = makePki();
    gw = await startTestGateway({ config: { tls: { cert: pki.good.cert, key: pki.good.key } } });
    browser = await launchBrowser([`--ignore-certificate-errors-spki-list=${spkiHash(pki.good.cert)}`]);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    pki?.close();
  });

  it("loads the page over h2 and streams events over h2", async () => {
    const page = await browser!.context.newPage();
    page.on("pageerror", (err) => console.error("page error:", err));
    // The protocol of each response as Chromium's network stack saw it; the SSE response never ends, so it
    // has no resource-timing entry while it streams.
    const cdp = await browser!.context.newCDPSession(page);
    const protocols = new Map<string, string>();
    cdp.on("Network.responseReceived", (e: { response: { url: string; protocol?: string } }) => {
      protocols.set(new URL(e.response.url).pathname, e.response.protocol ?? "");
    });
    await cdp.send("Network.enable");

    const response = await page.goto(`${gw.url}/`);
    expect(response?.status()).toBe(200);
    await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 15_000 });
    const navigation = await page.evaluate(() => (performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming).nextHopProtocol);
    expect(navigation).toBe("h2");
    expect(protocols.get("/events")).toBe("h2");

    const pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: "h2-browser-pub", reconnectPeriod: 0 });
    try {
      for (const seq of [1, 2]) {
        await pub.publishAsync(
          `sensors/${DEVICE}/telemetry`,
          JSON.stringify({ v: 1, seq, boot: 1, t: null, readings: { temperature: 20 + seq, humidity: 40 }, battery: 3.8 }),
          { qos: 1 },
        );
      }
    } finally {
      await pub.endAsync();
    }
    await waitForPoints(page, [DEVICE], 2, 15_000);
    // Every finished request of the page (scripts, styles, API calls) came over h2 too.
    const resources = await page.evaluate(() =>
      (performance.getEntriesByType("resource") as PerformanceResourceTiming[]).map((r) => ({ name: r.name, protocol: r.nextHopProtocol })),
    );
    expect(resources.length).toBeGreaterThan(0);
    expect(resources.filter((r) => r.protocol !== "h2")).toEqual([]);
  });

  it("seven tabs (more than HTTP/1.1's six connections per host) all go live over one HTTP/2 connection", async () => {
    const context = browser!.context;
    const connections = new Set<string>();
    const pages = [];
    for (let i = 0; i < 7; i++) {
      const page = await context.newPage();
      const cdp = await context.newCDPSession(page);
      type Response = { url: string; protocol?: string; connectionId: number; fromDiskCache?: boolean; fromServiceWorker?: boolean };
      cdp.on("Network.responseReceived", ({ response: r }: { response: Response }) => {
        // Responses from the cache (later tabs' page, script, styles) came over no connection
        if (r.url.startsWith(gw.url) && !r.fromDiskCache && !r.fromServiceWorker) connections.add(`${r.protocol} ${r.connectionId}`);
      });
      await cdp.send("Network.enable");
      await page.goto(`${gw.url}/`);
      pages.push(page);
    }
    for (const page of pages) await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 15_000 });
    expect([...connections]).toHaveLength(1);
    expect([...connections][0]).toMatch(/^h2 \d+$/);
    await Promise.all(pages.map((p) => p.close()));
  });

  it("refuses the page when it trusts another key", async () => {
    const other = await launchBrowser([`--ignore-certificate-errors-spki-list=${spkiHash(pki.expired.cert)}`]);
    try {
      const page = await other.context.newPage();
      const error = await page.goto(`${gw.url}/`).then(
        () => undefined,
        (e: Error) => e.message,
      );
      expect(error).toMatch(/ERR_CERT_AUTHORITY_INVALID/);
    } finally {
      await other.close();
    }
  });
});
