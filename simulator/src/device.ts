/**
 * One simulated device: a VM instance per boot, a flash image that outlives instances (a file per device),
 * the device's network and Jacdac bus, deep sleep and power cuts.
 *
 * Deep sleep: `standby(ms)` reaches the host as a control-service command frame (0x87, u32 ms) that
 * the VM sends to itself. We then stop and drop that instance (RAM is lost in deep sleep) and, ms/timeScale
 * later, boot a NEW instance from the same flash image; the program is already in flash, so no redeploy.
 *
 * Device-level parts of the runtime profile (profile.ts): the ROM + bootloader delay before the VM starts after
 * a sleep, a power restore or a reset (bootDelayMs); firmware-written settings records the runtime cannot
 * read back (settings-limit.ts); boot loops (boot-loop.ts); torn settings writes and the bricked device they
 * leave (torn-write.ts, fstor.ts); the device's own timeline (true-clock.ts); the VM's flash hand-off
 * (vm-flash.ts).
 */
import { EventEmitter } from "node:events";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { type BootEnd, BootLoopDetector, bootLoopMessage } from "./boot-loop.ts";
import { batteryDivider, batteryFraction } from "./battery.ts";
import { DeviceBus, type SimSensor } from "./jacdac-bus.ts";
import type { DeviceFaults } from "./faults.ts";
import { parseFstor, settingName } from "./fstor.ts";
import { announcedServices, parseFrame, standbyRequest } from "./frames.ts";
import { DeviceNetwork, type WireCounters, emptyWireCounters } from "./network.ts";
import { DEFAULT_PROFILE, type RuntimeProfile, resolveProfile } from "./profile.ts";
import { type SensorOverrides, sensorReadingWith } from "./sensor-values.ts";
import { SettingsLimitWatch, overLimitMessage } from "./settings-limit.ts";
import { findSettingsWrite, tornImage } from "./torn-write.ts";
import { TrueClock } from "./true-clock.ts";
import { type Firmware, type VmInstance, createVmInstance, sha256Hex } from "./vm.ts";
import { restoreTrimmedTail } from "./vm-flash.ts";
import { VmSettings } from "./vm-settings.ts";

/** jacdac spec: settings service class (SRV_SETTINGS). */
const SRV_SETTINGS = 0x1107dc4a;
/** How long a first boot may take to announce itself before deploy gives up. */
const ANNOUNCE_TIMEOUT_MS = 5000;
/** jd_fstor.c mount: the store was not valid and is being erased (dmesg lines, "fstor: " prefix). */
const MOUNT_FAILURE = /^fstor: (mount failure|formatting now)/;

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

/** `bricked`: a torn settings write made the runtime reformat its store; no program is left, the device stays off. */
export type DeviceState = "off" | "awake" | "sleeping" | "power-off" | "stopped" | "bricked";

/**
 * Events a SimDevice emits (fleet re-emits them with the device attached). Every payload also carries `clock`:
 * the device's trueClock() at emission (see DeviceEvent).
 */
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
  /** Every MQTT PUBLISH the device sent; `payload` is its application message. */
  publish: { topic: string; qos: number; dup: boolean; bytes: number; payload: Buffer };
  /** First reading of a simulated sensor delivered to the firmware in this boot; afterMs since boot. */
  "sensor-read": { sensor: SimSensor; afterMs: number };
  /**
   * A live settings record the firmware wrote is over the runtime's read limit (name + NUL + value > 232
   * bytes): reading it back panics the runtime. Once per key until it is within the limit again.
   */
  "settings-limit": { key: string; bytes: number };
  /** profile.bootLoopBoots boots in a row ended without a standby request (once per streak). */
  "boot-loop": { boots: number; lastExitCode: number };
  /**
   * Fault torn-write applied: power cut after `cutAtByte` of the `bytes` a settings write programs (value,
   * then its 24-byte entry); `key`: the setting's name (other store keys as stored).
   */
  "torn-write": { key: string; cutAtByte: number; bytes: number };
  /** The runtime reformatted its settings store at mount (`mountLine`, from its dmesg): the device stays off. */
  bricked: { mountLine: string };
  /** esp32 profile: Wi-Fi got its address in this boot (connect() works from now on); afterMs since boot. */
  "wifi-up": { afterMs: number };
}

/** What a listener receives: the event's payload plus `clock`, the device's trueClock() when it was emitted. */
export type DeviceEvent<K extends keyof DeviceEvents> = DeviceEvents[K] & { clock: number };

export interface SimDeviceOptions {
  index: number;
  /** Seed string for the VM's device identifier (the VM hashes it to the 16-hex-digit id). */
  hardwareId: string;
  firmware: Firmware;
  flashPath: string;
  brokerUrl: URL;
  /** Brokers reached at their own address (several brokers: network.ts). */
  brokerUrls?: URL[];
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
  /** Runtime profile (profile.ts); default esp32. */
  profile?: RuntimeProfile;
  /** Simulated battery in volts at a simulated wall-clock time (battery.ts); none by default. */
  battery?: (simMs: number) => number;
  /** Sensor values instead of sensor-values.ts's (per sensor); none by default. */
  sensors?: SensorOverrides;
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
  readonly profile: RuntimeProfile;
  /** Firmware-written settings records over the read limit (settings-limit events). */
  settingsOverLimit = 0;
  /** Times this device was bricked by a torn write (it then stays off: 0 or 1 per process). */
  bricked = 0;

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
  private readonly bootLoop: BootLoopDetector;
  private readonly limitWatch: SettingsLimitWatch;
  private readonly timeline = new TrueClock();
  /** The program is deployed: flash saves from now on are the firmware's (torn-write opportunities). */
  private deployed = false;
  /** This boot loaded a non-empty image (a reformat then destroys something). */
  private bootImageNonEmpty = false;
  /** The runtime's mount-failure line of this boot, if any. */
  private mountFailure: string | undefined;
  /** The last power cut was a torn write's. */
  private lastCutTorn = false;

  constructor(private readonly options: SimDeviceOptions) {
    super();
    this.index = options.index;
    this.hardwareId = options.hardwareId;
    this.profile = options.profile ?? resolveProfile(DEFAULT_PROFILE);
    this.bootLoop = new BootLoopDetector(this.profile.bootLoopBoots);
    this.limitWatch = new SettingsLimitWatch(this.profile);
    this.flash = existsSync(options.flashPath) ? new Uint8Array(readFileSync(options.flashPath)) : new Uint8Array(0);
    this.network = new DeviceNetwork({
      brokerUrl: options.brokerUrl,
      brokerUrls: options.brokerUrls,
      faults: options.faults,
      counters: this.wire,
      log: (line) => this.emitDmesg(line),
      onPublish: (p) => this.emit("publish", p),
      profile: options.profile,
      seed: options.seed,
      deviceIndex: options.index,
      onWifiUp: () => this.emit("wifi-up", { afterMs: Date.now() - this.bootedAt }),
    });
  }

  /** The id the firmware uses in topics: the DEVICE_ID setting if given, else the VM's hex id. */
  get id(): string {
    const configured = this.options.settings.DEVICE_ID;
    return typeof configured === "string" && configured !== "" ? configured : this.vmDeviceId;
  }

  /** Consecutive boots that ended without a standby request (panic, VM stop, boot failure). */
  get bootsWithoutWake(): number {
    return this.bootLoop.bootsWithoutWake;
  }

  /** Boot loops this device entered (boot-loop events). */
  get bootLoops(): number {
    return this.bootLoop.loops;
  }

  /**
   * The device's own timeline, ms since its first boot: real ms while awake, off or booting, the full requested
   * (unscaled) ms while in deep sleep. 0 before the first boot.
   */
  trueClock(): number {
    return this.timeline.now();
  }

  /** Every event payload gets `clock` (trueClock() now). */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    const [payload] = args;
    if (args.length === 1 && typeof payload === "object" && payload !== null && !(payload instanceof Error)) {
      return super.emit(event, { ...payload, clock: this.timeline.now() });
    }
    return super.emit(event, ...args);
  }

  /** First boot in this process: writes settings and deploys the firmware (flash keeps everything else). */
  async start(): Promise<void> {
    if (this.state !== "off") throw new Error(`device ${this.hardwareId} already started`);
    await this.boot("power-on", true);
  }

  /** Cuts power now: the VM dies mid-whatever; flash keeps only what the VM saved before. */
  powerCut(): void {
    this.cutPower(false);
  }

  /**
   * `insideVm`: called from one of the VM's own hooks (a flashSave): the instance is dropped now but stopped on
   * the next turn (stopping it from inside its process loop does not stick).
   */
  private cutPower(insideVm: boolean, torn = false): void {
    if (this.state !== "awake") return;
    const afterMs = Date.now() - this.bootedAt;
    this.teardown(insideVm);
    this.state = "power-off";
    this.lastCutTorn = torn;
    this.emitLine(`power cut after ${afterMs} ms awake`);
    this.emit("power-cut", { afterMs });
    // Power back after powerOffMs; then ROM + bootloader before the VM starts.
    const delay = this.options.faults.powerOffMs + this.profile.bootDelayMs;
    this.timer = setTimeout(() => void this.safeBoot("power-restore"), delay);
  }

  /** Stops the device for good (fleet shutdown). Safe to call twice. */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.teardown();
    this.state = "stopped";
  }

  private async boot(cause: BootCause, deploy: boolean): Promise<void> {
    this.timeline.start();
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
    this.network.attach(vm, this.boots + 1);
    const seed = this.options.seed;
    const readSensors = new Set<string>();
    this.bus = new DeviceBus({
      onReading: (sensor) => {
        if (this.vm !== vm || readSensors.has(sensor)) return;
        readSensors.add(sensor);
        this.emit("sensor-read", { sensor, afterMs: Date.now() - this.bootedAt });
      },
      read: () => sensorReadingWith(seed, this.index, this.options.clock(), this.options.sensors),
      battery: this.batteryReader(),
      // Overridden sensors read exactly what the test set (no simulated reading error).
      exact: (["temperature", "humidity"] as const).filter((k) => this.options.sensors?.[k] !== undefined),
      // Bus replies are produced inside the VM's process loop (its sendPacket hook): never re-enter it.
      toVm: (frame) => this.toVm(vm, frame),
    });
    this.boots++;
    this.bootedAt = Date.now();
    this.state = "awake";
    this.bootImageNonEmpty = this.flash.length > 0;
    this.mountFailure = undefined;
    // The VM initialises here: it loads the flash image and mounts the settings store (dmesg "fstor: ...").
    vm.devsSetDeviceId(this.hardwareId);
    if (this.mountFailure !== undefined && this.bootImageNonEmpty && !deploy) {
      // The store was reformatted: settings, Wi-Fi credentials and the program are gone. (A deploy boot
      // re-flashes the device right away: nothing is lost for good there.)
      this.emit("boot", { cause, boot: this.boots });
      this.brick(this.mountFailure);
      return;
    }
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
    this.deployed = true;
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
      this.cutPower(false);
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
    if (MOUNT_FAILURE.test(line)) this.mountFailure ??= line;
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
    this.bootEnded({ kind: "vm-stopped", exitCode: code });
    // A reset: ROM + bootloader again before the VM starts (esp32 profile).
    this.timer = setTimeout(() => void this.safeBoot("reboot"), 10 + this.profile.bootDelayMs);
  }

  /** Boot-loop bookkeeping for a boot that just ended (boot-loop.ts); reports a loop once per streak. */
  private bootEnded(end: BootEnd): void {
    const report = this.bootLoop.bootEnded(end);
    if (!report) return;
    this.emitLine(bootLoopMessage(this.id || this.hardwareId, report));
    this.emit("boot-loop", { boots: report.boots, lastExitCode: report.lastExitCode });
  }

  /** The runtime reformatted a non-empty store at mount: nothing to run any more. Stays off until re-flashed. */
  private brick(mountLine: string): void {
    const torn = this.lastCutTorn;
    this.teardown();
    this.state = "bricked";
    this.bricked++;
    const id = this.id || this.hardwareId;
    this.emitLine(
      torn
        ? `device ${id} is bricked: a power cut between a settings value and its entry made the runtime reformat ` +
            `its settings store (program, settings and Wi-Fi credentials are lost); re-flash it`
        : `device ${id} is bricked: the runtime could not mount its settings store (${mountLine}) and reformatted ` +
            `it (program, settings and Wi-Fi credentials are lost); re-flash it`,
    );
    this.emit("bricked", { mountLine });
  }

  /** The battery reading for the bus (ADC fraction), when the fleet simulates one. */
  private batteryReader(): (() => number) | undefined {
    const volts = this.options.battery;
    if (!volts) return undefined;
    const divider = batteryDivider(this.options.settings);
    return () => batteryFraction(volts(this.options.clock()), divider);
  }

  private sleep(vm: VmInstance, ms: number): void {
    if (this.vm !== vm || this.state !== "awake") return;
    const awakeMs = Date.now() - this.bootedAt;
    this.teardown();
    this.state = "sleeping";
    this.sleptAt = Date.now();
    this.bootEnded({ kind: "standby" });
    // standby first: its clock is the moment the sleep begins. Once the timeline sleeps it runs timeScale times
    // faster, so a millisecond between the two would put the event timeScale ms late.
    this.emit("standby", { ms, awakeMs });
    this.timeline.sleepStarted(ms, this.options.timeScale);
    const realMs = Math.max(0, ms / this.options.timeScale);
    this.timer = setTimeout(() => {
      this.timeline.sleepEnded();
      const sleptMs = Date.now() - this.sleptAt;
      const wake = () => void this.safeBoot("wake").then(() => this.emit("wake", { sleptMs }));
      // Deep-sleep exit: ROM + bootloader before the runtime starts (esp32 profile).
      if (this.profile.bootDelayMs > 0) this.timer = setTimeout(wake, this.profile.bootDelayMs);
      else wake();
    }, realMs);
  }

  private async safeBoot(cause: BootCause): Promise<void> {
    if (this.state === "stopped") return;
    try {
      await this.boot(cause, false);
    } catch (err) {
      // A device that cannot boot must not take the fleet down: report it and stay off.
      this.state = "power-off";
      const message = err instanceof Error ? err.message : String(err);
      this.emitLine(`boot failed: ${message}`);
      this.emit("panic", { code: -1 });
      this.bootEnded({ kind: "boot-failed", exitCode: -1, message });
    }
  }

  private saveFlash(vm: VmInstance, image: Uint8Array): void {
    if (this.vm !== vm) return;
    const previous = this.flash;
    // esp32: flash keeps its length (the VM hands over one byte short, vm-flash.ts); vm: the VM's own image.
    const next = this.profile.name === "esp32" ? restoreTrimmedTail(previous, image) : new Uint8Array(image);
    if (this.deployed && this.tearWrite(previous, next)) return;
    this.persistFlash(next);
    const store = parseFstor(next);
    if (!store) return;
    for (const record of this.limitWatch.scan(store)) {
      this.settingsOverLimit++;
      this.emitLine(overLimitMessage(record));
      this.emit("settings-limit", { key: record.key, bytes: record.bytes });
    }
  }

  /**
   * Fault torn-write (torn-write.ts): when this save is exactly one settings write and the fault is decided, the
   * flash keeps only the first k of its programmed bytes and the power goes. True when it did.
   */
  private tearWrite(previous: Uint8Array, next: Uint8Array): boolean {
    const write = findSettingsWrite(previous, next);
    if (!write) return false;
    const fault = this.options.faults.decide("torn-write");
    if (!fault) return false;
    const n = write.programmedBytes;
    const k = Math.min(n, Math.floor(this.options.faults.detailUnit(fault) * (n + 1)));
    const key = settingName(write.entry) ?? write.entry.key;
    this.persistFlash(tornImage(previous, next, write, k));
    this.options.faults.inject({ ...fault, detail: k });
    this.emitLine(
      `FAULT torn-write: power cut after ${k} of ${n} bytes of settings record "${key}" ` +
        `(${write.valueBytes} value bytes, then its ${n - write.valueBytes}-byte entry)`,
    );
    this.emit("torn-write", { key, cutAtByte: k, bytes: n });
    this.cutPower(true, true);
    return true;
  }

  private persistFlash(image: Uint8Array): void {
    this.flash = image;
    this.flashWrites++;
    // Write-then-rename: a kill of the whole process leaves either the old or the new image, never half.
    const path = this.options.flashPath;
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(`${path}.tmp`, this.flash);
    renameSync(`${path}.tmp`, path);
    this.emit("flash", { bytes: image.length, writes: this.flashWrites });
  }

  /** `deferStop`: called from inside one of the VM's hooks; the instance is stopped on the next turn. */
  private teardown(deferStop = false): void {
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
      if (deferStop) setImmediate(() => vm.devsStop());
      else vm.devsStop();
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
