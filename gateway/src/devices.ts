/** Per-device state behind GET /api/devices: last status, last reading, last seen. Kept in SQLite. */
import type { ReadingTime, TimeSource } from "./bridge/reading-time.ts";
import type { Db } from "./db.ts";
import type { Status, Telemetry } from "./schema.ts";

export type DeviceState = "online" | "sleeping" | "offline" | "unknown";

export interface DeviceView {
  deviceId: string;
  status: DeviceState;
  nextWakeAt: number | null;
  lastSeen: number | null;
  battery: number | null;
  /** The reading with the highest seq, at its own time `t` (docs/protocol.md "Telemetry"). */
  lastReading: {
    seq: number;
    t: number;
    age: number | null;
    timeSource: TimeSource;
    receivedAt: number;
    readings: Record<string, number>;
  } | null;
}

type Row = {
  device_id: string;
  state: DeviceState;
  next_wake_at: number | null;
  last_seen: number | null;
  battery: number | null;
  last_reading: string | null;
};

export class DeviceRegistry {
  private readonly upsertReading;
  private readonly upsertStatus;
  private readonly selectAll;
  private readonly selectOne;

  constructor(db: Db) {
    // A reading also proves the device is awake: a sleeping device that publishes is online.
    this.upsertReading = db.prepare<[string, number, number | null, string, number, number]>(
      `INSERT INTO devices (device_id, state, last_seen, battery, last_reading) VALUES (?, 'online', ?, ?, ?)
       ON CONFLICT(device_id) DO UPDATE SET
         last_seen = max(coalesce(last_seen, 0), excluded.last_seen),
         battery = coalesce(excluded.battery, battery),
         last_reading = CASE WHEN json_extract(last_reading, '$.seq') IS NULL
                              OR json_extract(last_reading, '$.seq') < ? THEN excluded.last_reading ELSE last_reading END,
         state = CASE WHEN state = 'online' OR status_at IS NULL OR status_at <= ? THEN 'online' ELSE state END`,
    );
    this.upsertStatus = db.prepare<[string, string, number | null, number | null, number, number]>(
      `INSERT INTO devices (device_id, state, sleep_ms, next_wake_at, status_at, last_seen) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT(device_id) DO UPDATE SET state = excluded.state, sleep_ms = excluded.sleep_ms,
         next_wake_at = excluded.next_wake_at, status_at = excluded.status_at,
         last_seen = max(coalesce(last_seen, 0), excluded.last_seen)`,
    );
    this.selectAll = db.prepare<[], Row>("SELECT * FROM devices ORDER BY device_id");
    this.selectOne = db.prepare<[string], Row>("SELECT * FROM devices WHERE device_id = ?");
  }

  recordReading(deviceId: string, t: Telemetry, time: ReadingTime, receivedAt: number): void {
    const last = JSON.stringify({ seq: t.seq, t: time.t, age: time.age, timeSource: time.timeSource, receivedAt, readings: t.readings });
    this.upsertReading.run(deviceId, receivedAt, t.battery, last, t.seq, receivedAt);
  }

  recordStatus(deviceId: string, s: Status, receivedAt: number): void {
    const sleepMs = s.state === "sleeping" ? s.sleepMs : null;
    const nextWakeAt = sleepMs === null ? null : receivedAt + sleepMs;
    this.upsertStatus.run(deviceId, s.state, sleepMs, nextWakeAt, receivedAt, receivedAt);
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
    status: r.state,
    nextWakeAt: r.state === "sleeping" ? r.next_wake_at : null,
    lastSeen: r.last_seen,
    battery: r.battery,
    lastReading: r.last_reading ? (JSON.parse(r.last_reading) as DeviceView["lastReading"]) : null,
  };
}
