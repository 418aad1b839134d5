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

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
