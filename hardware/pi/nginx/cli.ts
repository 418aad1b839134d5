/**
 * `npm run -s nginx-config -- [--workers N] [--base-port P] [--host H ...] [--listen ADDR]`: prints
 * sleepy-sensors.conf for N gateways on ports P..P+N-1 of each host (default 1 worker, port 8080, 127.0.0.1).
 * Bad arguments: a message and exit 2.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { gatewayAddresses, NGINX_CONFIG, renderNginxConfig } from "./render.ts";

const USAGE = "usage: npm run -s nginx-config -- [--workers N] [--base-port P] [--host H]... [--listen ADDR] > sleepy-sensors.conf";

function fail(message: string): never {
  process.stderr.write(`nginx-config: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function int(name: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) fail(`--${name} ${JSON.stringify(raw)}: expected an integer ${min}..${max}`);
  return Number(raw);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      workers: { type: "string", default: "1" },
      "base-port": { type: "string", default: "8080" },
      host: { type: "string", multiple: true },
      listen: { type: "string" },
    },
  }));
} catch (e) {
  fail((e as Error).message);
}
const workers = int("workers", values.workers, 1, 64);
const basePort = int("base-port", values["base-port"], 1, 65535);
if (basePort + workers - 1 > 65535) fail(`--base-port ${basePort} + ${workers} workers goes past port 65535`);
const hosts = values.host ?? ["127.0.0.1"];
for (const h of hosts) if (!/^[\w.:-]+$/.test(h)) fail(`--host ${JSON.stringify(h)}: expected a host name or address`);
if (values.listen !== undefined && !/^[\w.:[\]-]+$/.test(values.listen)) fail(`--listen ${JSON.stringify(values.listen)}: expected [address:]port`);

process.stdout.write(
  renderNginxConfig(readFileSync(NGINX_CONFIG, "utf8"), { gateways: gatewayAddresses(hosts, basePort, workers), listen: values.listen }),
);
