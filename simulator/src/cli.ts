/**
 * `npm run sim -- --devices 10 --broker mqtt://127.0.0.1:1883` — a fleet of simulated devices until Ctrl-C.
 */
import { COMMAND_SECONDS } from "../../gateway/src/protocol/commands.ts";
import { parseArgs } from "node:util";
import { startFleet, type FleetOptions } from "./fleet.ts";
import { parseFaultSpec } from "./fault-spec.ts";
import { DEFAULT_PROFILE, PROFILE_NAMES, type ProfileName } from "./profile.ts";
import { ErrSimulatorSetup } from "./vm.ts";

const HELP = `Usage: npm run sim -- [options]

Runs the compiled firmware (devs/.devicescript/bin/bytecode.devs) on simulated devices in this process.

  --devices <n>        number of devices (default 3)
  --profile <name>     runtime profile: esp32 (default; behaves like the DeviceScript ESP32 runtime: Wi-Fi
                       bring-up, socket worker, public-root TLS, boot delay) or vm (the plain WASM VM)
  --broker <url>       broker for every device, mqtt:// or mqtts:// (default mqtt://127.0.0.1:1883); given
                       twice or more: several brokers, the devices' MQTT_HOSTS in that order (failover)
  --seed <n>           seeds device ids, sensor values and faults (default 1)
  --interval <s>       reading interval, the INTERVAL_S setting (5..86400; default: devs/.env.defaults)
  --time-scale <x>     deep sleep lasts interval/x real seconds (default 1)
  --qos <0|1|2>        telemetry QoS, the QOS setting (default: devs/.env.defaults)
  --set KEY=VALUE      any other device setting (repeatable; VALUE is JSON or a string)
  --flash-dir <dir>    one flash image per device (default data/sim-flash/seed-<seed>)
  --erase-flash        start with factory-new flash
  --faults <spec>      seeded faults, e.g. "cutBeforeConnack=0.1,cutMidPublish=0.05,cutBeforeAck=0.05,powerCut=0.02"
                       (also connectHang, wifiFail, tornWrite, powerCutWindowMs, powerOffMs, seed)
  --battery <volts>    simulate a battery at this voltage (sets BATTERY_PIN=sim unless --set names one)
  --bytecode <file>    compiled firmware (default devs/.devicescript/bin/bytecode.devs)
  --quiet              do not print the devices' console output
  --dmesg              also print VM diagnostics
  -h, --help           this text
`;

function fail(message: string): never {
  console.error(`sim: ${message}`);
  process.exit(2);
}

function numberOption(name: string, raw: string | undefined, check: (n: number) => boolean): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || !check(n)) fail(`invalid --${name} ${raw}`);
  return n;
}

function parseSetting(raw: string): [string, unknown] {
  const eq = raw.indexOf("=");
  if (eq <= 0) fail(`--set expects KEY=VALUE, got ${raw}`);
  const value = raw.slice(eq + 1);
  try {
    return [raw.slice(0, eq), JSON.parse(value)];
  } catch {
    return [raw.slice(0, eq), value];
  }
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        devices: { type: "string" },
        profile: { type: "string" },
        battery: { type: "string" },
        broker: { type: "string", multiple: true },
        seed: { type: "string" },
        interval: { type: "string" },
        "time-scale": { type: "string" },
        qos: { type: "string" },
        set: { type: "string", multiple: true },
        "flash-dir": { type: "string" },
        "erase-flash": { type: "boolean" },
        faults: { type: "string" },
        bytecode: { type: "string" },
        quiet: { type: "boolean" },
        dmesg: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    });
  } catch (err) {
    fail(`${(err as Error).message}\n\n${HELP}`);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return;
  }
  const settings: Record<string, unknown> = Object.fromEntries((v.set ?? []).map(parseSetting));
  const { min, max } = COMMAND_SECONDS["set-interval"]; // INTERVAL_S has the range of set-interval
  const interval = numberOption("interval", v.interval, (n) => Number.isInteger(n) && n >= min && n <= max);
  if (interval !== undefined) settings.INTERVAL_S = interval;
  const qos = numberOption("qos", v.qos, (n) => n === 0 || n === 1 || n === 2);
  if (qos !== undefined) settings.QOS = qos;
  let faults;
  try {
    faults = v.faults === undefined ? undefined : parseFaultSpec(v.faults);
  } catch (err) {
    fail((err as Error).message);
  }
  const profile = (v.profile ?? DEFAULT_PROFILE) as ProfileName;
  if (!PROFILE_NAMES.includes(profile)) fail(`invalid --profile ${v.profile} (one of ${PROFILE_NAMES.join(", ")})`);
  const battery = numberOption("battery", v.battery, (n) => n >= 0);
  const options: FleetOptions = {
    devices: numberOption("devices", v.devices, (n) => Number.isInteger(n) && n >= 1 && n <= 1000) ?? 3,
    ...(v.broker !== undefined && v.broker.length > 1 ? { brokerUrls: v.broker } : { brokerUrl: v.broker?.[0] ?? "mqtt://127.0.0.1:1883" }),
    seed: numberOption("seed", v.seed, Number.isInteger) ?? 1,
    timeScale: numberOption("time-scale", v["time-scale"], (n) => n > 0) ?? 1,
    flashDir: v["flash-dir"],
    eraseFlash: v["erase-flash"] ?? false,
    bytecodePath: v.bytecode,
    settings,
    faults,
    echo: !v.quiet,
    echoDmesg: v.dmesg ?? false,
    profile,
    battery,
  };

  const fleet = await startFleet(options);
  console.log(
    `sim: ${fleet.devices.length} device(s) running ${fleet.firmware.path} (sha256 ${fleet.firmware.sha256.slice(0, 12)}) ` +
      `against ${options.brokerUrl ?? options.brokerUrls!.join(" + ")}; profile ${fleet.profile.name}; flash in ${fleet.flashDir}; Ctrl-C stops`,
  );
  console.log(`sim: device ids ${fleet.devices.map((d) => d.id).join(" ")}`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`sim: ${signal}, stopping ${fleet.devices.length} device(s)`);
    await fleet.stop();
    const c = fleet.counters();
    console.log(
      `sim: stopped; boots ${c.boots}, flash writes ${c.flashWrites}, boot loops ${c.bootLoops}, bricked ${c.bricked}, ` +
        `settings over the read limit ${c.settingsOverLimit}, faults ${JSON.stringify(c.faults)}`,
    );
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
}

main().catch((err: unknown) => {
  if (err instanceof ErrSimulatorSetup) fail(err.message);
  console.error(err);
  process.exit(1);
});
