import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createMetrics } from "../../ops/metrics.ts";
import { telemetry, transportContract, type HarnessOptions, type TransportHarness } from "../contract.ts";
import { openDatabase } from "./db.ts";
import type { NewEvent } from "../transport.ts";
import { SqliteEventLog } from "./event-log.ts";
import { SqliteTransport } from "./transport.ts";

const HUB = { heartbeatMs: 60_000, retryMs: 1_000, maxQueueEvents: 1_000, maxQueueBytes: 1 << 20 };

function openSqlite(opts: HarnessOptions, dir = mkdtempSync(join(tmpdir(), "transport-sqlite-"))): TransportHarness {
  const db = openDatabase(dir);
  const transport = new SqliteTransport(
    db,
    { retention: { maxEvents: 1_000_000, maxAgeMs: Number.MAX_SAFE_INTEGER }, summaryRetention: { "1m": 0, "1h": 0, "1d": 0 }, sse: { ...HUB, replayPageSize: opts.replayPageSize } },
    createMetrics(),
    pino({ level: "silent" }),
  );
  const shut = async () => {
    await transport.close();
    db.close();
  };
  return {
    transport,
    trim: (keep) => {
      new SqliteEventLog(db, { maxEvents: keep, maxAgeMs: Number.MAX_SAFE_INTEGER }).prune(Date.now());
    },
    reopen: async () => {
      await shut();
      return openSqlite(opts, dir);
    },
    dispose: async () => {
      await shut();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

transportContract("SqliteTransport", async (opts) => openSqlite(opts));

describe("SqliteEventLog retention", () => {
  it("deletes by age, records the evicted boundary exactly, and never deletes twice", () => {
    const dir = mkdtempSync(join(tmpdir(), "event-log-"));
    const db = openDatabase(dir);
    try {
      const log = new SqliteEventLog(db, { maxEvents: 1000, maxAgeMs: 1000 });
      const now = Date.now();
      log.append(telemetry("d", 1, now - 5000));
      log.append(telemetry("d", 2, now - 2000));
      log.append(telemetry("d", 3, now));
      expect(log.prune(now)).toBe(2);
      expect(log.bounds()).toEqual({ earliestId: 3, latestId: 3, evictedThrough: 2 });
      expect(log.prune(now)).toBe(0);
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps summary events an hour, and counts maxEvents in rows, so summaries never take the place of readings", () => {
    const dir = mkdtempSync(join(tmpdir(), "event-log-"));
    const db = openDatabase(dir);
    try {
      const log = new SqliteEventLog(db, { maxEvents: 3, maxAgeMs: 10 * 3600_000 });
      const now = Date.now();
      const summary = (at: number): NewEvent => {
        const topic = "sensors/d/summary";
        return { kind: "summary", topic, deviceId: "d", receivedAt: at, data: { deviceId: "d", topic, buckets: [], at } };
      };
      log.append(telemetry("d", 1, now - 3 * 3600_000));
      log.append(summary(now - 2 * 3600_000));
      log.append(telemetry("d", 2, now - 2 * 3600_000));
      log.append(summary(now - 60_000));
      log.append(telemetry("d", 3, now));
      // the 2-hour-old summary event goes; of the four rows left the oldest reading is one too many
      expect(log.prune(now)).toBe(1);
      expect(log.after(0, 10).map((e) => [e.kind, e.id])).toEqual([["telemetry", 3], ["summary", 4], ["telemetry", 5]]);
      expect(log.bounds()).toMatchObject({ evictedThrough: 1 });
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
