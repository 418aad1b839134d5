/**
 * The gateway's SQLite database (better-sqlite3 v12: v13 crashes on Node 20): history events,
 * device state, summaries, alerts and commands, in one file so one transaction can cover an event and its side effects.
 */
import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { readingTime } from "../../protocol/reading-time.ts";

export type Db = Database.Database;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  -- AUTOINCREMENT: ids are never reused, even after retention deleted the newest rows' predecessors
  -- or every row, so a browser's Last-Event-ID can never point at a different event after a restart.
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  topic TEXT NOT NULL,
  device_id TEXT NOT NULL,
  seq INTEGER,
  -- telemetry: when the reading was taken (protocol/reading-time.ts); added by migration 1 in older files
  t INTEGER,
  received_at INTEGER NOT NULL,
  data TEXT NOT NULL
);
-- The identity of a reading (docs/protocol.md): a redelivered (deviceId, seq) never gets a second id.
CREATE UNIQUE INDEX IF NOT EXISTS events_reading ON events(device_id, seq) WHERE kind = 'telemetry';
CREATE INDEX IF NOT EXISTS events_device_kind ON events(device_id, kind, id);
CREATE INDEX IF NOT EXISTS events_received_at ON events(received_at);
-- summary events are pruned after an hour (event-log.ts): this finds them without walking every older event
CREATE INDEX IF NOT EXISTS events_summaries ON events(received_at) WHERE kind = 'summary';
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
  device_id TEXT PRIMARY KEY,
  -- set by a person (PATCH /api/devices/:id); migration 3
  name TEXT,
  location TEXT,
  state TEXT NOT NULL DEFAULT 'unknown',
  next_wake_at INTEGER,
  status_at INTEGER,
  -- id of the event status_at comes from: status follows event order (protocol/device-state.ts); migration 2
  status_event_id INTEGER NOT NULL DEFAULT 0,
  last_seen INTEGER,
  battery REAL,
  last_reading TEXT
);
-- Per device, metric and bucket of reading time (transport/sqlite/summaries.ts); mean = sum / count.
CREATE TABLE IF NOT EXISTS summaries (
  device_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  step TEXT NOT NULL,
  start INTEGER NOT NULL,
  count INTEGER NOT NULL,
  min REAL NOT NULL,
  max REAL NOT NULL,
  sum REAL NOT NULL,
  -- the value taken last in the bucket, by (t, seq)
  last REAL NOT NULL,
  last_t INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  PRIMARY KEY (device_id, metric, step, start)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS summaries_step_start ON summaries(step, start);
-- Alerts and their lifecycle, derived from alert events (sqlite/alerts.ts); at most one firing per (rule, device).
CREATE TABLE IF NOT EXISTS alerts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  rule_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  state TEXT NOT NULL,
  fired_at INTEGER NOT NULL,
  resolved_at INTEGER,
  acked_at INTEGER,
  data TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts(rule_id, device_id) WHERE state = 'firing';
CREATE INDEX IF NOT EXISTS alerts_device ON alerts(device_id, id);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, id);
-- Alert rules set through the API in SQLite mode (alerts/rule-store.ts; they override the config's and the defaults by id).
CREATE TABLE IF NOT EXISTS alert_rules (id TEXT PRIMARY KEY, rule TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
  id TEXT PRIMARY KEY,
  device_id TEXT NOT NULL,
  op TEXT NOT NULL,
  args TEXT NOT NULL,
  state TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  delivered_at INTEGER,
  acked_at INTEGER,
  error TEXT
);
`;

/**
 * Opens (creating if needed) `<dataDir>/gateway.sqlite`.
 *
 * Durability choice: WAL journal, and `synchronous=NORMAL` by default. In WAL mode NORMAL loses
 * nothing when the process dies (kill -9, crash): committed transactions are in the WAL file in the
 * OS page cache. Only a power cut can lose the last commits, never corrupt the file; FULL (an fsync
 * per commit) closes that window at a large cost on SD cards, so it is a config option.
 */
export function openDatabase(dataDir: string, synchronous: "normal" | "full" = "normal"): Db {
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(join(dataDir, "gateway.sqlite"));
  db.pragma("journal_mode = WAL");
  db.pragma(`synchronous = ${synchronous === "full" ? "FULL" : "NORMAL"}`);
  db.pragma("busy_timeout = 5000");
  db.exec(SCHEMA);
  migrate(db);
  return db;
}

/** Schema changes after the first release, in order; `PRAGMA user_version` = how many were applied. */
const MIGRATIONS: Array<(db: Db) => void> = [
  // 1: reading time (docs/protocol.md "Telemetry"). Readings stored before it have `t` null in their data
  // unless the device sent one: give every stored reading its `t`, `age` and `timeSource` the way new ones
  // get them (so REST, SSE replay and the device list read them alike), and index readings by time.
  (db) => {
    const columns = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('events')").all();
    if (!columns.some((c) => c.name === "t")) db.exec("ALTER TABLE events ADD COLUMN t INTEGER");
    const page = db.prepare<[number], { id: number; received_at: number; data: string }>(
      "SELECT id, received_at, data FROM events WHERE kind = 'telemetry' AND t IS NULL AND id > ? ORDER BY id LIMIT 1000",
    );
    const update = db.prepare<[number, string, number], void>("UPDATE events SET t = ?, data = ? WHERE id = ?");
    for (let after = 0, rows = page.all(after); rows.length > 0; rows = page.all(after)) {
      for (const r of rows) {
        const data = withReadingTime(JSON.parse(r.data) as Record<string, unknown>, r.received_at);
        update.run(data.t as number, JSON.stringify(data), r.id);
        after = r.id;
      }
    }
    const devices = db.prepare<[], { device_id: string; last_reading: string }>(
      "SELECT device_id, last_reading FROM devices WHERE last_reading IS NOT NULL",
    );
    const setLast = db.prepare<[string, string], void>("UPDATE devices SET last_reading = ? WHERE device_id = ?");
    for (const d of devices.all()) {
      const last = JSON.parse(d.last_reading) as Record<string, unknown>;
      if (typeof last.receivedAt !== "number" || "timeSource" in last) continue;
      setLast.run(JSON.stringify(withReadingTime(last, last.receivedAt)), d.device_id);
    }
    db.exec("CREATE INDEX IF NOT EXISTS events_reading_time ON events(device_id, t, seq) WHERE kind = 'telemetry'");
  },
  // 2: device state derived by the shared reducer. Status is ordered by event id (status_event_id; rows from
  // before it start at 0, so the next event wins); sleep_ms was never read and goes.
  (db) => {
    const columns = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('devices')").all().map((c) => c.name);
    if (!columns.includes("status_event_id")) db.exec("ALTER TABLE devices ADD COLUMN status_event_id INTEGER NOT NULL DEFAULT 0");
    if (columns.includes("sleep_ms")) db.exec("ALTER TABLE devices DROP COLUMN sleep_ms");
  },
  // 3: a device's name and location, set by a person.
  (db) => {
    const columns = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('devices')").all().map((c) => c.name);
    if (!columns.includes("name")) db.exec("ALTER TABLE devices ADD COLUMN name TEXT");
    if (!columns.includes("location")) db.exec("ALTER TABLE devices ADD COLUMN location TEXT");
  },
];

function migrate(db: Db): void {
  const applied = db.pragma("user_version", { simple: true }) as number;
  if (applied > MIGRATIONS.length) throw new Error(`gateway database schema ${applied} is newer than this gateway (${MIGRATIONS.length})`);
  for (let v = applied; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      MIGRATIONS[v]!(db);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

/** A stored reading (event data or last_reading) as of migration 1: with `t`, `age` and `timeSource`. */
function withReadingTime(reading: Record<string, unknown>, receivedAt: number): Record<string, unknown> {
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
  return { ...reading, ...readingTime({ t: num(reading.t) ?? null, age: num(reading.age) }, receivedAt) };
}
