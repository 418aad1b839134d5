/** `npm run certs`: a local CA and a server certificate for this machine (certs.ts). */
import { execFileSync } from "node:child_process";
import { isIP } from "node:net";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { defaultNames, ErrOpenssl, issueCertificates } from "./certs.ts";

const USAGE = `Make a local CA (once) and a new server certificate for this machine's names and addresses.

  npm run -s certs -- [--dir <data-dir>/tls] [--ca-dir <dir>] [--owner <user>] [--name <dns name>]... [--ip <address>]... [--only]

  --dir    output directory of server.key/server.crt, what the gateway reads (default: $DATA_DIR/tls, or data/tls)
  --ca-dir directory of ca.key/ca.crt, made once and kept (default: ca/ next to --dir); keep it unreadable by the
           gateway's user (run as root, --owner for the gateway's user)
  --owner  user that gets server.key/server.crt (when run as root), e.g. sensors
  --name   an extra DNS name for the certificate (repeatable), e.g. a DNS name your router gives the Pi
  --ip     an extra IP address (repeatable)
  --only   use only --name/--ip, not this machine's host name, <host>.local, addresses and localhost
Re-running keeps the CA (clients trust it once) and renews the server certificate; a running gateway reloads it.`;

function fail(message: string): never {
  process.stderr.write(`certs: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      dir: { type: "string" },
      "ca-dir": { type: "string" },
      owner: { type: "string" },
      name: { type: "string", multiple: true },
      ip: { type: "string", multiple: true },
      only: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  }));
} catch (e) {
  fail((e as Error).message);
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
for (const ip of values.ip ?? []) if (!isIP(ip)) fail(`--ip ${JSON.stringify(ip)} is not an IP address`);
for (const name of values.name ?? []) if (!/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(name)) fail(`--name ${JSON.stringify(name)} is not a DNS name`);
const extra = [...(values.name ?? []), ...(values.ip ?? [])];
const names = values.only ? extra : [...new Set([...defaultNames(), ...extra])];
if (names.length === 0) fail("--only needs at least one --name or --ip");
const dir = values.dir ?? join(process.env.DATA_DIR || "data", "tls");
const caDir = values["ca-dir"] ?? join(dirname(dir), "ca");
if (resolve(caDir) === resolve(dir)) fail("--ca-dir must differ from --dir: the gateway reads --dir, the CA key must not be there");

function userIds(user: string): { uid: number; gid: number } {
  try {
    const id = (flag: string) => Number(execFileSync("id", [flag, user], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    return fail(`--owner ${JSON.stringify(user)}: no such user`);
  }
}
const owner = values.owner === undefined ? undefined : userIds(values.owner);

try {
  const r = issueCertificates({ dir, caDir, names, owner });
  process.stdout.write(
    [
      r.caCreated ? `New CA: ${r.caCert} (its key ${r.caKey} stays on this machine, out of the gateway's reach)` : `CA kept: ${r.caCert}`,
      `  SHA-256 ${r.caFingerprint256}`,
      `Server certificate: ${r.cert} (key ${r.key}), serial ${r.serial}, valid until ${r.validTo}`,
      `  for ${r.names.join(", ")}`,
      "",
      "Gateway (gateway.env):",
      `  TLS_CERT=${r.cert}`,
      `  TLS_KEY=${r.key}`,
      "Clients trust the CA once, ca.crt only (hardware/pi/README.md \"Encryption\"):",
      `  mosquitto_sub --cafile ${r.caCert} -h <host> -p 8883 ...     MQTT.js: { ca: readFileSync("ca.crt") }`,
      "ESP32 devices cannot use this CA: they trust only public roots (hardware/pi/README.md).",
      "",
    ].join("\n"),
  );
} catch (e) {
  if (e instanceof ErrOpenssl) {
    process.stderr.write(`certs: ${e.message}\n`);
    process.exit(1);
  }
  throw e;
}
