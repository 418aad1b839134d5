/**
 * Battery-life arithmetic for a device that wakes, connects, publishes and deep-sleeps.
 * Pure functions: the figures come from hardware/power/boards.json (datasheet, vendor and estimated
 * currents) and hardware/power/measured.json (firmware awake time measured in the simulator).
 *
 * One cycle = boot + Wi-Fi connect + firmware awake time + `intervalS` of deep sleep
 * (the firmware calls standby(interval) after its work, so sleep does not shrink with awake time).
 * Charge per cycle (mA·s) = Σ phase duration × phase current; average current = charge / cycle length.
 */

/** A figure with where it comes from, so every output line can say "datasheet", "measured", …. */
export interface Figure {
  value: number;
  kind: "datasheet" | "vendor" | "measured" | "estimate";
  source: string;
}

export interface BoardPower {
  name: string;
  /** Board deep-sleep current (chip + regulator + LEDs + USB bridge), µA. */
  sleepUa: Figure;
  /** CPU running, radio off (runtime boot), mA. */
  cpuMa: Figure;
  /** Average while associating with the access point and getting a DHCP lease, mA. */
  wifiConnectMa: Figure;
  /** Radio on and listening (RX) during the MQTT exchange, mA. */
  activeMa: Figure;
  /** Current while a frame is transmitted, mA. */
  txMa: Figure;
  /** Other parts that draw while the chip sleeps (sensor idle, battery divider, …), µA each. */
  extraSleepUa: Record<string, Figure>;
}

export interface Timing {
  /** Power-on to program start (runtime boot), ms. */
  bootMs: Figure;
  /** Wi-Fi association + WPA2 handshake + DHCP, ms. */
  wifiConnectMs: Figure;
  /** Firmware awake time from program start to standby, ms (simulator measurement). */
  awakeMs: Figure;
  /** Transmit airtime per cycle, ms (frames × airtime per frame). */
  txMs: Figure;
}

export interface PowerInput {
  intervalS: number;
  batteryMah: number;
  /** Fraction of the rated capacity that is usable (cut-off voltage, self-discharge, cold): 0 < u ≤ 1. */
  usableFraction: number;
  board: BoardPower;
  timing: Timing;
}

export interface Phase {
  name: string;
  seconds: number;
  currentMa: number;
  chargeMas: number;
  sources: Figure[];
}

export interface PowerEstimate {
  cycleS: number;
  awakeS: number;
  phases: Phase[];
  chargePerCycleMas: number;
  averageMa: number;
  lifeHours: number;
  lifeDays: number;
}

export class ErrPowerInput extends Error {
  override name = "ErrPowerInput";
}

/**
 * @example
 * const e = estimatePower({ intervalS: 300, batteryMah: 2500, usableFraction: 0.8, board, timing })
 * console.log(e.lifeDays.toFixed(0))
 */
export function estimatePower(input: PowerInput): PowerEstimate {
  const { intervalS, batteryMah, usableFraction, board, timing } = input;
  if (!(Number.isFinite(intervalS) && intervalS > 0)) throw new ErrPowerInput(`interval must be a positive number of seconds, got ${intervalS}`);
  if (!(Number.isFinite(batteryMah) && batteryMah > 0)) throw new ErrPowerInput(`battery capacity must be a positive number of mAh, got ${batteryMah}`);
  if (!(usableFraction > 0 && usableFraction <= 1)) throw new ErrPowerInput(`usable fraction must be in (0, 1], got ${usableFraction}`);

  const s = (f: Figure) => f.value / 1000;
  const extras = Object.values(board.extraSleepUa);
  const sleepUa = board.sleepUa.value + extras.reduce((sum, f) => sum + f.value, 0);
  const phase = (name: string, seconds: number, currentMa: number, sources: Figure[]): Phase => ({
    name,
    seconds,
    currentMa,
    chargeMas: seconds * currentMa,
    sources,
  });
  const phases: Phase[] = [
    phase("boot", s(timing.bootMs), board.cpuMa.value, [timing.bootMs, board.cpuMa]),
    phase("Wi-Fi connect", s(timing.wifiConnectMs), board.wifiConnectMa.value, [timing.wifiConnectMs, board.wifiConnectMa]),
    phase("firmware awake", s(timing.awakeMs), board.activeMa.value, [timing.awakeMs, board.activeMa]),
    // Transmit bursts happen inside the awake time: count only the current above listening.
    phase("transmit (extra)", s(timing.txMs), Math.max(0, board.txMa.value - board.activeMa.value), [timing.txMs, board.txMa]),
    phase("deep sleep", intervalS, sleepUa / 1000, [board.sleepUa, ...extras]),
  ];
  const awakeS = s(timing.bootMs) + s(timing.wifiConnectMs) + s(timing.awakeMs);
  const cycleS = awakeS + intervalS;
  const chargePerCycleMas = phases.reduce((sum, p) => sum + p.chargeMas, 0);
  const averageMa = chargePerCycleMas / cycleS;
  const lifeHours = (batteryMah * usableFraction) / averageMa;
  return { cycleS, awakeS, phases, chargePerCycleMas, averageMa, lifeHours, lifeDays: lifeHours / 24 };
}
