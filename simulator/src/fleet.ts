/**
 * A fleet: N simulated devices in this process, all running the same compiled firmware against one broker.
 *
 * @example
 * const fleet = await startFleet({ devices: 3, brokerUrl: "mqtt://127.0.0.1:1883", seed: 1, timeScale: 10 });
 * fleet.on("standby", ({ device, ms }) => console.log(device.id, "sleeps", ms));
 * console.log(fleet.devices.map((d) => d.id));
 * await fleet.stop();
 */
import { EventEmitter } from "node:events";
import { mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ADC_FULL_SCALE_V, type BatteryOption, SIM_BATTERY_PIN, batteryDivider, validateBattery } from "./battery.ts";
import { SimDevice, type DeviceEvents } from "./device.ts";
import { loadEnvSettings, validateSettings } from "./env-settings.ts";
import {
  DeviceFaults,
  type FaultCounters,
  type FaultPlan,
  type FaultRecord,
  emptyFaultCounters,
  validateFaultPlan,
} from "./faults.ts";
import { type WireCounters, brokerAddress, sumWireCounters } from "./network.ts";
import { type ProfileName, type RuntimeProfile, resolveProfile } from "./profile.ts";
import { type SensorOverrides, validateSensorOverrides } from "./sensor-values.ts";
import { DEFAULT_BYTECODE_PATH, type Firmware, readFirmware } from "./vm.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const DEFAULT_FLASH_ROOT = join(REPO_ROOT, "data/sim-flash");
const DEVS_DIR = join(REPO_ROOT, "devs");

export type DeviceSettings = Record<string, unknown>;

export interface FleetOptions {
  /** How many devices (1..1000). */
  devices: number;
  /**
   * Every device's TCP goes here, whatever MQTT_HOST/MQTT_PORT its settings say (except to an address of
   * `brokerUrls`). mqtt:// or mqtts://. Default: the first of `brokerUrls`.
   */
  brokerUrl?: string;
  /**
   * Several brokers for failover (MQTT_HOSTS): a device socket to the host:port of one of these URLs reaches
   * that broker. Devices whose settings have no MQTT_HOSTS get one listing these addresses in this order.
   */
  brokerUrls?: string[];
  /** Seeds device ids, sensor values and the fault schedule. Default 1. */
  seed?: number;
  /** Deep sleep lasts ms/timeScale real ms. Default 1. */
  timeScale?: number;
  /** One flash image file per device. Default data/sim-flash/seed-<seed>. Survives the process. */
  flashDir?: string;
  /** Erase the devices' flash images first (factory-new devices). Default false. */
  eraseFlash?: boolean;
  /** Compiled firmware. Default devs/.devicescript/bin/bytecode.devs. */
  bytecodePath?: string;
  /**
   * DeviceScript settings written into each device's settings service before its program starts, on top of
   * devs/.env.defaults and devs/.env.local (e.g. `{ INTERVAL_S: 5, QOS: 2 }`). A function gives per-device values.
   */
  settings?: DeviceSettings | ((index: number) => DeviceSettings);
  /** Read devs/.env.defaults and .env.local as base settings. Default true. */
  useEnvFiles?: boolean;
  /** Seeded fault injection (issue 3). Default: none. */
  faults?: FaultPlan;
  /** Print firmware console lines prefixed with the device id: true = stdout, or a function. Default false. */
  echo?: boolean | ((line: string) => void);
  /** Also print VM diagnostics. Default false. */
  echoDmesg?: boolean;
  /** Prefix of the seed string each VM hashes into its hardware id. Default "sim". */
  idPrefix?: string;
  /** Runtime profile (simulator/src/profile.ts): "esp32" (default) or "vm". */
  profile?: ProfileName;
  /**
   * Simulated battery in volts, constant or `(index, simMs) => volts` (simMs: the simulated wall clock the
   * sensor values follow). Default none (no battery server; telemetry battery stays null). The firmware reads
   * it through its "battery" potentiometer role when BATTERY_PIN is set; the fleet sets BATTERY_PIN = "sim"
   * unless the settings name one. Reading = volts / (3.1 × BATTERY_DIV), BATTERY_DIV default 2.
   */
  battery?: BatteryOption;
  /**
   * Sensor values instead of the seeded ones of sensor-values.ts, per sensor: `(index, simMs) => value`
   * (°C, %RH), read like `battery` (at each boot and every 500 ms, with the same simulated wall clock), e.g.
   * `{ temperature: (i) => (i === 0 ? hot : 21.5) }`. Sensors without one keep the seeded values (the default).
   */
  sensors?: SensorOverrides;
}

export interface FleetCounters {
  faults: FaultCounters;
  wire: WireCounters;
  boots: number;
  flashWrites: number;
  /** Firmware-written settings records over the runtime's read limit (settings-limit events). */
  settingsOverLimit: number;
  /** Boot loops entered (boot-loop events). */
  bootLoops: number;
  /** Devices bricked by a torn settings write (bricked events). */
  bricked: number;
}

/** Fleet events: the device events, each with `device` added (and the device's `clock`, as every device event). */
export type FleetEvent<K extends keyof DeviceEvents> = DeviceEvents[K] & { device: SimDevice; clock: number };

export interface Fleet extends EventEmitter {
  readonly devices: readonly SimDevice[];
  readonly firmware: Firmware;
  readonly seed: number;
  readonly flashDir: string;
  /** The runtime profile every device runs under. */
  readonly profile: RuntimeProfile;
  /** Every injected fault in order of injection (the schedule itself is a function of the seed). */
  readonly faultLog: readonly FaultRecord[];
  counters(): FleetCounters;
  /**
   * Changes the fault plan from now on, for every device or only the device at `index`: the given keys are
   * merged over the plan in force (probabilities, powerCutWindowMs, powerOffMs; not `seed`). Every later
   * opportunity is decided with the new values, so e.g. `setFaults({ wifiFail: 1 }, 0)` keeps device 0 off the
   * network from its next boot on and `setFaults({ wifiFail: 0 }, 0)` lets its next boot connect again.
   */
  setFaults(plan: FaultPlan, index?: number): void;
  on<K extends keyof DeviceEvents>(event: K, listener: (e: FleetEvent<K>) => void): this;
  once<K extends keyof DeviceEvents>(event: K, listener: (e: FleetEvent<K>) => void): this;
  off<K extends keyof DeviceEvents>(event: K, listener: (e: FleetEvent<K>) => void): this;
  /** Stops every device. Safe to call twice. */
  stop(): Promise<void>;
}

const DEVICE_EVENTS: (keyof DeviceEvents)[] = [
  "boot",
  "standby",
  "wake",
  "log",
  "dmesg",
  "panic",
  "power-cut",
  "flash",
  "publish",
  "sensor-read",
  "wifi-up",
  "settings-limit",
  "boot-loop",
  "torn-write",
  "bricked",
];

class FleetImpl extends EventEmitter implements Fleet {
  readonly devices: SimDevice[] = [];
  readonly faultLog: FaultRecord[] = [];
  private readonly faultsByDevice: DeviceFaults[] = [];
  /** The plan object each device's DeviceFaults reads at every decision (its own copy: setFaults changes it). */
  private readonly plans: FaultPlan[] = [];
  private stopped = false;

  constructor(
    readonly firmware: Firmware,
    readonly seed: number,
    readonly flashDir: string,
    readonly profile: RuntimeProfile,
  ) {
    super();
  }

  addDevice(device: SimDevice, faults: DeviceFaults, plan: FaultPlan): void {
    this.devices.push(device);
    this.faultsByDevice.push(faults);
    this.plans.push(plan);
    for (const name of DEVICE_EVENTS) {
      device.on(name, (payload: object) => this.emit(name, { ...payload, device }));
    }
  }

  recordFault(record: FaultRecord): void {
    this.faultLog.push(record);
  }

  counters(): FleetCounters {
    const faults = emptyFaultCounters();
    for (const f of this.faultsByDevice) {
      for (const kind of Object.keys(faults) as (keyof FaultCounters)[]) faults[kind] += f.injected[kind];
    }
    return {
      faults,
      wire: sumWireCounters(this.devices.map((d) => d.wire)),
      boots: this.devices.reduce((n, d) => n + d.boots, 0),
      flashWrites: this.devices.reduce((n, d) => n + d.flashWrites, 0),
      settingsOverLimit: this.devices.reduce((n, d) => n + d.settingsOverLimit, 0),
      bootLoops: this.devices.reduce((n, d) => n + d.bootLoops, 0),
      bricked: this.devices.reduce((n, d) => n + d.bricked, 0),
    };
  }

  setFaults(plan: FaultPlan, index?: number): void {
    if (plan.seed !== undefined) throw new RangeError("setFaults: the fault seed is fixed at startFleet");
    if (index !== undefined && !(Number.isInteger(index) && index >= 0 && index < this.plans.length)) {
      throw new RangeError(`setFaults: no device at index ${String(index)} (0..${this.plans.length - 1})`);
    }
    const targets = index === undefined ? this.plans : [this.plans[index]!];
    for (const target of targets) validateFaultPlan({ ...target, ...plan });
    for (const target of targets) Object.assign(target, plan);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.devices.map((d) => d.stop()));
  }
}

function parseBrokerUrl(text: string, option: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RangeError(`${option} is not a URL: ${text}`);
  }
  if (url.protocol !== "mqtt:" && url.protocol !== "mqtts:") {
    throw new RangeError(`${option} must be mqtt:// or mqtts://, got ${text}`);
  }
  return url;
}

/**
 * Starts `devices` simulated devices. Resolves once every device has booted, received its settings and the
 * firmware (so `fleet.devices[i].id` is known). Throws ErrSimulatorSetup when the VM or the bytecode is missing.
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const count = options.devices;
  if (!Number.isInteger(count) || count < 1 || count > 1000) {
    throw new RangeError(`devices must be an integer 1..1000, got ${String(count)}`);
  }
  const brokerUrls = (options.brokerUrls ?? []).map((u) => parseBrokerUrl(u, "brokerUrls"));
  const brokerUrl =
    options.brokerUrl !== undefined ? parseBrokerUrl(options.brokerUrl, "brokerUrl") : brokerUrls[0];
  if (brokerUrl === undefined) throw new RangeError("brokerUrl (or brokerUrls) is required");
  const brokerHosts = brokerUrls.map((u) => `${brokerAddress(u).host}:${brokerAddress(u).port}`).join(",");
  const seed = options.seed ?? 1;
  const timeScale = options.timeScale ?? 1;
  if (!(timeScale > 0)) throw new RangeError(`timeScale must be > 0, got ${timeScale}`);
  const faultPlan = options.faults ?? {};
  validateFaultPlan(faultPlan);
  const profile = resolveProfile(options.profile);
  validateBattery(options.battery);
  validateSensorOverrides(options.sensors);
  const firmware = readFirmware(options.bytecodePath ?? DEFAULT_BYTECODE_PATH);
  const flashDir = resolve(options.flashDir ?? join(DEFAULT_FLASH_ROOT, `seed-${seed}`));
  if (options.eraseFlash) rmSync(flashDir, { recursive: true, force: true });
  mkdirSync(flashDir, { recursive: true });
  const baseSettings = options.useEnvFiles === false ? {} : loadEnvSettings(DEVS_DIR);
  const echo = options.echo === true ? (line: string) => console.log(line) : options.echo || undefined;

  // Simulated wall clock for sensor values: starts now, runs timeScale times faster.
  const epoch = Date.now();
  const clock = () => epoch + (Date.now() - epoch) * timeScale;

  const fleet = new FleetImpl(firmware, seed, flashDir, profile);
  const idPrefix = options.idPrefix ?? "sim";
  for (let index = 0; index < count; index++) {
    const extra = typeof options.settings === "function" ? options.settings(index) : (options.settings ?? {});
    const settings: DeviceSettings = { ...baseSettings, ...extra };
    if (brokerHosts && settings.MQTT_HOSTS === undefined) settings.MQTT_HOSTS = brokerHosts;
    const battery = options.battery;
    if (battery !== undefined && (settings.BATTERY_PIN === undefined || settings.BATTERY_PIN === "")) {
      settings.BATTERY_PIN = SIM_BATTERY_PIN;
    }
    const fullScale = ADC_FULL_SCALE_V * batteryDivider(settings);
    if (typeof battery === "number" && battery > fullScale) {
      throw new RangeError(
        `battery ${battery} V is above what device ${index} can measure (${fullScale.toFixed(2)} V: 3.1 V ADC × BATTERY_DIV)`,
      );
    }
    validateSettings(settings, `device ${index} settings`, profile);
    const hardwareId = `${idPrefix}-${seed}-${index}`;
    const plan: FaultPlan = { ...faultPlan };
    const faults = new DeviceFaults(plan, faultPlan.seed ?? seed, index, (r) => fleet.recordFault(r));
    const device = new SimDevice({
      index,
      hardwareId,
      firmware,
      flashPath: join(flashDir, `${hardwareId}.flash`),
      brokerUrl,
      brokerUrls,
      seed,
      timeScale,
      settings,
      faults,
      clock,
      echo,
      echoDmesg: options.echoDmesg,
      profile,
      battery:
        battery === undefined
          ? undefined
          : typeof battery === "number"
            ? () => battery
            : (simMs: number) => battery(index, simMs),
      sensors: options.sensors,
    });
    fleet.addDevice(device, faults, plan);
  }
  try {
    // Sequential first boots: each deploy writes flash a few times; spreading them keeps start-up smooth.
    for (const device of fleet.devices) await device.start();
  } catch (err) {
    await fleet.stop();
    throw err;
  }
  return fleet;
}
