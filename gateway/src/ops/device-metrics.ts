/**
 * Per-device gauges for Prometheus (docs/protocol.md "Device metrics"), served by GET /api/metrics/devices
 * (http/routes/device-metrics.ts) and not by /metrics: they carry sensor readings, which the API shows only to a
 * token that may read them, while /metrics is open to the Pi's supervisor. Computed per scrape from device
 * state (transport.devices(), one SELECT), so a reading costs nothing extra and a deleted device's series are
 * gone at the next scrape. Label sets are bounded: at most `maxDevices` devices (by id) and `maxMetrics`
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
 *   const { body, contentType } = await renderDeviceMetrics(transport.devices(), { maxDevices: 500, maxMetrics: 16 });
 */
import { Gauge, Registry } from "prom-client";
import { DEVICE_STATUSES, type DeviceView } from "../protocol/device-state.ts";

export interface DeviceMetricsLimits {
  maxDevices: number;
  maxMetrics: number;
}

/** Prometheus text of the gauges for these devices (a fresh registry each time: only what is true now). */
export async function renderDeviceMetrics(devices: DeviceView[], limits: DeviceMetricsLimits): Promise<{ body: string; contentType: string }> {
  const registry = new Registry();
  const registers = [registry];
  const reading = new Gauge({ name: "sensor_reading", help: "Latest reading of each device, by reading key", labelNames: ["device", "metric"] as const, registers });
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
    help: "Devices (kind=device) and reading keys (kind=metric) left out of this scrape: over metrics.maxDevices or metrics.maxMetrics",
    labelNames: ["kind"] as const,
    registers,
  });
  let skippedMetrics = 0;
  for (const d of devices.slice(0, limits.maxDevices)) {
    const device = d.deviceId;
    const keys = Object.keys(d.lastReading?.readings ?? {}).sort();
    skippedMetrics += Math.max(0, keys.length - limits.maxMetrics);
    for (const key of keys.slice(0, limits.maxMetrics)) reading.set({ device, metric: key }, d.lastReading!.readings[key]!);
    if (d.battery !== null) battery.set({ device }, d.battery);
    if (d.lastSeen !== null) lastSeen.set({ device }, d.lastSeen / 1000);
    for (const s of DEVICE_STATUSES) status.set({ device, status: s }, s === d.status ? 1 : 0);
  }
  skipped.set({ kind: "device" }, Math.max(0, devices.length - limits.maxDevices));
  skipped.set({ kind: "metric" }, skippedMetrics);
  return { body: await registry.metrics(), contentType: registry.contentType };
}
