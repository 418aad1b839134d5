// Issues 5 and 10, auth in a real browser: the gateway with its default token auth (the admin token) and a
// configured token. The page signs in with the login URL the gateway prints, a token in its URL or the login
// form; the cookie is HttpOnly and SameSite=Strict and still carries the EventSource; signing out works across
// tabs; and a page of another origin (same site: another port on the same host, so the cookie does travel)
// cannot send a command with the signed-in browser's cookie.
import { createServer, type Server } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../helpers/ports.ts";
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

  async function tokenCookie(browser: Browser) {
    return (await browser.context.cookies(stack.url)).find((c) => c.name === "sensors_token");
  }

  /** The login URL the gateway printed on its console. */
  function loginUrl(): string {
    const url = /^\s+(http:\/\/127\.0\.0\.1:\d+\/\?token=\S+)$/m.exec(stack.gatewayStdout())?.[1];
    if (url === undefined) throw new Error(`no login URL in the gateway's output:\n${stack.gatewayStdout()}`);
    return url;
  }

  it("without a token shows the login form; a wrong token is refused there, the right one makes the page live", async () => {
    expect((await fetch(`${stack.url}api/devices`)).status).toBe(401);
    const browser = await freshBrowser();
    const page = await browser.context.newPage();
    await page.goto(stack.url);
    await page.waitForSelector('#conn[data-conn-state="unauthorized"]', { timeout: 10_000 });
    expect(await page.locator(".device").count()).toBe(0);
    expect(await page.locator("#logout").isHidden()).toBe(true);

    await page.getByLabel("Access token").fill("not-the-token-0123456789");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.locator("#login-error").textContent()).toBe("That token was not accepted.");
    expect(await tokenCookie(browser)).toBeUndefined();

    await page.getByLabel("Access token").fill(TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 10_000 });
    await expect.poll(() => page.locator("#login").isHidden()).toBe(true);
    await waitForPoints(page, stack.deviceIds(), 2);
    const cookie = (await tokenCookie(browser))!;
    expect(cookie).toMatchObject({ value: TOKEN, httpOnly: true, sameSite: "Strict", secure: false, path: "/" });
    // HttpOnly: no script on the page can read it
    expect(await page.evaluate(() => document.cookie)).not.toContain(TOKEN);
    await expect.poll(() => page.locator("#logout").isVisible()).toBe(true);
  });

  it("opens the login URL the gateway printed: signed in with the admin token, and the token out of the address bar", async () => {
    const url = loginUrl();
    const admin = new URL(url).searchParams.get("token")!;
    const browser = await freshBrowser();
    const page = await browser.context.newPage();
    await page.goto(url);
    await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 10_000 });
    await waitForPoints(page, stack.deviceIds(), 2);
    expect(page.url()).toBe(stack.url);
    // the redirect left no history entry with the token: one step back is the blank tab the page opened in
    await page.goBack();
    expect(page.url()).toBe("about:blank");
    expect(await tokenCookie(browser)).toMatchObject({ value: admin, httpOnly: true, sameSite: "Strict" });
  });

  it("takes ?access_token= from the URL into the cookie and out of the address bar", async () => {
    const browser = await freshBrowser();
    const page = await browser.context.newPage();
    await page.goto(`${stack.url}?access_token=${TOKEN}`);
    await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 10_000 });
    await waitForPoints(page, stack.deviceIds(), 2);
    expect(page.url()).not.toContain("access_token");
    expect((await tokenCookie(browser))?.value).toBe(TOKEN);
  });

  it("signs out every tab: the cookie is gone and the pages ask for a token again", async () => {
    const browser = await freshBrowser();
    const first = await browser.context.newPage();
    await first.goto(loginUrl());
    await first.waitForSelector('#conn[data-conn-state="live"]', { timeout: 10_000 });
    const second = await browser.context.newPage();
    await second.goto(stack.url);
    await second.waitForSelector('#conn[data-conn-state="live"]', { timeout: 10_000 });

    await second.getByRole("button", { name: "Sign out" }).click();
    for (const page of [first, second]) await page.waitForSelector('#conn[data-conn-state="unauthorized"]', { timeout: 10_000 });
    expect(await tokenCookie(browser)).toBeUndefined();
    expect(await first.locator("#login").isVisible()).toBe(true);
  });

  it("refuses a command from a page of another origin on the same site, although the browser sends the cookie", async () => {
    const browser = await freshBrowser();
    const page = await browser.context.newPage();
    await page.goto(`${stack.url}?access_token=${TOKEN}`);
    await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 10_000 });
    const device = stack.deviceIds()[0]!;
    const target = `${stack.url}api/devices/${device}/commands`;

    // The attacker: another port on 127.0.0.1. Same site, so even a SameSite=Strict cookie goes along.
    const port = await freePort();
    const attacker: Server = createServer((_req, res) => {
      res.writeHead(200, { "Content-Type": "text/html" }).end(`<!doctype html><meta charset="utf-8">
        <form id="f" method="POST" action="${target}" enctype="text/plain">
          <input name='{"op":"reboot","x":"' value='"}'>
        </form>
        <script>
          fetch(${JSON.stringify(target)}, { method: "POST", mode: "no-cors", credentials: "include",
            headers: { "Content-Type": "text/plain" }, body: '{"op":"reboot"}' })
            .finally(() => document.getElementById("f").submit());
        </script>`);
    });
    await new Promise<void>((r) => attacker.listen(port, "127.0.0.1", r));
    try {
      const before = await metrics();
      const evil = await browser.context.newPage();
      const formAnswer = evil.waitForResponse((r) => r.url() === target && r.request().resourceType() === "document");
      await evil.goto(`http://127.0.0.1:${port}/`);
      const answer = await formAnswer;
      expect(answer.status()).toBe(403);
      expect(await answer.json()).toMatchObject({ error: { code: "cross_origin" } });
      // the browser did send the cookie: this is the gateway's origin check at work, not SameSite
      expect((await answer.request().allHeaders()).cookie).toContain("sensors_token=");
      await expect.poll(async () => (await metrics()).crossOrigin, { timeout: 10_000 }).toBe(before.crossOrigin + 2);
      expect((await metrics()).queued).toBe(before.queued); // no command was created

      // the dashboard itself, same origin, still sends commands with the same cookie
      const ok = await page.evaluate(async (url) => {
        const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"op":"ping"}' });
        return res.status;
      }, target);
      expect(ok).toBe(202);
    } finally {
      attacker.closeAllConnections();
      await new Promise((r) => attacker.close(r));
    }
  });

  async function metrics(): Promise<{ crossOrigin: number; queued: number }> {
    const text = await (await fetch(`${stack.url}metrics`)).text();
    const sample = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
    return {
      crossOrigin: sample(/^gateway_http_errors_total\{code="cross_origin"\} (\d+)$/m),
      queued: sample(/^gateway_command_transitions_total\{state="queued"\} (\d+)$/m),
    };
  }
});
