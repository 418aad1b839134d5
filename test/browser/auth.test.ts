// Issue 5 "works with auth on": the gateway in token mode; the page signs in with a token from its URL or
// from the login form, and is refused without one.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, skipReason, type Browser } from "./chromium.ts";
import { waitForPoints } from "./page.ts";
import { startStack, type Stack } from "./stack.ts";

const TOKEN = "browser-test-token-0123456789";

describe.skipIf(skipReason !== undefined)("dashboard with auth on", () => {
  let stack: Stack;
  let configDir: string;
  const browsers: Browser[] = [];

  beforeAll(async () => {
    configDir = await mkdtemp(join(tmpdir(), "sensors-web-auth-"));
    const config = join(configDir, "gateway.json");
    const auth = { mode: "tokens", tokens: [{ name: "browser", token: TOKEN, read: ["sensors/#"], write: true }] };
    await writeFile(config, JSON.stringify({ auth }));
    // AUTH_MODE="" lets the file's auth section stand (the test helper defaults to open mode).
    stack = await startStack({ devices: 1, timeScale: 10, settings: { INTERVAL_S: 20 }, env: { GATEWAY_CONFIG: config, AUTH_MODE: "" } });
  }, 120_000);

  afterAll(async () => {
    for (const b of browsers) await b.close();
    await stack?.close();
    if (configDir) await rm(configDir, { recursive: true, force: true });
  });

  async function freshBrowser(): Promise<Browser> {
    const b = await launchBrowser();
    browsers.push(b);
    return b;
  }

  it("without a token shows the login form; signing in there makes the page live", async () => {
    expect((await fetch(`${stack.url}api/devices`)).status).toBe(401);
    const page = await (await freshBrowser()).context.newPage();
    await page.goto(stack.url);
    await page.waitForSelector('#conn[data-conn-state="unauthorized"]', { timeout: 10_000 });
    expect(await page.locator(".device").count()).toBe(0);
    await page.getByLabel("Access token").fill(TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 10_000 });
    await expect.poll(() => page.locator("#login").isHidden()).toBe(true);
    await waitForPoints(page, stack.deviceIds(), 2);
  });

  it("takes ?access_token= from the URL into the cookie and out of the address bar", async () => {
    const browser = await freshBrowser();
    const page = await browser.context.newPage();
    await page.goto(`${stack.url}?access_token=${TOKEN}`);
    await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 10_000 });
    await waitForPoints(page, stack.deviceIds(), 2);
    expect(page.url()).not.toContain("access_token");
    const cookies = await browser.context.cookies(stack.url);
    expect(cookies.find((c) => c.name === "sensors_token")?.value).toBe(TOKEN);
  });
});
