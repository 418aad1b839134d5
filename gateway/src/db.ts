/**
 * The gateway's SQLite database (better-sqlite3 v12: v13 crashes on Node 20): history events,
 * device state and commands, in one file so one transaction can cover an event and its side effects.
 */
import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

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
  received_at INTEGER NOT NULL,
  data TEXT NOT NULL
);
-- The identity of a reading (docs/protocol.md): a redelivered (deviceId, seq) never gets a second id.
CREATE UNIQUE INDEX IF NOT EXISTS events_reading ON events(device_id, seq) WHERE kind = 'telemetry';
CREATE INDEX IF NOT EXISTS events_device_kind ON events(device_id, kind, id);
CREATE INDEX IF NOT EXISTS events_received_at ON events(received_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
  device_id TEXT PRIMARY KEY,
  state TEXT NOT NULL DEFAULT 'unknown',
  sleep_ms INTEGER,
  next_wake_at INTEGER,
  status_at INTEGER,
  last_seen INTEGER,
  battery REAL,
  last_reading TEXT
);
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
  return db;
}
