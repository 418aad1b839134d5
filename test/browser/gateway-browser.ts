// The fixture of the browser tests that feed the page real MQTT telemetry themselves: the gateway in this
// process (embedded broker), an mqtt.js client publishing to it and Debian's Chromium.
import mqtt, { type MqttClient } from "mqtt";
import type { Page } from "playwright-core";
import { startTestGateway, type TestGateway, type TestGatewayOptions } from "../helpers/gateway.ts";
import { launchBrowser, type Browser } from "./chromium.ts";

export interface GatewayBrowser {
  gw: TestGateway;
  /** Connected to the gateway's broker, no reconnects. */
  pub: MqttClient;
  browser: Browser;
  /** Closes the browser, the client and the gateway. */
  close(): Promise<void>;
}

/** Starts all three; on a failure closes what had started and throws. */
export async function startGatewayBrowser(opts: TestGatewayOptions & { clientId: string }): Promise<GatewayBrowser> {
  const { clientId, ...gatewayOpts } = opts;
  const gw = await startTestGateway(gatewayOpts);
  let pub: MqttClient | undefined;
  let browser: Browser | undefined;
  const close = async () => {
    try {
      await browser?.close();
      await pub?.endAsync();
    } finally {
      await gw.close();
    }
  };
  try {
    pub = await mqtt.connectAsync(gw.mqttUrl, { clientId, reconnectPeriod: 0 });
    browser = await launchBrowser();
  } catch (err) {
    await close();
    throw err;
  }
  return { gw, pub, browser, close };
}

/** A new tab on `url` (page errors go to the console), once its stream is live. */
export async function openLivePage(browser: Browser, url: string, timeout = 15_000): Promise<Page> {
  const page = await browser.context.newPage();
  page.on("pageerror", (err) => console.error("page error:", err));
  await page.goto(url);
  await page.waitForSelector('#conn[data-conn-state="live"]', { timeout });
  return page;
}
