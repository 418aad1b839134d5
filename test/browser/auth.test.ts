// Issues 5 and 10, auth in a real browser: the gateway with its default token auth (the admin token) and a
// configured token. The page signs in with the login URL the gateway prints, a token in its URL or the login
// form; the cookie is HttpOnly and SameSite=Strict and still carries the EventSource; signing out works across
// tabs; and a page of another origin (same site: another port on the same host, so the cookie does travel)
// cannot send a command with the signed-in browser's cookie. A read-only token is offered nothing that writes.
import { createServer, type Server } from "node:http";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../helpers/ports.ts";
import { launchBrowser, skipReason, type Browser } from "./chromium.ts";
import { waitForPoints } from "./page.ts";
import { startStack, type Stack } from "./stack.ts";

const TOKEN = "browser-test-token-0123456789";
const VIEWER = "viewer-test-token-0123456789";

describe.skipIf(skipReason !== undefined)("dashboard with auth on", () => {
  let stack: Stack;
  let configDir: string;
  const browsers: Browser[] = [];

  beforeAll(async () => {
    configDir = await mkdtemp(join(tmpdir(), "sensors-web-auth-"));
    const config = join(configDir, "gateway.json");
    const auth = {
      mode: "tokens",
      tokens: [
        { name: "browser", token: TOKEN, read: ["sensors/#"], write: true },
        { name: "viewer", token: VIEWER, read: ["sensors/#"], write: false },
      ],
    };
    // An alert that fires on the first reading and stays: something to acknowledge (or not).
    const alerts = { rules: [{ id: "any-reading", name: "Any reading", kind: "threshold", metric: "temperature", above: -1000, severity: "info" }] };
    await writeFile(config, JSON.stringify({ auth, alerts }));
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

  it("a read-only token sees the devices and alerts but no Acknowledge, Save or command controls; a write token gets them", async () => {
    const device = stack.deviceIds()[0]!;
    /** A signed-in page in its own browser (its own cookie), once its devices, alert and write right are in. */
    const openAs = async (token: string) => {
      const page = await (await freshBrowser()).context.newPage();
      page.on("pageerror", (err) => console.error("page error:", err));
      await page.goto(`${stack.url}?access_token=${token}`);
      await page.waitForSelector('#conn[data-conn-state="live"]', { timeout: 10_000 });
      await waitForPoints(page, [device], 1);
      await page.waitForSelector('body[data-write="true"], body[data-write="false"]', { timeout: 10_000 });
      const alert = page.locator(`#alerts li[data-rule-id="any-reading"][data-device-id="${device}"]`);
      await alert.waitFor({ timeout: 10_000 });
      return { page, alert, card: page.locator(`.device[data-device-id="${device}"]`) };
    };
    const visibleButtons = (page: Page) =>
      page.$$eval("button", (els) => els.filter((b) => b.checkVisibility()).map((b) => b.textContent!.trim()));

    const viewer = await openAs(VIEWER);
    expect(await viewer.page.locator("body").getAttribute("data-write")).toBe("false");
    expect(await viewer.alert.getAttribute("data-acked")).toBe("false");
    expect(await viewer.alert.getByRole("button", { name: /^Acknowledge/ }).count()).toBe(0);
    expect(await viewer.alert.locator(".readonly-hint").isVisible()).toBe(true);
    expect(await viewer.alert.locator(".readonly-hint").textContent()).toBe("read-only token");
    expect(await viewer.card.locator(".device-edit").isVisible()).toBe(false);
    expect(await viewer.card.getByRole("button", { name: "Save" }).count()).toBe(0);
    expect(await viewer.card.locator(".command-form").isVisible()).toBe(false);
    expect(await viewer.card.getByRole("button", { name: "Send" }).count()).toBe(0);
    const hint = viewer.card.locator('[data-field="readOnly"]');
    expect(await hint.isVisible()).toBe(true);
    expect(await hint.textContent()).toBe("read-only token: no renaming, no commands");
    // Nothing on the whole page writes: the only button is "Sign out".
    expect(await visibleButtons(viewer.page)).toEqual(["Sign out"]);
    // The data is all there: the card, its chart, the alert's text.
    expect(await viewer.card.locator('[data-field="temperature"]').textContent()).toMatch(/°C$/);
    expect(await viewer.alert.textContent()).toContain("above -1000");
    // And the gateway agrees: that token may not acknowledge, rename or send.
    const alertId = Number(await viewer.alert.getAttribute("data-alert-id"));
    const asViewer = (path: string, method: string, body?: unknown) =>
      fetch(`${stack.url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${VIEWER}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      }).then((r) => r.status);
    expect(await asViewer(`api/alerts/${alertId}/ack`, "POST")).toBe(403);
    expect(await asViewer(`api/devices/${device}`, "PATCH", { name: "x" })).toBe(403);
    expect(await asViewer(`api/devices/${device}/commands`, "POST", { op: "ping" })).toBe(403);
    await mkdir("test-results", { recursive: true });
    await viewer.page.screenshot({ path: "test-results/read-only.png" });

    const writer = await openAs(TOKEN);
    expect(await writer.page.locator("body").getAttribute("data-write")).toBe("true");
    expect(await writer.alert.locator(".readonly-hint").isHidden()).toBe(true);
    expect(await writer.card.locator('[data-field="readOnly"]').isHidden()).toBe(true);
    expect(await writer.card.locator(".command-form").isVisible()).toBe(true);
    expect(await writer.card.getByRole("button", { name: "Send" }).isVisible()).toBe(true);
    await writer.card.locator(".device-edit summary").click();
    expect(await writer.card.getByRole("button", { name: "Save" }).isVisible()).toBe(true);
    expect(await visibleButtons(writer.page)).toEqual(expect.arrayContaining(["Sign out", "Acknowledge", "Save", "Send"]));
    // The button works for it, and the read-only page sees the acknowledgement live.
    await writer.alert.getByRole("button", { name: /^Acknowledge/ }).click();
    await expect.poll(() => writer.alert.getAttribute("data-acked-by"), { timeout: 10_000 }).toBe("browser");
    await expect.poll(() => viewer.alert.getAttribute("data-acked-by"), { timeout: 10_000 }).toBe("browser");
    expect(await viewer.alert.locator(".readonly-hint").isHidden()).toBe(true); // nothing left to acknowledge
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
