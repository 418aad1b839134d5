/**
 * Battery-life arithmetic for a device that wakes, connects, publishes and deep-sleeps.
 * Pure functions: the figures come from hardware/power/figures.json (datasheet currents, modelled timings)
 * and the simulator's measured awake-time split (bench-results/simulator.json, else measured.json), put
 * together by figures.ts `awakePhases()`.
 *
 * One cycle = `intervalS`: INTERVAL_S is the wake period (devs/src/clock.ts: each wake sleeps until the next
 * period boundary), so deep sleep = interval − the awake phases (wake overhead, runtime start, firmware work,
 * Wi-Fi, MQTT, command wait, goodbye); a wake longer than the period skips to the next multiple of it.
 * Charge per cycle (mA·s) = Σ phase duration × phase current; average current = charge / cycle length.
 */

/**
 * Where a figure comes from, printed next to it:
 * - `measured (simulator)`: the firmware's bytecode in the DeviceScript VM (`npm run bench:sim`);
 * - `measured (given)`: a value you measured and passed on the command line;
 * - `modelled`: derived from the runtime's sources or our assumptions (the source says which); measure it;
 * - `datasheet`: chip or sensor datasheet, or the board maker's published figure.
 */
export type FigureKind = "measured (simulator)" | "measured (given)" | "modelled" | "datasheet";
export const FIGURE_KINDS: readonly FigureKind[] = ["measured (simulator)", "measured (given)", "modelled", "datasheet"];

/** A figure with where it comes from, so every output line can say "datasheet", "modelled", …. */
export interface Figure {
  value: number;
  kind: FigureKind;
  source: string;
}

export interface BoardPower {
  name: string;
  /** Board deep-sleep current (chip + regulator + LEDs + USB bridge), µA. */
  sleepUa: Figure;
  /** CPU running, radio off (wake overhead, runtime start, firmware work before the network), mA. */
  cpuMa: Figure;
  /** Average while scanning, associating with the access point and getting a DHCP lease, mA. */
  wifiConnectMa: Figure;
  /** Radio on and listening (RX) during the MQTT exchange, mA. */
  activeMa: Figure;
  /** Current while a frame is transmitted, mA. */
  txMa: Figure;
  /** Other parts that draw while the chip sleeps (sensor idle, battery divider, …), µA each. */
  extraSleepUa: Record<string, Figure>;
}

/** Which of the board's currents a phase draws. */
export type PhaseCurrent = "cpuMa" | "wifiConnectMa" | "activeMa";

/** One part of the awake time. */
export interface AwakePhase {
  name: string;
  duration: Figure;
  current: PhaseCurrent;
}

export interface Timing {
  /** The awake time of one wake, in order; their sum is the awake time. */
  awake: AwakePhase[];
  /** Transmit airtime per cycle, ms (frames × airtime per frame); inside the awake time, counted above RX. */
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
  for (const p of timing.awake) {
    if (!(Number.isFinite(p.duration.value) && p.duration.value >= 0)) throw new ErrPowerInput(`${p.name}: duration must be a number of ms ≥ 0, got ${p.duration.value}`);
  }

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
  const awakeS = timing.awake.reduce((sum, p) => sum + s(p.duration), 0);
  const cycleS = intervalS * Math.max(1, Math.ceil(awakeS / intervalS));
  const phases: Phase[] = [
    ...timing.awake.map((p) => phase(p.name, s(p.duration), board[p.current].value, [p.duration, board[p.current]])),
    // Transmit bursts happen inside the awake time: count only the current above listening.
    phase("transmit (extra)", s(timing.txMs), Math.max(0, board.txMa.value - board.activeMa.value), [timing.txMs, board.txMa]),
    phase("deep sleep", cycleS - awakeS, sleepUa / 1000, [board.sleepUa, ...extras]),
  ];
  const chargePerCycleMas = phases.reduce((sum, p) => sum + p.chargeMas, 0);
  const averageMa = chargePerCycleMas / cycleS;
  const lifeHours = (batteryMah * usableFraction) / averageMa;
  return { cycleS, awakeS, phases, chargePerCycleMas, averageMa, lifeHours, lifeDays: lifeHours / 24 };
}
