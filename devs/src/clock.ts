import * as ds from "@devicescript/core"

// The device clock: milliseconds on a timeline that spans deep sleeps, so a reading that waited in the
// outbox can say how long ago it was taken (telemetry `age`). DeviceScript has no wall clock and no RTC
// memory, and ds.millis() restarts at every boot, so the timeline is rebuilt from flash on each wake:
//
//   bootAt(n+1) = bootAt(n) + period × k      (k = 1 unless the wake recorded another plan in "ak")
//
// and every wake sleeps so that the next boot lands exactly there: sleepMs = next - now - overhead,
// where overhead (WAKE_OVERHEAD_MS) is the time from the end of deep sleep until the runtime's clock
// starts (ROM boot, bootloader). A wake that cannot write flash (broker down, low battery) always
// keeps k = 1: its awake budget ends early enough (see latestOfflineEnd). What the chain cannot see:
// a power cut, a crash or a low-battery period (no writes) make the next boot look on schedule; readings
// taken before them are then dated off by the difference (devs/README.md, "Reading time").

/** The shortest deep sleep the schedule plans; a wake that runs longer skips to a later period. */
export const MIN_SLEEP_MS = 1000

export class DeviceClock {
    /** device-clock ms at this boot's ds.millis() = 0 */
    readonly bootAt: number

    constructor(bootAt: number, private overheadMs: number) {
        this.bootAt = bootAt
    }

    /** Device-clock ms now. */
    now(): number {
        return this.bootAt + ds.millis()
    }

    /**
     * The next boot's device-clock time: the first period boundary after this boot that leaves at least
     * MIN_SLEEP_MS of sleep once `reserveMs` more awake time has passed.
     */
    nextBoot(periodMs: number, reserveMs: number): number {
        let next = this.bootAt + periodMs
        const earliest = this.now() + reserveMs + this.overheadMs + MIN_SLEEP_MS
        while (next < earliest) next += periodMs
        return next
    }

    /** The sleep that makes the next boot happen at device-clock time `next`. */
    sleepUntil(next: number): number {
        return Math.max(MIN_SLEEP_MS, next - this.now() - this.overheadMs)
    }

    /** The ds.millis() by which a wake that writes nothing more must request its sleep (k = 1). */
    latestOfflineEnd(periodMs: number): number {
        return periodMs - this.overheadMs - MIN_SLEEP_MS
    }
}
