// Debian's Chromium driven by playwright-core (`npx playwright install` cannot download here).
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";

const CANDIDATES = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"];

/** The Chromium binary, or undefined: callers skip with a visible message, or fail when CI=true. */
export const chromiumPath: string | undefined = CANDIDATES.find((p): p is string => !!p && existsSync(p));

export const skipReason =
  chromiumPath === undefined && process.env.CI !== "true"
    ? "browser tests skipped: no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)"
    : undefined;
if (skipReason) console.warn(`\n⚠ ${skipReason}\n`);

/**
 * A host name that Chromium resolves to 127.0.0.1. A page loaded through it is, like a Pi reached at
 * http://<lan-ip>, not a secure context (only localhost and loopback addresses count as secure over http):
 * no Web Locks, no crypto.randomUUID. Use `lanUrl()` to open the gateway that way.
 */
export const LAN_HOST = "sensors-lan.test";

/** The same URL through LAN_HOST. */
export function lanUrl(url: string): string {
  const u = new URL(url);
  u.hostname = LAN_HOST;
  return u.href;
}

// Flags from docs (`--headless` comes from playwright's headless option): without the background-networking
// ones Chromium tries Google's hosts on this closed network. gateway/bench uses them too.
export const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const ARGS = [...CHROMIUM_FLAGS, `--host-resolver-rules=MAP ${LAN_HOST} 127.0.0.1`];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * A fresh browser with its own empty user-data-dir (persistent context = tabs share storage and locks).
 * `extraArgs` add flags, e.g. `--ignore-certificate-errors-spki-list=<hash>` to trust one test certificate.
 */
export async function launchBrowser(extraArgs: string[] = []): Promise<Browser> {
  if (chromiumPath === undefined) throw new Error("Chromium not found: apt-get install chromium (CI=true requires it)");
  const userDataDir = await mkdtemp(join(tmpdir(), "sensors-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: [...ARGS, ...extraArgs],
    viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}
