/**
 * The gateway's command line: `server.js` alone runs one gateway; `--workers N [--base-port P]` runs the
 * supervisor (supervisor.ts). Everything else is configured by env / GATEWAY_CONFIG (config.ts).
 */
import { parseArgs } from "node:util";

export const MAX_WORKERS = 64;

export class ErrBadArgs extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ErrBadArgs";
  }
}

export type ServerArgs = { mode: "single" } | { mode: "workers"; workers: number; basePort: number | undefined };

export const USAGE =
  "usage: server.js [--workers N [--base-port P]]\n" +
  "  --workers N     run N gateway processes in Redis mode on ports P..P+N-1 (needs REDIS_URL or redis.url)\n" +
  "  --base-port P   the first worker's HTTP port (default: PORT / config port)";

function intArg(name: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ErrBadArgs(`--${name} ${JSON.stringify(raw)}: expected an integer ${min}..${max}`);
  }
  return Number(raw);
}

/** @example parseServerArgs(["--workers", "4"]) // { mode: "workers", workers: 4, basePort: undefined } */
export function parseServerArgs(argv: string[]): ServerArgs {
  let values: { workers?: string; "base-port"?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { workers: { type: "string" }, "base-port": { type: "string" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new ErrBadArgs((e as Error).message);
  }
  if (values.workers === undefined) {
    if (values["base-port"] !== undefined) throw new ErrBadArgs("--base-port only applies with --workers N");
    return { mode: "single" };
  }
  const workers = intArg("workers", values.workers, 1, MAX_WORKERS);
  const basePort = values["base-port"] === undefined ? undefined : intArg("base-port", values["base-port"], 1, 65535);
  return { mode: "workers", workers, basePort };
}
