/**
 * The page bundles gateway/src/protocol (event types, topic rules, the device-state reducer). tsconfig gives
 * every file Node's types, so a Node-only API there would typecheck and then break in the browser: build the
 * bundle the way gateway/web/build.ts does and look for them.
 */
import { build } from "esbuild";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");

describe("dashboard bundle", () => {
  it("contains no Node-only API and no zod", async () => {
    const out = await build({
      entryPoints: [join(ROOT, "gateway/web/src/main.ts")],
      bundle: true,
      format: "esm",
      write: false,
      minify: false,
      logLevel: "silent",
    });
    const js = out.outputFiles[0]!.text;
    expect(js).toContain("applyDeviceEvent"); // the shared reducer is in it
    for (const nodeOnly of [/\bBuffer\b/, /\bprocess\./, /\brequire\(/, /from "node:/, /\bZodError\b/]) {
      expect(js, String(nodeOnly)).not.toMatch(nodeOnly);
    }
  });
});
