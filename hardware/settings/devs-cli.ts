/**
 * Test helpers that ask the pinned @devicescript/cli itself how it reads `.env` files, so the tests of
 * dotenv.ts compare against the CLI rather than against what we believe it does. No network.
 * - `loadCliParseToSettings`: the CLI's own parseToSettings / stringToSettingValue / JSONTryParse functions,
 *   cut out of the bundle's source text and run in this process (fast: every tricky line).
 * - `compileWithDevsCli`: a real compile (compileFile → readSettings: file reading, .env.local over
 *   .env.defaults, the key-length diagnostics) in a child process, about 1 s for a batch of projects.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const ROOT = join(import.meta.dirname, "../..");
export const CLI_BUNDLE = require.resolve("@devicescript/cli/built/devicescript-cli.cjs", { paths: [ROOT] });
const COMPILE_SCRIPT = join(import.meta.dirname, "devs-cli-compile.cjs");

/** Installed CLI version and the version package.json pins (the tests check they agree). */
export function devsCliVersions(): { installed: string; pinned: string } {
  const installed = JSON.parse(readFileSync(join(dirname(CLI_BUNDLE), "..", "package.json"), "utf8")).version as string;
  const pinned = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).dependencies["@devicescript/cli"] as string;
  return { installed, pinned };
}

/** Stored settings in the CLI's key order: [key (untrimmed), stored JSON text or undefined (unset)]. */
export type CliSettings = [string, string | undefined][];

/** Source text of `function <name>(...) {...}` (first occurrence), by matching braces. */
function functionSource(bundle: string, name: string): string {
  const start = bundle.indexOf(`function ${name}(`);
  if (start < 0) throw new Error(`${name} not found in ${CLI_BUNDLE}: the CLI changed, re-check hardware/settings/dotenv.ts`);
  let depth = 0;
  for (let i = bundle.indexOf("{", start); i < bundle.length; i++) {
    if (bundle[i] === "{") depth++;
    else if (bundle[i] === "}" && --depth === 0) return bundle.slice(start, i + 1);
  }
  throw new Error(`unbalanced source of ${name}`);
}

/** The CLI's parseToSettings (compiler part of the bundle), with its byte values decoded to text. */
export function loadCliParseToSettings(): { parse: (source: string | undefined) => CliSettings; source: string } {
  const bundle = readFileSync(CLI_BUNDLE, "utf8");
  const source = ["JSONTryParse2", "stringToSettingValue", "parseToSettings"].map((n) => functionSource(bundle, n)).join("\n");
  // stringToBuffer2 in the bundle is its UTF-8 encoder; TextEncoder gives the same bytes.
  const factory = new Function("stringToBuffer2", `${source}\nreturn parseToSettings;`);
  const parseToSettings = factory((s: string) => new TextEncoder().encode(s)) as (s: string | undefined, secret: boolean) => Record<string, Uint8Array | undefined>;
  const decode = (v: Uint8Array | undefined) => (v === undefined ? undefined : new TextDecoder().decode(v));
  return { parse: (text) => Object.entries(parseToSettings(text, false)).map(([k, v]) => [k, decode(v)]), source };
}

export interface CliCompileResult {
  success: boolean;
  settings: CliSettings;
  diagnostics: string[];
}

/** Compiles one throw-away project per entry with the real CLI and returns the settings it would deploy. */
export function compileWithDevsCli(projects: { defaults?: string; local?: string }[]): CliCompileResult[] {
  const out = execFileSync(process.execPath, [COMPILE_SCRIPT], { input: JSON.stringify(projects), encoding: "utf8", maxBuffer: 1 << 26 });
  const results = JSON.parse(out) as { success: boolean; settings: [string, string | null][]; diagnostics: string[] }[];
  return results.map((r) => ({ ...r, settings: r.settings.map(([k, v]) => [k, v ?? undefined]) }));
}
