/**
 * `npm run check:settings [-- --board <id>] [--target simulator|board|flash] [--settings <file>]`
 * Prints every settings problem with file and line; exit code 1 on errors. Without --board it checks the
 * simulator build's settings (devs/.env.defaults + devs/.env.local), so a firmware build can run it first.
 */
import { parseArgs } from "node:util";
import { DEVS_DIR, listBoardIds } from "../boards/catalog.ts";
import { loadSettingsLayers } from "./layers.ts";
import { formatIssue, SECRET_KEYS, validateSettings, type SettingsTarget } from "./validate.ts";

const TARGETS: SettingsTarget[] = ["simulator", "board", "flash"];
const usage = `usage: npm run check:settings [-- --board <id>] [--target ${TARGETS.join("|")}] [--settings <file> ...]`;

function main(): number {
  let v;
  try {
    v = parseArgs({ options: { board: { type: "string" }, target: { type: "string" }, settings: { type: "string", multiple: true } } }).values;
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  if (v.board && !listBoardIds().includes(v.board)) {
    console.error(`unknown board "${v.board}"; known boards: ${listBoardIds().join(", ")}\n${usage}`);
    return 2;
  }
  const target = (v.target ?? (v.board ? "board" : "simulator")) as SettingsTarget;
  if (!TARGETS.includes(target)) {
    console.error(`--target must be one of ${TARGETS.join(", ")}\n${usage}`);
    return 2;
  }
  const layers = loadSettingsLayers({ devsDir: DEVS_DIR, board: v.board, includeLocal: true, extraFiles: v.settings });
  const r = validateSettings(layers, target);
  console.log(`settings for ${v.board ?? "the simulator build"} (target ${target}), from ${layers.map((l) => l.source).join(" → ")}:`);
  for (const [key, value] of Object.entries(r.settings).sort()) {
    const shown = SECRET_KEYS.includes(key) ? "(secret)" : JSON.stringify(value);
    console.log(`  ${key.padEnd(13)} ${shown.padEnd(20)} ${r.origin[key].source}:${r.origin[key].line}`);
  }
  for (const w of r.warnings) console.log(formatIssue(w));
  for (const e of r.errors) console.error(formatIssue(e));
  console.log(r.ok ? "settings OK" : `${r.errors.length} error(s)`);
  return r.ok ? 0 : 1;
}

process.exit(main());
