/**
 * The simulated battery. The firmware measures it through an ADC behind a resistor divider: on hardware
 * board.ts starts a potentiometer server on the ADC pin (`startPotentiometer({ pin, name: "battery" })`), in
 * the simulator the role `new ds.Potentiometer("battery")` binds to a potentiometer server the simulator hosts
 * on the device's Jacdac bus (jacdac-bus.ts). Both report the pin voltage as a fraction of the ADC's full
 * scale; the firmware computes volts = fraction × 3.1 × BATTERY_DIV (devs/src/sensors.ts).
 * It does so only when its BATTERY_PIN setting is non-empty: the fleet sets BATTERY_PIN = "sim" when
 * `battery` is given and the settings name no pin.
 */

/** ESP32 ADC full scale at 11 dB attenuation (devs/src/sensors.ts ADC_FULL_SCALE_V). */
export const ADC_FULL_SCALE_V = 3.1;
/** The firmware's BATTERY_DIV default (devs/src/settings.ts). */
export const DEFAULT_BATTERY_DIVIDER = 2;
/** BATTERY_PIN the simulator sets when the settings name none. */
export const SIM_BATTERY_PIN = "sim";

/** Volts, constant or per (device index, simulated wall clock ms). */
export type BatteryOption = number | ((index: number, simMs: number) => number);

/** The divider the firmware will use: BATTERY_DIV if it is a positive number, else 2 (as the firmware does). */
export function batteryDivider(settings: Record<string, unknown>): number {
  const d = settings.BATTERY_DIV;
  return typeof d === "number" && d > 0 ? d : DEFAULT_BATTERY_DIVIDER;
}

/** The ADC fraction (0..1) the potentiometer server reports for `volts` behind `divider`; clamped like an ADC. */
export function batteryFraction(volts: number, divider: number): number {
  if (!Number.isFinite(volts)) return 0;
  return Math.min(1, Math.max(0, volts / (ADC_FULL_SCALE_V * divider)));
}

/** Checks a constant battery option up front (a function is checked per reading: clamped, see batteryFraction). */
export function validateBattery(battery: BatteryOption | undefined): void {
  if (battery === undefined || typeof battery === "function") return;
  if (!(typeof battery === "number" && Number.isFinite(battery) && battery >= 0)) {
    throw new RangeError(`battery must be volts >= 0 or a function (index, simMs) => volts, got ${String(battery)}`);
  }
}
