/**
 * The settings-store reader and the torn-write model on real flash images: saved by the 2.16.4 WASM VM running
 * the real firmware (devs/) in the simulator (simulator/test/fixtures/README.md says how they were made).
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  FSTOR_ENTRY_BYTES,
  alignValue,
  entryValue,
  liveEntries,
  parseFstor,
  settingName,
  settingReadBytes,
} from "../src/fstor.ts";
import { PROFILES } from "../src/profile.ts";
import { SettingsLimitWatch, overLimitMessage } from "../src/settings-limit.ts";
import { findSettingsWrite, tornImage } from "../src/torn-write.ts";
import { restoreTrimmedTail } from "../src/vm-flash.ts";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "fixtures");
const image = (name: string) => new Uint8Array(gunzipSync(readFileSync(join(FIXTURES, `fstor-firmware-${name}.flash.gz`))));
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString();

describe("fstor reader (real images)", () => {
  it("reads header, entries, values and the program's large entry", () => {
    const img = image("save19");
    const store = parseFstor(img)!;
    expect(store).toBeDefined();
    expect(store).toMatchObject({ generation: 1, pageSize: 4096, totalPages: 32, headerPages: 2, halfBytes: 8192, headerOffset: 0 });
    expect(store.entries).toHaveLength(29);
    const keys = store.entries.map((e) => e.key);
    expect(keys.slice(0, 8)).toEqual([":MQTT_HOST", ":MQTT_PORT", ":MQTT_TLS", ":INTERVAL_S", ":QOS", ":AWAKE_MAX_S", ":KEEPALIVE_S", ":SENSOR"]);
    const live = liveEntries(store);
    expect(text(entryValue(img, live.get(":MQTT_HOST")!))).toBe('"127.0.0.1"');
    expect(text(entryValue(img, live.get(":INTERVAL_S")!))).toBe("5");
    // The first value written (11 bytes) takes the 16-byte slot at the very end of the half.
    expect(live.get(":MQTT_HOST")!.offset).toBe(8192 - alignValue(11));
    const prog = live.get("*prog")!;
    expect(prog).toMatchObject({ large: true, offset: 0x4000 });
    expect(prog.size).toBeGreaterThan(30_000);
    // Outbox records o1..o10 and ten copies of the delivery record "ak": the live one is the last.
    expect(keys.filter((k) => k === ":ak")).toHaveLength(10);
    expect(text(entryValue(img, live.get(":ak")!))).toMatch(/^\[\{"w":10,/);
    expect(text(entryValue(img, live.get(":o10")!))).toMatch(/^\[\[10,10,/);
    // The free gap between the entry list and the data is erased.
    expect(store.nextEntryPosition).toBe(24 + 29 * FSTOR_ENTRY_BYTES);
    expect(img.subarray(store.nextEntryPosition, store.dataStart).every((b) => b === 0xff)).toBe(true);
  });

  it("after compaction the store in use is the other half with the next generation", () => {
    const before = parseFstor(image("before-gc"))!;
    const after = parseFstor(image("after-gc"))!;
    expect(before).toMatchObject({ generation: 1, headerOffset: 0 });
    expect(after).toMatchObject({ generation: 2, headerOffset: 8192 });
    expect(before.entries.length).toBeGreaterThan(after.entries.length);
    // gc keeps exactly the live copies.
    expect(after.entries).toHaveLength(liveEntries(before).size);
    expect([...liveEntries(after).keys()].sort()).toEqual([...liveEntries(before).keys()].sort());
  });

  it("no store in an empty or unformatted image", () => {
    expect(parseFstor(new Uint8Array(0))).toBeUndefined();
    expect(parseFstor(new Uint8Array(24576).fill(0x37))).toBeUndefined();
  });

  it("settings keys: name, and read-reply size = name + NUL + value", () => {
    const live = liveEntries(parseFstor(image("save19"))!);
    const host = live.get(":MQTT_HOST")!;
    expect(settingName(host)).toBe("MQTT_HOST");
    expect(settingReadBytes(host)).toBe(9 + 1 + 11);
    expect(settingReadBytes(live.get("*prog")!)).toBeUndefined();
  });
});

describe("torn-write model (real images)", () => {
  it("recognises one firmware settings write: value bytes, then its entry", () => {
    const prev = image("save18");
    const next = image("save19");
    const write = findSettingsWrite(prev, next)!;
    expect(write).toBeDefined();
    expect(write.entry.key).toBe(":ak");
    const prevStore = parseFstor(prev)!;
    expect(write.valueStart).toBe(prevStore.dataStart - alignValue(write.valueBytes));
    expect(write.entryPosition).toBe(prevStore.nextEntryPosition);
    expect(write.programmedBytes).toBe(write.valueBytes + 24);
    // k = n rebuilds the saved image; k = 0 is the previous one.
    expect(Buffer.from(tornImage(prev, next, write, write.programmedBytes).subarray(0, next.length)).equals(Buffer.from(next))).toBe(true);
    expect(Buffer.from(tornImage(prev, next, write, 0)).equals(Buffer.from(prev))).toBe(true);
    // A cut inside the value leaves value bytes in the free gap and no entry for them.
    const torn = tornImage(prev, next, write, 5);
    expect(parseFstor(torn)!.entries).toHaveLength(prevStore.entries.length);
    expect(torn.subarray(write.valueStart, write.valueStart + 5)).toEqual(next.subarray(write.valueStart, write.valueStart + 5));
    expect(torn[write.valueStart + 5]).toBe(0xff);
  });

  it("compaction, identical images and two writes at once are not opportunities", () => {
    expect(findSettingsWrite(image("before-gc"), image("after-gc"))).toBeUndefined();
    expect(findSettingsWrite(image("save19"), image("save19"))).toBeUndefined();
    expect(findSettingsWrite(image("save18"), image("before-gc"))).toBeUndefined();
    expect(findSettingsWrite(new Uint8Array(0), image("save18"))).toBeUndefined();
  });

  it("the VM's one-byte-short save is restored to the previous length (esp32 profile)", () => {
    const prev = image("save19");
    const short = prev.slice(0, prev.length - 1);
    expect(restoreTrimmedTail(prev, short)).toEqual(prev);
    expect(restoreTrimmedTail(prev, new Uint8Array(4))).toHaveLength(4); // a cleared flash stays cleared
  });
});

describe("settings records over the read limit", () => {
  it("reports each key once until it shrinks again; truncated only at the write cap", () => {
    const watch = new SettingsLimitWatch(PROFILES.esp32);
    const store = parseFstor(image("save19"))!;
    expect(watch.scan(store)).toEqual([]);
    const big = (size: number) => ({ ...store, entries: [...store.entries, { ...store.entries[0]!, key: ":cmd", size, index: 99 }] });
    expect(watch.scan(big(232))).toEqual([{ key: "cmd", bytes: 236, truncated: true }]);
    expect(watch.scan(big(232))).toEqual([]); // reported already
    expect(watch.scan(big(228))).toEqual([]); // 232 bytes: readable again
    expect(watch.scan(big(229))).toEqual([{ key: "cmd", bytes: 233, truncated: false }]);
    expect(overLimitMessage({ key: "cmd", bytes: 236, truncated: true })).toBe(
      'settings record "cmd" is 236 bytes: the ESP32 runtime truncates it and panics reading it back',
    );
    expect(overLimitMessage({ key: "cmd", bytes: 249, truncated: false })).toBe(
      'settings record "cmd" is 249 bytes: the ESP32 runtime panics reading it back',
    );
  });
});
