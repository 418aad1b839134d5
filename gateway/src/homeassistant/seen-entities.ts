/**
 * The Home Assistant entities each device has had since it was last deleted (its reading keys, and whether it
 * has sent a battery voltage), kept in the gateway's database so a restart keeps them too. An entity is removed
 * only by DELETE /api/devices/:id: a reading that misses a key (a transient sensor fault) keeps the entity, with
 * the name, area and history the user gave it in Home Assistant.
 */
import type { DeviceView } from "../protocol/device-state.ts";
import type { Db } from "../transport/sqlite/db.ts";
import type { DeviceEntities } from "./discovery.ts";

export class SeenEntities {
  private readonly byDevice = new Map<string, DeviceEntities>();
  private readonly save;
  private readonly remove;

  constructor(db: Db) {
    db.exec("CREATE TABLE IF NOT EXISTS ha_entities (device_id TEXT PRIMARY KEY, reading_keys TEXT NOT NULL, battery INTEGER NOT NULL)");
    this.save = db.prepare<[string, string, number]>(
      "INSERT INTO ha_entities (device_id, reading_keys, battery) VALUES (?, ?, ?) ON CONFLICT(device_id) DO UPDATE SET reading_keys = excluded.reading_keys, battery = excluded.battery",
    );
    this.remove = db.prepare<[string]>("DELETE FROM ha_entities WHERE device_id = ?");
    const rows = db.prepare<[], { device_id: string; reading_keys: string; battery: number }>("SELECT * FROM ha_entities").all();
    for (const r of rows) this.byDevice.set(r.device_id, { readingKeys: JSON.parse(r.reading_keys) as string[], battery: r.battery === 1 });
  }

  /** Adds what the device's latest reading shows to what it had; returns the union (stored when it grew). */
  see(d: DeviceView): DeviceEntities {
    const before = this.byDevice.get(d.deviceId);
    const keys = Object.keys(d.lastReading?.readings ?? {});
    const battery = d.battery !== null;
    if (before && keys.every((k) => before.readingKeys.includes(k)) && (before.battery || !battery)) return before;
    const now: DeviceEntities = {
      readingKeys: [...new Set([...(before?.readingKeys ?? []), ...keys])].sort(),
      battery: battery || (before?.battery ?? false),
    };
    this.save.run(d.deviceId, JSON.stringify(now.readingKeys), now.battery ? 1 : 0);
    this.byDevice.set(d.deviceId, now);
    return now;
  }

  get(deviceId: string): DeviceEntities | undefined {
    return this.byDevice.get(deviceId);
  }

  /** The device was deleted: its next reading starts afresh. */
  forget(deviceId: string): void {
    this.remove.run(deviceId);
    this.byDevice.delete(deviceId);
  }
}
