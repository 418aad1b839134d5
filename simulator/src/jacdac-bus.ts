/**
 * The Jacdac bus around one VM. On hardware, the firmware's temperature/humidity roles bind to an I2C
 * driver's servers; in the simulator (ds.isSimulator()) they bind to servers found on the bus. This bus
 * hosts jacdac-ts temperature and humidity servers whose readings come from sensor-values.ts, and with a
 * simulated battery a potentiometer server (the firmware's "battery" role; battery.ts) whose reading is the
 * ADC fraction. Frames from the VM go in with `fromVm`; frames the bus sends go to the VM's handlePacket.
 * (Settings: vm-settings.ts.)
 */
// jacdac-ts's package "exports" has no "types" condition, so NodeNext resolution finds no typings for the
// bare specifier: take the types from its shipped .d.ts and the code from the package.
import type * as JacdacTypes from "../../node_modules/jacdac-ts/dist/types/src/jacdac.js";
import * as jacdacModule from "jacdac-ts";
import { parseFrame } from "./frames.ts";
import type { SensorReading } from "./sensor-values.ts";

const {
  AnalogSensorServer,
  JDBus,
  JDServerServiceProvider,
  SRV_HUMIDITY,
  SRV_POTENTIOMETER,
  SRV_TEMPERATURE,
  createProxyBridge,
} = jacdacModule as unknown as typeof JacdacTypes;

/** Report of register 0x101 (`reading`) of a sensor service. */
const READING_REPORT = 0x1101;
export type SimSensor = "temperature" | "humidity" | "battery";
/** Service indices on the simulated sensor device (0 is its control service). */
const SENSOR_BY_SERVICE_INDEX: Record<number, SimSensor> = { 1: "temperature", 2: "humidity", 3: "battery" };

export interface DeviceBusOptions {
  /** Reading for "now" (simulated time is the caller's business). */
  read: () => SensorReading;
  /** Sends one frame into the VM. */
  toVm: (frame: Uint8Array) => void;
  /** A reading report of a simulated sensor is on its way to the VM (the firmware asked for it). */
  onReading?: (sensor: SimSensor) => void;
  /** With a simulated battery: the ADC fraction (0..1) for "now"; a potentiometer server reports it. */
  battery?: () => number;
  /**
   * Sensors whose readings go to the firmware exactly as `read` gives them. The others get jacdac-ts's
   * simulated reading error (up to +readingError, Math.random, on every register read): the default.
   */
  exact?: readonly ("temperature" | "humidity")[];
}

export class DeviceBus {
  private readonly bus: JacdacTypes.JDBus;
  private readonly bridge: JacdacTypes.JDBridge;
  private readonly temperature: JacdacTypes.AnalogSensorServer;
  private readonly humidity: JacdacTypes.AnalogSensorServer;
  private readonly battery: JacdacTypes.AnalogSensorServer | undefined;
  private readonly provider: JacdacTypes.JDServerServiceProvider;
  private readonly refreshTimer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: DeviceBusOptions) {
    const first = options.read();
    this.temperature = new AnalogSensorServer(SRV_TEMPERATURE, {
      readingValues: [first.temperature],
      readingError: [0.2],
      streamingInterval: 1000,
      minReading: -40,
      maxReading: 125,
    });
    this.humidity = new AnalogSensorServer(SRV_HUMIDITY, {
      readingValues: [first.humidity],
      readingError: [2],
      streamingInterval: 1000,
      minReading: 0,
      maxReading: 100,
    });
    for (const sensor of options.exact ?? []) this[sensor].reading.skipErrorInjection = true;
    // Potentiometer reading: u0.16 fraction of the ADC's full scale (jacdac spec potentiometer, register 0x101).
    this.battery = options.battery
      ? new AnalogSensorServer(SRV_POTENTIOMETER, { readingValues: [options.battery()], streamingInterval: 1000 })
      : undefined;
    this.bus = new JDBus([], { disableRoleManager: true });
    const servers = this.battery ? [this.temperature, this.humidity, this.battery] : [this.temperature, this.humidity];
    this.provider = new JDServerServiceProvider("sim-sht", servers);
    this.bus.addServiceProvider(this.provider);
    this.bridge = createProxyBridge((frame: Uint8Array) => {
      if (this.closed) return;
      if (options.onReading) this.noticeReadings(frame, options.onReading);
      options.toVm(frame);
    });
    this.bridge.bus = this.bus;
    this.bus.start(); // announces the servers every ~500 ms: the VM binds its roles on an announce
    // Announce once right away too: a sensor chip is there from power-on, so the first bind need not wait.
    setImmediate(() => {
      if (!this.closed) this.bus.emit("selfAnnounce");
    });
    this.refreshTimer = setInterval(() => this.refresh(), 500);
    this.refreshTimer.unref();
  }

  /** A frame the VM sent (its hook `sendPacket`). */
  fromVm(frame: Uint8Array): void {
    if (!this.closed) this.bridge.receiveFrameOrPacket(frame);
  }

  private noticeReadings(frame: Uint8Array, onReading: (sensor: SimSensor) => void): void {
    const parsed = parseFrame(frame);
    if (!parsed || parsed.isCommand || parsed.deviceIdHex !== this.provider.deviceId) return;
    for (const p of parsed.packets) {
      const sensor = SENSOR_BY_SERVICE_INDEX[p.serviceIndex];
      if (sensor && p.serviceCommand === READING_REPORT) onReading(sensor);
    }
  }

  private refresh(): void {
    const now = this.options.read();
    this.temperature.reading.setValues([now.temperature]);
    this.humidity.reading.setValues([now.humidity]);
    if (this.battery && this.options.battery) this.battery.reading.setValues([this.options.battery()]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.refreshTimer);
    this.bus.removeServiceProvider(this.provider);
    this.bridge.bus = undefined as unknown as JacdacTypes.JDBus;
    await this.bus.stop(); // not dispose(): that one logs to the console
  }
}
