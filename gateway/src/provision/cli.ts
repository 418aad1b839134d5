import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEVICE_ID_RULE } from "../protocol/ids.ts";
import { provisionDevice, updateEnvFile } from "./provision.ts";

const USAGE = `Create a device's MQTT credentials and print its settings (devs/.env.local lines).

  npm run -s provision -- --device <id> [--board <board-id>] [--data-dir data] [--mosquitto-passwd <file>]
                          [--mqtt-host <host>] [--mqtt-port <port>] [--mqtt-hosts <host[:port],...>] [--tls]
                          [--env-file devs/.env.local]

  --device            device id = MQTT username = client id: ${DEVICE_ID_RULE}
  --data-dir          gateway data dir; writes <dir>/mqtt-credentials.json for the embedded broker
                      (default "data", or none when only --mosquitto-passwd is given)
  --mosquitto-passwd  also add the device to this Mosquitto password file (then: systemctl reload mosquitto)
  --board             a board from devs/boards/ (checked), named in the flashing hint
  --mqtt-host/--mqtt-port/--tls  broker address for the device; default: devs/.env.defaults
  --mqtt-hosts        several brokers the device fails over between (MQTT_HOSTS), e.g.
                      192.168.1.20:1883,192.168.1.21:1883 (port default --mqtt-port / MQTT_PORT; up to 4);
                      every broker needs the device's login (give each its --mosquitto-passwd, or share data)
  --env-file          write the settings into this file instead of only printing them
Settings go to stdout, everything else to stderr, so \`> devs/.env.local\` works.`;

function fail(message: string): never {
  process.stderr.write(`provision: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        device: { type: "string" },
        board: { type: "string" },
        "data-dir": { type: "string" },
        "mosquitto-passwd": { type: "string" },
        "mqtt-host": { type: "string" },
        "mqtt-port": { type: "string" },
        "mqtt-hosts": { type: "string" },
        tls: { type: "boolean" },
        "env-file": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE + "\n");
    return;
  }
  if (values.device === undefined) fail("--device is required");
  if (values.board !== undefined && !existsSync(join("devs", "boards", `${values.board}.board.json`))) {
    fail(`unknown board ${JSON.stringify(values.board)}: no devs/boards/${values.board}.board.json`);
  }
  let port: number | undefined;
  if (values["mqtt-port"] !== undefined) {
    port = Number(values["mqtt-port"]);
    if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`--mqtt-port must be 1-65535, got ${values["mqtt-port"]}`);
  }
  const dataDir = values["data-dir"] ?? (values["mosquitto-passwd"] === undefined ? "data" : undefined);

  let result;
  try {
    result = await provisionDevice({
      deviceId: values.device,
      dataDir,
      mosquittoPasswd: values["mosquitto-passwd"],
      mqtt: { host: values["mqtt-host"], port, tls: values.tls, hosts: values["mqtt-hosts"] },
    });
  } catch (err) {
    fail((err as Error).message);
  }
  for (const file of result.written) process.stderr.write(`provision: credentials for ${values.device} written to ${file}\n`);
  if (values["env-file"] !== undefined) {
    updateEnvFile(values["env-file"], result.settings);
    process.stderr.write(`provision: settings written to ${values["env-file"]} (keep it out of git)\n`);
  } else {
    process.stdout.write(result.settings.map(([key, value]) => `${key}=${value}`).join("\n") + "\n");
  }
  if (values.board !== undefined) {
    process.stderr.write(`provision: next, flash the board: npm run flash -- --board ${values.board}\n`);
  }
}

await main();
