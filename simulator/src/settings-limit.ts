/**
 * Settings records the runtime cannot read back. The settings service answers a read with one packet: name +
 * NUL + value (jacdac-c services/settings.c); above profile.settingsReadLimitBytes (232) that panics the
 * runtime (jd_util.c:129 / tx_queue.c:104 → jd_queue.c:28; on ESP32 abort() resets the board), so a program
 * that reads its record back at start boot-loops. A write packet is cut to settingsWriteLimitBytes (236) with
 * the name (buffer.c:172, impl_register.c:97): a record at exactly that size was most likely cut.
 *
 * Host-written settings are refused before start (env-settings.ts validateSettings). This module watches what
 * the firmware itself writes: after every flashSave the device scans the store's live entries.
 */
import { type FstorStore, liveEntries, settingName, settingReadBytes } from "./fstor.ts";
import type { RuntimeProfile } from "./profile.ts";

export interface OverLimitRecord {
  /** The setting's name (without the store's ':' prefix). */
  key: string;
  /** name + NUL + value bytes: the size of the read reply. */
  bytes: number;
  /** At the write cap: the write was truncated to this size. */
  truncated: boolean;
}

/** The log line for one over-limit record. */
export function overLimitMessage(record: OverLimitRecord): string {
  return (
    `settings record "${record.key}" is ${record.bytes} bytes: the ESP32 runtime ` +
    `${record.truncated ? "truncates it and panics" : "panics"} reading it back`
  );
}

/** Per device: reports each over-limit key once, until its live record is within the limit again (or gone). */
export class SettingsLimitWatch {
  private readonly reported = new Set<string>();

  constructor(private readonly profile: RuntimeProfile) {}

  /** The live records over the read limit not reported yet (they are reported by returning them). */
  scan(store: FstorStore): OverLimitRecord[] {
    const fresh: OverLimitRecord[] = [];
    const over = new Set<string>();
    for (const entry of liveEntries(store).values()) {
      const bytes = settingReadBytes(entry);
      const key = settingName(entry);
      if (bytes === undefined || key === undefined || bytes <= this.profile.settingsReadLimitBytes) continue;
      over.add(key);
      if (this.reported.has(key)) continue;
      this.reported.add(key);
      fresh.push({ key, bytes, truncated: bytes === this.profile.settingsWriteLimitBytes });
    }
    for (const key of this.reported) if (!over.has(key)) this.reported.delete(key);
    return fresh;
  }
}
