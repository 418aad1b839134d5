/** The entities a device keeps until it is deleted, in a real SQLite database, across a reopen. */
import { rmSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { newDevice, type DeviceView } from "../protocol/device-state.ts";
import { openDatabase } from "../transport/sqlite/db.ts";
import { SeenEntities } from "./seen-entities.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const withReading = (readings: Record<string, number>, battery: number | null): DeviceView => ({
  ...newDevice("k1"),
  battery,
  lastReading: { seq: 1, t: 0, age: null, timeSource: "received", receivedAt: 0, readings },
});

describe("SeenEntities", () => {
  it("keeps every key and the battery seen, through a restart, until forget", () => {
    const dir = mkdtempSync(join(tmpdir(), "seen-"));
    dirs.push(dir);
    let db = openDatabase(dir);
    let seen = new SeenEntities(db);
    expect(seen.see(withReading({ temperature: 20, humidity: 40 }, 3.9))).toEqual({ readingKeys: ["humidity", "temperature"], battery: true });
    // a reading without humidity and without a battery value (a sensor fault) removes nothing
    expect(seen.see(withReading({ temperature: 21 }, null))).toEqual({ readingKeys: ["humidity", "temperature"], battery: true });
    expect(seen.see(withReading({ co2: 500 }, null)).readingKeys).toEqual(["co2", "humidity", "temperature"]);
    db.close();

    db = openDatabase(dir);
    seen = new SeenEntities(db);
    expect(seen.get("k1")).toEqual({ readingKeys: ["co2", "humidity", "temperature"], battery: true });
    seen.forget("k1");
    expect(seen.see(withReading({ temperature: 22 }, null))).toEqual({ readingKeys: ["temperature"], battery: false });
    db.close();
  });
});
