/**
 * A device's own timeline: ms since its first boot as the device would live it. Awake time, power-off time and
 * boot delays are real (they run at the host's real pace in the simulator too); deep sleep counts the full
 * requested ms, although the simulator sleeps only ms/timeScale. So a reading's true age is
 * `trueClock(now) − trueClock(when it was taken)`, independent of the time scale.
 */
export class TrueClock {
  private started = false;
  /** True ms at `anchor` (real ms, Date.now()). */
  private base = 0;
  private anchor = 0;
  private sleep: { ms: number; timeScale: number } | undefined;

  /** The first boot: the clock starts at 0. Later calls do nothing. */
  start(now = Date.now()): void {
    if (this.started) return;
    this.started = true;
    this.base = 0;
    this.anchor = now;
  }

  /** ms since the first boot (0 before it). While asleep it runs timeScale times faster, up to the requested ms. */
  now(now = Date.now()): number {
    if (!this.started) return 0;
    const real = Math.max(0, now - this.anchor);
    if (this.sleep) return this.base + Math.min(this.sleep.ms, real * this.sleep.timeScale);
    return this.base + real;
  }

  /** Deep sleep of `ms` begins now (it lasts ms/timeScale real ms). */
  sleepStarted(ms: number, timeScale: number, now = Date.now()): void {
    this.base = this.now(now);
    this.anchor = now;
    this.sleep = { ms, timeScale };
  }

  /** The sleep is over: the clock has advanced by exactly the requested ms; real time again from here. */
  sleepEnded(now = Date.now()): void {
    if (!this.sleep) return;
    this.base += this.sleep.ms;
    this.anchor = now;
    this.sleep = undefined;
  }
}
