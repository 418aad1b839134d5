/**
 * Boot-loop detection. A board whose program panics, stops or fails to boot resets and runs the same program
 * from flash again; if the cause is in flash (a record that panics when read back, a program that throws at
 * start) it never gets further. A boot "completes a wake" when the firmware asks for deep sleep (standby).
 *
 * Counted: consecutive boots that ended without a standby request — a panic / VM stop / exit / boot failure.
 * Not counted either way (the streak neither grows nor resets): boots ended by an injected or manual power
 * cut, a torn write's power cut, or the fleet stopping — those say nothing about the program.
 * At profile.bootLoopBoots such boots in a row the device is in a boot loop: reported once per streak (the
 * device keeps rebooting, as a board would, and its console shows every reboot).
 */

export type BootEnd =
  | { kind: "standby" }
  | { kind: "vm-stopped"; exitCode: number }
  | { kind: "boot-failed"; exitCode: number; message: string };

export interface BootLoopReport {
  boots: number;
  lastExitCode: number;
  /** "VM stopped, exit code X" or "boot failed (…), exit code -1". */
  last: string;
}

export class BootLoopDetector {
  /** Consecutive boots that ended without a standby request. */
  bootsWithoutWake = 0;
  /** Boot loops entered (each streak that reached the threshold counts once). */
  loops = 0;
  private reportedThisStreak = false;

  constructor(private readonly threshold: number) {}

  /** Records how a boot ended; returns a report when this boot completes a streak of `threshold`. */
  bootEnded(end: BootEnd): BootLoopReport | undefined {
    if (end.kind === "standby") {
      this.bootsWithoutWake = 0;
      this.reportedThisStreak = false;
      return undefined;
    }
    this.bootsWithoutWake++;
    if (this.reportedThisStreak || this.bootsWithoutWake < this.threshold) return undefined;
    this.reportedThisStreak = true;
    this.loops++;
    const last =
      end.kind === "vm-stopped"
        ? `VM stopped, exit code ${end.exitCode}`
        : `boot failed (${end.message}), exit code ${end.exitCode}`;
    return { boots: this.bootsWithoutWake, lastExitCode: end.exitCode, last };
  }
}

export function bootLoopMessage(deviceId: string, report: BootLoopReport): string {
  return `device ${deviceId} is in a boot loop: ${report.boots} boots without a completed wake (last: ${report.last})`;
}
