/**
 * One simulated device: a VM instance per boot, a flash image that outlives instances (a file per device),
 * the device's network and Jacdac bus, deep sleep and power cuts.
 *
 * Deep sleep (DESIGN.md): `standby(ms)` reaches the host as a control-service command frame (0x87, u32 ms) that
 * the VM sends to itself. We then stop and drop that instance (RAM is lost in deep sleep) and, ms/timeScale
 * later, boot a NEW instance from the same flash image; the program is already in flash, so no redeploy.
 */
import { EventEmitter } from "node:events";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { DeviceBus } from "./jacdac-bus.ts";
import type { DeviceFaults } from "./faults.ts";
import { announcedServices, parseFrame, standbyRequest } from "./frames.ts";
import { DeviceNetwork, type WireCounters, emptyWireCounters } from "./network.ts";
import { sensorReading } from "./sensor-values.ts";
import { type Firmware, type VmInstance, createVmInstance, sha256Hex } from "./vm.ts";
import { VmSettings } from "./vm-settings.ts";

/** jacdac spec: settings service class (SRV_SETTINGS). */
const SRV_SETTINGS = 0x1107dc4a;
/** How long a first boot may take to announce itself before deploy gives up. */
const ANNOUNCE_TIMEOUT_MS = 5000;

export type BootCause = "power-on" | "wake" | "reboot" | "power-restore";
/** The firmware's console method: console.log (and console.info), console.warn, console.error. */
export type LogLevel = "log" | "warn" | "error";

/**
 * The VM prints console output as dmesg lines with a level prefix (@devicescript/core console docs): "> " log,
 * "* " warn, "! " error, "? " debug. The runtime uses the same prefixes for its own warnings and errors
 * ("! Unhandled exception", "* connection error: ..."), which are the device's log too, except the banner it
 * prints whenever a program starts (RUNTIME_BANNER). console.debug ("? ", e.g. @devicescript/net's socket
 * chatter) stays a dmesg line.
 */
const LOG_PREFIXES: Record<string, LogLevel> = { "> ": "log", "* ": "warn", "! ": "error" };
const RUNTIME_BANNER = /^\* (DeviceScript .* v\d+\.\d+\.\d+; file v|start: )/;

export type DeviceState = "off" | "awake" | "sleeping" | "power-off" | "stopped";

/** Events a SimDevice emits (fleet re-emits them with the device attached). */
export interface DeviceEvents {
  boot: { cause: BootCause; boot: number };
  standby: { ms: number; awakeMs: number };
  wake: { sleptMs: number };
  /**
   * A console line of the firmware, without the VM's level prefix: console.log ("> ", level "log"), console.warn
   * ("* ", "warn"), console.error ("! ", "error"). Runtime warnings and errors (exceptions, socket errors) carry
   * the same prefixes and come as "warn"/"error" lines too. console.debug lines are only dmesg ("? ").
   */
  log: { line: string; level: LogLevel };
  /**
   * VM diagnostics and simulator notes. Warn and error lines ("* ", "! ") come here too, prefix kept (as they
   * always did), besides their `log` event; console.log lines come only as `log`.
   */
  dmesg: { line: string };
  panic: { code: number };
  "power-cut": { afterMs: number };
  flash: { bytes: number; writes: number };
  publish: { topic: string; qos: number; dup: boolean; bytes: number };
  /** First reading of a simulated sensor delivered to the firmware in this boot; afterMs since boot. */
  "sensor-read": { sensor: "temperature" | "humidity"; afterMs: number };
}

export interface SimDeviceOptions {
  index: number;
  /** Seed string for the VM's device identifier (the VM hashes it to the 16-hex-digit id). */
  hardwareId: string;
  firmware: Firmware;
  flashPath: string;
  brokerUrl: URL;
  seed: number;
  timeScale: number;
  /** DeviceScript settings written into the VM's settings service before the program starts. */
  settings: Record<string, unknown>;
  faults: DeviceFaults;
  /** Simulated wall clock (ms since epoch) for sensor values. */
  clock: () => number;
  /** Where prefixed console lines go (undefined: nowhere). */
  echo?: (line: string) => void;
  /** Also echo VM diagnostics (dmesg). */
  echoDmesg?: boolean;
}

export class SimDevice extends EventEmitter {
  readonly index: number;
  readonly hardwareId: string;
  /** The 16-hex-digit DeviceScript id, known after the first boot (startFleet waits for it). */
  vmDeviceId = "";
  state: DeviceState = "off";
  boots = 0;
  flashWrites = 0;
  /** SHA-256 of the bytes this device passed to devsDeploy. */
  deployedSha256: string | undefined;
  /** SHA-256 of the program the VM reports running ("DevS-SHA256"), per boot. */
  runningSha256: string | undefined;
  /** This device's bytes and MQTT packets on the wire. */
  readonly wire: WireCounters = emptyWireCounters();

  private vm: VmInstance | undefined;
  private bus: DeviceBus | undefined;
  private flash: Uint8Array;
  private readonly network: DeviceNetwork;
  private timer: NodeJS.Timeout | undefined;
  private powerCutTimer: NodeJS.Timeout | undefined;
  private bootedAt = 0;
  private sleptAt = 0;
  private settingsServiceIndex: number | undefined;
  private announceWaiters: (() => void)[] = [];
  /** The VM's settings service while the first boot writes settings (it needs the VM's frames). */
  private vmSettings: VmSettings | undefined;

  constructor(private readonly options: SimDeviceOptions) {
    super();
    this.index = options.index;
    this.hardwareId = options.hardwareId;
    this.flash = existsSync(options.flashPath) ? new Uint8Array(readFileSync(options.flashPath)) : new Uint8Array(0);
    this.network = new DeviceNetwork({
      brokerUrl: options.brokerUrl,
      faults: options.faults,
      counters: this.wire,
      log: (line) => this.emitDmesg(line),
      onPublish: (p) => this.emit("publish", p),
    });
  }

  /** The id the firmware uses in topics: the DEVICE_ID setting if given, else the VM's hex id. */
  get id(): string {
    const configured = this.options.settings.DEVICE_ID;
    return typeof configured === "string" && configured !== "" ? configured : this.vmDeviceId;
  }

  /** First boot in this process: writes settings and deploys the firmware (flash keeps everything else). */
  async start(): Promise<void> {
    if (this.state !== "off") throw new Error(`device ${this.hardwareId} already started`);
    await this.boot("power-on", true);
  }

  /** Cuts power now: the VM dies mid-whatever; flash keeps only what the VM saved before. */
  powerCut(): void {
    if (this.state !== "awake") return;
    const afterMs = Date.now() - this.bootedAt;
    this.teardown();
    this.state = "power-off";
    this.emitLine(`power cut after ${afterMs} ms awake`);
    this.emit("power-cut", { afterMs });
    this.timer = setTimeout(() => void this.safeBoot("power-restore"), this.options.faults.powerOffMs);
  }

  /** Stops the device for good (fleet shutdown). Safe to call twice. */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.teardown();
    this.state = "stopped";
  }

  private async boot(cause: BootCause, deploy: boolean): Promise<void> {
    const vm = await createVmInstance({
      print: (line) => this.emitDmesg(line),
      printErr: (line) => this.emitDmesg(line),
    });
    if (this.state === "stopped") return;
    this.vm = vm;
    this.settingsServiceIndex = undefined;
    vm.flashLoad = () => this.flash;
    vm.flashSave = (image) => this.saveFlash(vm, image);
    vm.sendPacket = (frame) => this.onFrame(vm, frame);
    vm.dmesg = (line) => this.onDmesg(vm, line);
    vm.log = (...args) => this.emitDmesg(args.map(String).join(" "));
    vm.error = (...args) => this.onVmError(vm, args);
    vm.panicHandler = (code) => this.onPanic(vm, code);
    this.network.attach(vm);
    const seed = this.options.seed;
    const readSensors = new Set<string>();
    this.bus = new DeviceBus({
      onReading: (sensor) => {
        if (this.vm !== vm || readSensors.has(sensor)) return;
        readSensors.add(sensor);
        this.emit("sensor-read", { sensor, afterMs: Date.now() - this.bootedAt });
      },
      read: () => sensorReading(seed, this.index, this.options.clock()),
      // Bus replies are produced inside the VM's process loop (its sendPacket hook): never re-enter it.
      toVm: (frame) => this.toVm(vm, frame),
    });
    this.boots++;
    this.bootedAt = Date.now();
    this.state = "awake";
    vm.devsSetDeviceId(this.hardwareId);
    vm.devsStart();
    if (deploy) await this.deploy(vm);
    if (this.vm !== vm) return;
    this.schedulePowerCut();
    this.emit("boot", { cause, boot: this.boots });
  }

  /**
   * Settings first, confirmed by reading them back, then the program: it starts on the VM's next tick and
   * reads its settings at once, so nothing may still be on its way (see vm-settings.ts). No program runs
   * meanwhile: a fresh flash has none, and one already in flash starts only after the runtime's start-up delay
   * (about a second, see the README figures).
   */
  private async deploy(vm: VmInstance): Promise<void> {
    await this.waitForAnnounce();
    const settings = this.options.settings;
    if (Object.keys(settings).length > 0) {
      if (this.settingsServiceIndex === undefined || this.settingsServiceIndex < 0) {
        throw new Error(`device ${this.hardwareId}: the VM announced no settings service; cannot write settings`);
      }
      this.vmSettings = new VmSettings({
        vmDeviceIdHex: this.vmDeviceId,
        serviceIndex: this.settingsServiceIndex,
        toVm: (frame) => this.toVm(vm, frame),
        name: `device ${this.hardwareId}`,
      });
      try {
        await this.vmSettings.write(settings);
      } finally {
        this.vmSettings = undefined;
      }
    }
    if (this.vm !== vm) return; // stopped or power-cut meanwhile
    const bytes = this.options.firmware.bytes;
    const result = vm.devsDeploy(bytes);
    if (result !== 0) throw new Error(`device ${this.hardwareId}: devsDeploy failed with ${result} (bytecode rejected)`);
    this.deployedSha256 = sha256Hex(bytes);
  }

  /** Frames into the VM go on the next turn: a synchronous handlePacket inside the VM's own loop is lost. */
  private toVm(vm: VmInstance, frame: Uint8Array): void {
    setImmediate(() => {
      if (this.vm === vm) vm.handlePacket(frame);
    });
  }

  private waitForAnnounce(): Promise<void> {
    if (this.vmDeviceId && this.settingsServiceIndex !== undefined) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timeout = setTimeout(
        () => reject(new Error(`device ${this.hardwareId}: VM did not announce within ${ANNOUNCE_TIMEOUT_MS} ms`)),
        ANNOUNCE_TIMEOUT_MS,
      );
      this.announceWaiters.push(() => {
        clearTimeout(timeout);
        resolve();
      });
    });
  }

  private schedulePowerCut(): void {
    const fault = this.options.faults.decide("power-cut");
    if (!fault) return;
    const afterMs = Math.floor(this.options.faults.detailUnit(fault) * this.options.faults.powerCutWindowMs);
    this.powerCutTimer = setTimeout(() => {
      if (this.state !== "awake") return;
      this.options.faults.inject({ ...fault, detail: afterMs });
      this.powerCut();
    }, afterMs);
  }

  private onFrame(vm: VmInstance, frame: Uint8Array): void {
    if (this.vm !== vm) return;
    const parsed = parseFrame(frame);
    if (parsed && parsed.deviceIdHex === this.vmDeviceId) {
      const sleepMs = standbyRequest(parsed);
      if (sleepMs !== undefined) {
        // We are inside the VM's process loop: stop it after this call returns (the loop re-arms its timer).
        setImmediate(() => this.sleep(vm, sleepMs));
        return;
      }
      this.vmSettings?.fromVm(parsed);
      const services = announcedServices(parsed);
      if (services && this.settingsServiceIndex === undefined) {
        const index = services.indexOf(SRV_SETTINGS);
        this.settingsServiceIndex = index >= 0 ? index : -1;
        for (const wake of this.announceWaiters.splice(0)) wake();
      }
    }
    this.bus?.fromVm(frame);
  }

  private onDmesg(vm: VmInstance, line: string): void {
    if (this.vm !== vm) return;
    const level = RUNTIME_BANNER.test(line) ? undefined : LOG_PREFIXES[line.slice(0, 2)];
    if (level) {
      // Echo with the prefix kept for anything but console.log, so warnings and errors stand out.
      this.options.echo?.(`[${this.id || this.hardwareId}] ${level === "log" ? line.slice(2) : line}`);
      this.emit("log", { line: line.slice(2), level });
      if (level === "log") return;
      this.emit("dmesg", { line });
      return;
    }
    const self = /^self-device: ([0-9a-f]{16})\//.exec(line);
    if (self) this.vmDeviceId = self[1]!;
    const sha = /^DevS-SHA256: ([0-9a-f]{64})/.exec(line);
    if (sha) this.runningSha256 = sha[1];
    this.emitDmesg(line);
  }

  /**
   * The glue reports errors thrown out of the VM's process loop here, then stops the loop. An emscripten
   * ExitStatus means the firmware reset the target (`ds.reboot()`, or the exit that follows `standby`);
   * anything else is a crash of the VM or of one of our hooks. Either way the VM no longer runs: reboot it.
   */
  private onVmError(vm: VmInstance, args: unknown[]): void {
    const exit = args.find(
      (a): a is { name: string; status: number } => (a as { name?: unknown } | null)?.name === "ExitStatus",
    );
    if (exit) this.emitDmesg(`VM exit (status ${exit.status})`);
    else this.emitLine(`VM error: ${args.map((a) => (a instanceof Error ? (a.stack ?? a.message) : String(a))).join(" ")}`);
    // A standby frame, if any, came first and scheduled the sleep on setImmediate: let it run, then decide.
    setImmediate(() => {
      if (this.vm === vm && this.state === "awake" && !vm.devsIsRunning()) this.onPanic(vm, exit ? exit.status : -2);
    });
  }

  private onPanic(vm: VmInstance, code: number): void {
    if (this.vm !== vm || this.state !== "awake") return;
    // The WASM VM stops on a panic or reset request; real hardware reboots. So do we, from flash.
    this.emitLine(`VM stopped (exit code ${code}); rebooting`);
    this.emit("panic", { code });
    this.teardown();
    this.state = "power-off";
    this.timer = setTimeout(() => void this.safeBoot("reboot"), 10);
  }

  private sleep(vm: VmInstance, ms: number): void {
    if (this.vm !== vm || this.state !== "awake") return;
    const awakeMs = Date.now() - this.bootedAt;
    this.teardown();
    this.state = "sleeping";
    this.sleptAt = Date.now();
    this.emit("standby", { ms, awakeMs });
    const realMs = Math.max(0, ms / this.options.timeScale);
    this.timer = setTimeout(() => {
      const sleptMs = Date.now() - this.sleptAt;
      void this.safeBoot("wake").then(() => this.emit("wake", { sleptMs }));
    }, realMs);
  }

  private async safeBoot(cause: BootCause): Promise<void> {
    if (this.state === "stopped") return;
    try {
      await this.boot(cause, false);
    } catch (err) {
      // A device that cannot boot must not take the fleet down: report it and stay off.
      this.state = "power-off";
      this.emitLine(`boot failed: ${err instanceof Error ? err.message : String(err)}`);
      this.emit("panic", { code: -1 });
    }
  }

  private saveFlash(vm: VmInstance, image: Uint8Array): void {
    if (this.vm !== vm) return;
    this.flash = new Uint8Array(image);
    this.flashWrites++;
    // Write-then-rename: a kill of the whole process leaves either the old or the new image, never half.
    const path = this.options.flashPath;
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(`${path}.tmp`, this.flash);
    renameSync(`${path}.tmp`, path);
    this.emit("flash", { bytes: image.length, writes: this.flashWrites });
  }

  private teardown(): void {
    clearTimeout(this.timer);
    clearTimeout(this.powerCutTimer);
    this.timer = undefined;
    this.powerCutTimer = undefined;
    const vm = this.vm;
    this.vm = undefined;
    this.vmSettings?.close();
    this.network.detach();
    this.bus?.close().catch((err: unknown) => this.emitDmesg(`bus close failed: ${String(err)}`));
    this.bus = undefined;
    if (vm) {
      vm.devsStop();
      // Drop hooks so late timers of the dead instance cannot reach us.
      vm.sendPacket = () => {};
      vm.flashSave = () => {};
    }
  }

  private emitLine(text: string): void {
    this.options.echo?.(`[${this.id || this.hardwareId}] ${text}`);
    this.emit("dmesg", { line: text });
  }

  private emitDmesg(line: string): void {
    if (this.options.echoDmesg) this.options.echo?.(`[${this.id || this.hardwareId}] ${line}`);
    this.emit("dmesg", { line });
  }
}
