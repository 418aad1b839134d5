/**
 * `npm run build:boards [-- --board <id> …] [--with-local] [--no-simulator]`
 * Builds the firmware for every board configuration in devs/boards/, then the simulator's default
 * build last (so devs/.devicescript/bin/bytecode.devs is always the simulator's). Exit code 1 if any fails.
 */
import { parseArgs } from "node:util";
import { listBoardIds } from "./catalog.ts";
import { buildBoard, buildSimulatorFirmware, type BuildResult } from "./build-board.ts";

const usage = `usage: npm run build:boards [-- --board <id> ...] [--with-local] [--no-simulator] [--verbose]
  --board <id>     build only these boards (repeatable); default: every devs/boards/*.board.json
  --with-local     also layer devs/.env.local (default: left out, so CI and laptops build the same)
  --no-simulator   skip the default (simulator) build
  --verbose        print the DeviceScript CLI output`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        board: { type: "string", multiple: true },
        "with-local": { type: "boolean", default: false },
        "no-simulator": { type: "boolean", default: false },
        verbose: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    }).values;
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  if (args.help) {
    console.log(usage);
    return 0;
  }
  const ids = args.board ?? listBoardIds();
  if (ids.length === 0) {
    console.error("no board configurations found in devs/boards/");
    return 1;
  }
  const results: BuildResult[] = [];
  for (const id of ids) {
    process.stdout.write(`building ${id} ... `);
    const r = await buildBoard(id, { includeLocal: args["with-local"], echo: args.verbose });
    console.log(r.ok ? `ok (${r.seconds.toFixed(1)} s)` : "FAILED");
    report(r);
    results.push(r);
  }
  if (!args["no-simulator"]) {
    process.stdout.write("building simulator (devs/.devicescript/bin/bytecode.devs) ... ");
    const r = await buildSimulatorFirmware({ echo: args.verbose });
    console.log(r.ok ? `ok (${r.seconds.toFixed(1)} s)` : "FAILED");
    report(r);
    results.push(r);
  }
  console.log("\nboard                 sensor  arch      bytecode sha256 (first 16)  bytes  output");
  for (const r of results) {
    const out = r.stage ? r.stage.bytecode.replace(/.*\/devs\//, "devs/") : r.id === "simulator" ? "devs/.devicescript/bin/bytecode.devs" : "-";
    console.log(`${r.id.padEnd(21)} ${(r.board?.sensor ?? "-").padEnd(7)} ${(r.board?.archId ?? "-").padEnd(9)} ${(r.bytecodeSha256?.slice(0, 16) ?? (r.ok ? "-" : "FAILED")).padEnd(27)} ${String(r.bytecodeBytes ?? "-").padStart(6)}  ${r.ok ? out : "-"}`);
  }
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) console.error(`\n${failed.length} of ${results.length} builds failed: ${failed.map((r) => r.id).join(", ")}`);
  return failed.length > 0 ? 1 : 0;
}

function report(r: BuildResult): void {
  for (const w of r.warnings) console.log(`  ${w}`);
  for (const p of r.problems) console.error(`  ${p.replace(/\n/g, "\n    ")}`);
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
