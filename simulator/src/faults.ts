/**
 * Seeded fault plan (issue 3). Each decision is a pure function of (seed, device index, fault kind, n-th
 * opportunity of that kind on that device): the same seed gives the same schedule in every run, whatever
 * the timing. The network layer asks at each opportunity; the device asks at each boot for a power cut.
 */
import { unit } from "./prng.ts";

export type FaultKind =
  | "cut-before-connack"
  | "cut-mid-publish"
  | "cut-before-ack"
  | "power-cut"
  | "connect-hang"
  | "wifi-fail"
  | "torn-write";
export const FAULT_KINDS: readonly FaultKind[] = [
  "cut-before-connack",
  "cut-mid-publish",
  "cut-before-ack",
  "power-cut",
  "connect-hang",
  "wifi-fail",
  "torn-write",
];

/** Probabilities per opportunity (0..1). All default to 0: no faults unless asked. */
export interface FaultPlan {
  /** Drop the broker's CONNACK and cut the TCP connection (per CONNACK). */
  cutBeforeConnack?: number;
  /** Forward only part of a device PUBLISH's bytes, then cut (per outbound PUBLISH). */
  cutMidPublish?: number;
  /** Drop a PUBACK/PUBCOMP before it reaches the device, then cut (per inbound PUBACK/PUBCOMP). */
  cutBeforeAck?: number;
  /** Kill the VM without clean shutdown at a random moment after boot (per boot). */
  powerCut?: number;
  /**
   * esp32 profile: the socket worker's DNS lookup/connect hangs with no timeout (per connection attempt);
   * commands queued behind it wait, and its late result lands on whatever socket comes next (sock.c).
   */
  connectHang?: number;
  /** esp32 profile: Wi-Fi association fails for the whole boot: connect() keeps throwing "network not available". */
  wifiFail?: number;
  /**
   * Power cut between a settings value and its entry (per flash write of the program, jd_fstor.c): the
   * runtime finds a non-erased byte in the free gap at mount and reformats the store: the device is bricked.
   */
  tornWrite?: number;
  /** Power cuts happen uniformly within this many ms after boot. Default 3000. */
  powerCutWindowMs?: number;
  /** Power stays off this long (real ms) before the device boots again. Default 200. */
  powerOffMs?: number;
  /** Seed for the schedule; defaults to the fleet seed. */
  seed?: number;
}

export interface FaultRecord {
  deviceIndex: number;
  kind: FaultKind;
  /** Which opportunity of this kind on this device (0-based) the fault hit. */
  opportunity: number;
  /** Kind-specific detail: bytes forwarded for mid-PUBLISH, delay ms for a power cut. */
  detail?: number;
}

export type FaultCounters = Record<FaultKind, number>;

export function emptyFaultCounters(): FaultCounters {
  return {
    "cut-before-connack": 0,
    "cut-mid-publish": 0,
    "cut-before-ack": 0,
    "power-cut": 0,
    "connect-hang": 0,
    "wifi-fail": 0,
    "torn-write": 0,
  };
}

const PROBABILITY_KEY: Record<FaultKind, keyof FaultPlan> = {
  "cut-before-connack": "cutBeforeConnack",
  "cut-mid-publish": "cutMidPublish",
  "cut-before-ack": "cutBeforeAck",
  "power-cut": "powerCut",
  "connect-hang": "connectHang",
  "wifi-fail": "wifiFail",
  "torn-write": "tornWrite",
};

/** Validates a plan up front so a typo fails at start, not silently mid-run. */
export function validateFaultPlan(plan: FaultPlan): void {
  for (const kind of FAULT_KINDS) {
    const p = plan[PROBABILITY_KEY[kind]];
    if (p !== undefined && !(typeof p === "number" && p >= 0 && p <= 1)) {
      throw new RangeError(`fault plan: ${PROBABILITY_KEY[kind]} must be a probability in [0, 1], got ${String(p)}`);
    }
  }
  for (const key of ["powerCutWindowMs", "powerOffMs"] as const) {
    const v = plan[key];
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new RangeError(`fault plan: ${key} must be >= 0`);
  }
}

/** The fault decisions of one device. Shared by its network and its power supply; lives as long as the device. */
export class DeviceFaults {
  private readonly opportunities = emptyFaultCounters();
  readonly injected = emptyFaultCounters();

  constructor(
    private readonly plan: FaultPlan,
    private readonly seed: number,
    readonly deviceIndex: number,
    private readonly onFault: (record: FaultRecord) => void,
  ) {}

  /**
   * Asks whether the next opportunity of `kind` is a fault. Deciding does not count it: call `inject` when
   * the fault really happens (a planned power cut is dropped if the device went to sleep first).
   */
  decide(kind: FaultKind): FaultRecord | undefined {
    const n = this.opportunities[kind]++;
    const p = this.plan[PROBABILITY_KEY[kind]] ?? 0;
    if (p <= 0 || unit(this.seed, "fault", this.deviceIndex, kind, n) >= p) return undefined;
    return { deviceIndex: this.deviceIndex, kind, opportunity: n };
  }

  /** A value in [0, 1) tied to a decided fault (split point, delay), from the same seed. */
  detailUnit(record: FaultRecord): number {
    return unit(this.seed, "fault-detail", this.deviceIndex, record.kind, record.opportunity);
  }

  /** Counts and reports a fault that is being applied now. */
  inject(record: FaultRecord): void {
    this.injected[record.kind]++;
    this.onFault(record);
  }

  get powerCutWindowMs(): number {
    return this.plan.powerCutWindowMs ?? 3000;
  }

  get powerOffMs(): number {
    return this.plan.powerOffMs ?? 200;
  }
}
