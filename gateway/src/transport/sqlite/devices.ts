/**
 * Device state in SQLite: the projection of telemetry and status events by protocol/device-state.ts, written
 * in the transaction that stores the event (transport.ts), read by GET /api/devices.
 */
import { applyDeviceEvent, changesDevice, newDevice, type DeviceEvent, type DeviceView } from "../../protocol/device-state.ts";
import type { DeviceStatus } from "../../protocol/events.ts";
import type { NewEvent } from "../transport.ts";
import type { Db } from "./db.ts";

type Row = {
  device_id: string;
  name: string | null;
  location: string | null;
  state: DeviceStatus;
  next_wake_at: number | null;
  status_at: number | null;
  status_event_id: number;
  last_seen: number | null;
  battery: number | null;
  last_reading: string | null;
};

export class DeviceTable {
  private readonly upsert;
  private readonly selectAll;
  private readonly selectOne;
  private readonly deleteOne;

  constructor(db: Db) {
    this.upsert = db.prepare<[string, string | null, string | null, string, number | null, number, number, number | null, number | null, string | null]>(
      `INSERT INTO devices (device_id, name, location, state, next_wake_at, status_at, status_event_id, last_seen, battery, last_reading)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(device_id) DO UPDATE SET name = excluded.name, location = excluded.location, state = excluded.state, next_wake_at = excluded.next_wake_at,
         status_at = excluded.status_at, status_event_id = excluded.status_event_id, last_seen = excluded.last_seen,
         battery = excluded.battery, last_reading = excluded.last_reading`,
    );
    this.selectAll = db.prepare<[], Row>("SELECT * FROM devices ORDER BY device_id");
    this.selectOne = db.prepare<[string], Row>("SELECT * FROM devices WHERE device_id = ?");
    this.deleteOne = db.prepare<[string]>("DELETE FROM devices WHERE device_id = ?");
  }

  /**
   * Applies a stored event (with the id it was given) to its device; other kinds do not change device state.
   * Only what the device sends (telemetry, status) makes a device: an alert or name change of a deleted one
   * (an ack after DELETE) must not bring it back.
   */
  apply(event: NewEvent, id: number): void {
    if (!changesDevice(event.kind)) return;
    const d = this.get(event.deviceId) ?? (event.kind === "telemetry" || event.kind === "status" ? newDevice(event.deviceId) : undefined);
    if (!d) return;
    applyDeviceEvent(d, { id, kind: event.kind, data: event.data } as DeviceEvent);
    const last = d.lastReading === null ? null : JSON.stringify(d.lastReading);
    this.upsert.run(d.deviceId, d.name, d.location, d.status, d.nextWakeAt, d.statusAt, d.statusEventId, d.lastSeen, d.battery, last);
  }

  /**
   * Forgets a device's state (DELETE /api/devices/:id); its events stay in the log until retention. The next
   * event of the device starts a new projection (newDevice), as for a device never seen.
   */
  delete(deviceId: string): boolean {
    return this.deleteOne.run(deviceId).changes > 0;
  }

  list(): DeviceView[] {
    return this.selectAll.all().map(toView);
  }

  get(deviceId: string): DeviceView | undefined {
    const row = this.selectOne.get(deviceId);
    return row ? toView(row) : undefined;
  }
}

function toView(r: Row): DeviceView {
  return {
    deviceId: r.device_id,
    name: r.name,
    location: r.location,
    status: r.state,
    nextWakeAt: r.state === "sleeping" || r.state === "overdue" ? r.next_wake_at : null,
    statusAt: r.status_at ?? 0,
    statusEventId: r.status_event_id,
    lastSeen: r.last_seen,
    battery: r.battery,
    lastReading: r.last_reading ? (JSON.parse(r.last_reading) as DeviceView["lastReading"]) : null,
  };
}
