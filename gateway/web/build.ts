// Builds the dashboard into gateway/web/dist/ (index.html, app.js, app.css and source maps), which the
// gateway serves at `/`. uPlot and its CSS are bundled: the page needs no CDN and works offline.
// Usage: tsx gateway/web/build.ts [--watch]
import { build, context, type BuildOptions } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const outdir = here("./dist");

const options: BuildOptions = {
  entryPoints: [
    { in: here("./src/main.ts"), out: "app" },
    { in: here("./src/styles.css"), out: "app" },
  ],
  outdir,
  bundle: true,
  format: "esm",
  target: ["chrome100", "firefox100", "safari15.4"],
  minify: true,
  sourcemap: true,
  legalComments: "linked",
  logLevel: "warning",
};

await mkdir(outdir, { recursive: true });
await copyFile(here("./src/index.html"), `${outdir}/index.html`);
if (process.argv.includes("--watch")) {
  const ctx = await context(options);
  await ctx.watch();
  console.log(`watching gateway/web/src → ${outdir}`);
} else {
  await build(options);
  console.log(`dashboard built → ${outdir}`);
}
