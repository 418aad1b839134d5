/**
 * Test oracle: runs the real @devicescript/cli compile (cli/src/build.ts compileFile → compiler readSettings) on
 * throw-away projects and prints what it would deploy. Used by hardware/settings/devs-cli.ts; no network.
 *
 * stdin: JSON [{ "defaults"?: string, "local"?: string }] (the .env.defaults / .env.local texts; absent = no file)
 * stdout: JSON [{ success, settings: [[key, storedJson | null (unset)], ...] in deploy order, diagnostics: [text] }]
 *
 * The bundle exports only mainCli, so it is loaded as a module with one extra line exporting its own top-level
 * compileFile (the file on disk is not changed). Each project is compiled in its own temp folder, the CLI's
 * working folder, like `cd <project> && devs build src/main.ts`.
 */
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const Module = require("node:module");

// stdout carries only the result: anything the CLI prints goes to stderr.
for (const level of ["log", "info", "debug", "warn"]) console[level] = (...args) => console.error(...args);

const bundle = require.resolve("@devicescript/cli/built/devicescript-cli.cjs", { paths: [path.join(__dirname, "../..")] });
const mod = new Module(bundle, null);
mod.filename = bundle;
mod.paths = Module._nodeModulePaths(path.dirname(bundle));
mod._compile(fs.readFileSync(bundle, "utf8") + "\n;module.exports.__compileFile = compileFile;\n", bundle);
const compileFile = mod.exports.__compileFile;

async function main() {
  const projects = JSON.parse(fs.readFileSync(0, "utf8"));
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "devs-env-"));
  const results = [];
  try {
    for (const [i, p] of projects.entries()) {
      const dir = path.join(root, String(i));
      fs.mkdirSync(path.join(dir, "src"), { recursive: true });
      fs.writeFileSync(path.join(dir, "devsconfig.json"), "{}\n");
      fs.writeFileSync(path.join(dir, "src", "main.ts"), 'console.log("settings probe")\n');
      if (p.defaults !== undefined) fs.writeFileSync(path.join(dir, ".env.defaults"), p.defaults);
      if (p.local !== undefined) fs.writeFileSync(path.join(dir, ".env.local"), p.local);
      process.chdir(dir);
      const res = await compileFile("src/main.ts", { quiet: true, verify: false });
      results.push({
        success: res.success,
        settings: Object.entries(res.settings ?? {}).map(([k, v]) => [k, v === undefined ? null : Buffer.from(v).toString("utf8")]),
        diagnostics: res.diagnostics.map((d) => (typeof d.messageText === "string" ? d.messageText : JSON.stringify(d.messageText))),
      });
    }
  } finally {
    process.chdir(os.tmpdir());
    fs.rmSync(root, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
