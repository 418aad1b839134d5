/**
 * When a reading was taken (docs/protocol.md "Telemetry", reading time). The only place that decides it:
 * the telemetry handler calls it for every new reading and the database migration for rows stored before
 * `age` existed.
 */

/** How the gateway obtained a reading's `t`. */
export type TimeSource = "device" | "age" | "received";

export interface ReadingTime {
  /** ms since epoch when the reading was taken. */
  t: number;
  /** The device's `age` as sent, or null when it sent none. */
  age: number | null;
  timeSource: TimeSource;
}

/**
 * The device's own `t` when it sent a number; else `receivedAt - age` when it sent `age` (ms between taking
 * the reading and building the PUBLISH, on the device's clock); else `receivedAt`.
 *
 * @example readingTime({ t: null, age: 3_600_000 }, 1_764_081_000_000) // { t: 1_764_077_400_000, age: 3_600_000, timeSource: "age" }
 */
export function readingTime(sent: { t: number | null; age?: number | undefined }, receivedAt: number): ReadingTime {
  const age = sent.age ?? null;
  if (sent.t !== null) return { t: sent.t, age, timeSource: "device" };
  if (age !== null) return { t: receivedAt - age, age, timeSource: "age" };
  return { t: receivedAt, age, timeSource: "received" };
}
