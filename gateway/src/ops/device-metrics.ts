/**
 * Per-device gauges in /metrics (docs/protocol.md "Metrics"), computed at scrape time from device state
 * (transport.devices(), one SELECT): a reading costs nothing extra, and a forgotten device's series are gone
 * at the next scrape. Label sets are bounded: at most `maxDevices` devices (by id order) and `maxMetrics`
 * reading keys per device; what is over the cap is left out and shown in gateway_device_series_skipped.
 *
 * - sensor_reading{device,metric}: the latest reading's value (highest seq, protocol/device-state.ts)
 * - sensor_battery_volts{device}: the latest reading's battery (absent when it sent none)
 * - sensor_last_seen_timestamp_seconds{device}: when the device last sent anything. A timestamp, not an age,
 *   as Prometheus advises (https://prometheus.io/docs/practices/instrumentation/#timestamps-not-time-since):
 *   `time() - sensor_last_seen_timestamp_seconds` is the age at query time, right however late the scrape.
 * - sensor_status{device,status}: 1 for the current status, 0 for the four others
 *
 * @example
 *   registerDeviceMetrics(metrics, () => transport.devices(), { maxDevices: 500, maxMetrics: 16 });
 */
import { Gauge } from "prom-client";
import type { DeviceView } from "../protocol/device-state.ts";
import { DEVICE_STATUSES } from "../homeassistant/state.ts";
import type { Metrics } from "./metrics.ts";

export interface DeviceMetricsLimits {
  maxDevices: number;
  maxMetrics: number;
}

/** The metric names, for docs/grafana/sleepy-sensors.json's test. */
export const DEVICE_METRIC_NAMES = [
  "sensor_reading",
  "sensor_battery_volts",
  "sensor_last_seen_timestamp_seconds",
  "sensor_status",
  "gateway_device_series_skipped",
] as const;

export function registerDeviceMetrics(metrics: Metrics, devices: () => DeviceView[], limits: DeviceMetricsLimits): void {
  const registers = [metrics.registry];
  // Its collect fills all five: registered first of them, and Registry.metrics() runs each metric's get() in
  // registration order, a synchronous collect completing before the next get() starts (prom-client 15.1.3).
  const reading = new Gauge({
    name: "sensor_reading",
    help: "Latest reading of each device, by reading key",
    labelNames: ["device", "metric"] as const,
    registers,
    collect: () => fill(),
  });
  const battery = new Gauge({ name: "sensor_battery_volts", help: "Battery of each device's latest reading, volts", labelNames: ["device"] as const, registers });
  const lastSeen = new Gauge({
    name: "sensor_last_seen_timestamp_seconds",
    help: "When each device last sent anything (seconds since epoch); time() - this is its silence",
    labelNames: ["device"] as const,
    registers,
  });
  const status = new Gauge({
    name: "sensor_status",
    help: "Each device's status: 1 for the current one (online, sleeping, overdue, offline, unknown), 0 for the others",
    labelNames: ["device", "status"] as const,
    registers,
  });
  const skipped = new Gauge({
    name: "gateway_device_series_skipped",
    help: "Devices (kind=device) and reading keys (kind=metric) left out of the sensor_* gauges at the last scrape: over metrics.maxDevices or metrics.maxMetrics",
    labelNames: ["kind"] as const,
    registers,
  });
  function fill(): void {
    for (const g of [reading, battery, lastSeen, status]) g.reset();
    const all = devices();
    let skippedMetrics = 0;
    for (const d of all.slice(0, limits.maxDevices)) {
      const device = d.deviceId;
      const keys = Object.keys(d.lastReading?.readings ?? {}).sort();
      skippedMetrics += Math.max(0, keys.length - limits.maxMetrics);
      for (const key of keys.slice(0, limits.maxMetrics)) reading.set({ device, metric: key }, d.lastReading!.readings[key]!);
      if (d.battery !== null) battery.set({ device }, d.battery);
      if (d.lastSeen !== null) lastSeen.set({ device }, d.lastSeen / 1000);
      for (const s of DEVICE_STATUSES) status.set({ device, status: s }, s === d.status ? 1 : 0);
    }
    skipped.set({ kind: "device" }, Math.max(0, all.length - limits.maxDevices));
    skipped.set({ kind: "metric" }, skippedMetrics);
  }
}
