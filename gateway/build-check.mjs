// `npm run build:gateway` pipes `tsc --listEmittedFiles` here: the build fails when tsc wrote any file outside
// gateway/dist (an import reaching out of gateway/src would otherwise drop .js files into the source tree).
import { resolve, sep } from "node:path";
import { text } from "node:stream/consumers";

const dist = resolve("gateway/dist") + sep;
const lines = (await text(process.stdin)).split("\n");
// The pipe hides tsc's exit code: its errors are on stdout too.
const errors = lines.filter((line) => /error TS\d+/.test(line));
if (errors.length) {
  console.error(errors.join("\n"));
  process.exit(1);
}
const emitted = lines
  .filter((line) => line.startsWith("TSFILE: "))
  .map((line) => resolve(line.slice("TSFILE: ".length).trim()));
const outside = emitted.filter((file) => !file.startsWith(dist));
if (emitted.length === 0) {
  console.error("build:gateway: tsc emitted nothing");
  process.exit(1);
}
if (outside.length) {
  console.error(`build:gateway: tsc wrote ${outside.length} file(s) outside gateway/dist:\n  ${outside.join("\n  ")}`);
  process.exit(1);
}
