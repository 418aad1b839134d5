import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openDatabase, type Db } from "../db.ts";
import { SqliteHistory } from "./sqlite.ts";
import type { NewEvent } from "./types.ts";

const dirs: string[] = [];
const dbs: Db[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function open(retention = { maxEvents: 1000, maxAgeMs: 3600_000 }, dir = mkdtempSync(join(tmpdir(), "history-"))) {
  if (!dirs.includes(dir)) dirs.push(dir);
  const db = openDatabase(dir);
  dbs.push(db);
  return { history: new SqliteHistory(db, retention), dir, db };
}

const reading = (deviceId: string, seq: number, receivedAt = Date.now(), t = receivedAt): NewEvent => ({
  kind: "telemetry",
  topic: `sensors/${deviceId}/telemetry`,
  deviceId,
  receivedAt,
  seq,
  t,
  data: { deviceId, seq, t, readings: { temperature: seq } },
});

describe("SqliteHistory", () => {
  it("assigns increasing ids and refuses a second (deviceId, seq)", () => {
    const { history } = open();
    const a = history.append(reading("d1", 1))!;
    const b = history.append(reading("d1", 2))!;
    expect(history.append(reading("d1", 1))).toBeUndefined();
    const c = history.append(reading("d2", 1))!; // same seq, other device: a different reading
    expect([a.id, b.id, c.id]).toEqual([1, 2, 3]);
    expect(history.after(1, 10).map((e) => e.id)).toEqual([2, 3]);
    expect(JSON.parse(history.after(0, 1)[0].data)).toMatchObject({ seq: 1 });
  });

  it("keeps ids, dedupe and bounds across a reopen, and never reuses an id after eviction", () => {
    const first = open({ maxEvents: 3, maxAgeMs: 3600_000 });
    for (let s = 1; s <= 5; s++) first.history.append(reading("d", s));
    expect(first.history.prune(Date.now())).toBe(2);
    first.db.close();
    dbs.splice(dbs.indexOf(first.db), 1);

    const { history } = open({ maxEvents: 3, maxAgeMs: 3600_000 }, first.dir);
    expect(history.bounds()).toEqual({ earliestId: 3, latestId: 5, evictedThrough: 2 });
    expect(history.append(reading("d", 5))).toBeUndefined();
    expect(history.append(reading("d", 6))!.id).toBe(6);
  });

  it("applies retention by age", () => {
    const { history } = open({ maxEvents: 1000, maxAgeMs: 1000 });
    const now = Date.now();
    history.append(reading("d", 1, now - 5000));
    history.append(reading("d", 2, now - 2000));
    history.append(reading("d", 3, now));
    expect(history.prune(now)).toBe(2);
    expect(history.bounds()).toMatchObject({ earliestId: 3, evictedThrough: 2 });
  });

  it("returns a device's latest readings since a time, oldest first", () => {
    const { history } = open();
    for (let s = 1; s <= 10; s++) history.append(reading("d", s, 1000 + s));
    history.append({ ...reading("other", 1), seq: 1 });
    expect(history.readings("d", { since: 0 }, 3).map((e) => JSON.parse(e.data).seq)).toEqual([8, 9, 10]);
    expect(history.readings("d", { since: 1009 }, 100).map((e) => JSON.parse(e.data).seq)).toEqual([9, 10]);
  });

  it("orders readings by the time they were taken, then seq, and filters on it with from/to", () => {
    const { history } = open();
    history.append(reading("d", 1, 10_000, 10_000));
    history.append(reading("d", 2, 11_000, 11_000));
    history.append(reading("d", 3, 12_000, 5_000)); // waited 7 s in the outbox: taken before seq 1
    history.append(reading("d", 4, 13_000, 11_000)); // same t as seq 2: seq decides
    const seqs = (q: Parameters<typeof history.readings>[1], limit = 100) =>
      history.readings("d", q, limit).map((e) => JSON.parse(e.data).seq);
    expect(seqs({})).toEqual([3, 1, 2, 4]);
    // The latest by reading time, not by arrival.
    expect(seqs({}, 2)).toEqual([2, 4]);
    expect(seqs({ from: 5_000, to: 10_000 })).toEqual([3, 1]);
    expect(seqs({ from: 10_001 })).toEqual([2, 4]);
    expect(seqs({ since: 12_000 })).toEqual([3, 4]);
    expect(seqs({ since: 12_000, from: 6_000 })).toEqual([4]);
  });
});
