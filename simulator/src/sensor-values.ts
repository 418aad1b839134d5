/**
 * Simulated environment: temperature and humidity per device, a pure function of (seed, device index,
 * simulated time). A slow daily-like sine plus seeded noise, so charts move and every run is reproducible.
 */
import { unit } from "./prng.ts";

export interface SensorReading {
  temperature: number;
  humidity: number;
}

/** One noise sample per simulated second: values are stable within a second, vary across seconds. */
const NOISE_BUCKET_MS = 1000;
/** Period of the slow wave, in simulated time. */
const PERIOD_MS = 6 * 60 * 60 * 1000;

export function sensorReading(seed: number, deviceIndex: number, simTimeMs: number): SensorReading {
  const bucket = Math.floor(simTimeMs / NOISE_BUCKET_MS);
  const phase = unit(seed, "phase", deviceIndex) * 2 * Math.PI;
  const wave = Math.sin((2 * Math.PI * simTimeMs) / PERIOD_MS + phase);
  const baseT = 18 + 6 * unit(seed, "base-t", deviceIndex);
  const baseH = 35 + 20 * unit(seed, "base-h", deviceIndex);
  const noiseT = (unit(seed, "noise-t", deviceIndex, bucket) - 0.5) * 0.4;
  const noiseH = (unit(seed, "noise-h", deviceIndex, bucket) - 0.5) * 2;
  return {
    temperature: round2(baseT + 3 * wave + noiseT),
    humidity: round2(Math.min(100, Math.max(0, baseH - 8 * wave + noiseH))),
  };
}

/**
 * Per-sensor replacements of the simulated values (fleet option `sensors`): `(device index, simMs) => value`,
 * simMs being the simulated wall clock (the one sensorReading follows). A sensor without one keeps its
 * sensorReading value.
 */
export type SensorOverrides = { [K in keyof SensorReading]?: (index: number, simMs: number) => number };

/** sensorReading, with the overrides' values (as given: unrounded) where there are any. */
export function sensorReadingWith(
  seed: number,
  deviceIndex: number,
  simTimeMs: number,
  overrides: SensorOverrides | undefined,
): SensorReading {
  const base = sensorReading(seed, deviceIndex, simTimeMs);
  if (!overrides) return base;
  return {
    temperature: overrides.temperature ? overrides.temperature(deviceIndex, simTimeMs) : base.temperature,
    humidity: overrides.humidity ? overrides.humidity(deviceIndex, simTimeMs) : base.humidity,
  };
}

/** Checks the option up front: only known sensors, each a function. */
export function validateSensorOverrides(overrides: SensorOverrides | undefined): void {
  if (overrides === undefined) return;
  if (typeof overrides !== "object" || overrides === null) throw new RangeError("sensors must be an object of functions");
  for (const [key, fn] of Object.entries(overrides)) {
    if (key !== "temperature" && key !== "humidity") throw new RangeError(`sensors: unknown sensor "${key}" (temperature, humidity)`);
    if (fn !== undefined && typeof fn !== "function") throw new RangeError(`sensors.${key} must be a function (index, simMs) => value`);
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
