import { describe, expect, it } from "vitest";
import { readingTime } from "./reading-time.ts";

const RECEIVED = 1_764_081_000_000;

describe("readingTime (docs/protocol.md \"Reading time\")", () => {
  it("uses the device's t when it sent a number, and still reports its age", () => {
    expect(readingTime({ t: 1_764_000_000_000 }, RECEIVED)).toEqual({ t: 1_764_000_000_000, age: null, timeSource: "device" });
    expect(readingTime({ t: 1_764_000_000_000, age: 5000 }, RECEIVED)).toEqual({ t: 1_764_000_000_000, age: 5000, timeSource: "device" });
    expect(readingTime({ t: 0 }, RECEIVED)).toEqual({ t: 0, age: null, timeSource: "device" });
  });

  it("subtracts age from receivedAt when the device has no clock", () => {
    expect(readingTime({ t: null, age: 3_600_000 }, RECEIVED)).toEqual({ t: RECEIVED - 3_600_000, age: 3_600_000, timeSource: "age" });
    expect(readingTime({ t: null, age: 0 }, RECEIVED)).toEqual({ t: RECEIVED, age: 0, timeSource: "age" });
  });

  it("falls back to receivedAt without t and age", () => {
    expect(readingTime({ t: null }, RECEIVED)).toEqual({ t: RECEIVED, age: null, timeSource: "received" });
    expect(readingTime({ t: null, age: undefined }, RECEIVED)).toEqual({ t: RECEIVED, age: null, timeSource: "received" });
  });
});
