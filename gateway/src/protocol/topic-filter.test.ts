import { describe, expect, it } from "vitest";
import { ErrInvalidTopicFilter, filterCovers, filtersOverlap, topicMatches, validateTopicFilter } from "./topic-filter.ts";
import { parseDeviceTopic } from "./topics.ts";

describe("validateTopicFilter (MQTT 3.1.1 §4.7)", () => {
  it.each(["#", "+", "a/+/c", "a/#", "+/+", "/", "a//b", "sensors/+/cmd/ack", "$SYS/#"])("accepts %j", (f) => {
    expect(() => validateTopicFilter(f)).not.toThrow();
  });
  it.each(["", "a/#/c", "a#", "a/b#", "#/a", "a+", "a/+b", "++", "a/\u0000"])("rejects %j", (f) => {
    expect(() => validateTopicFilter(f)).toThrow(ErrInvalidTopicFilter);
  });
});

describe("topicMatches", () => {
  it.each([
    ["#", "sensors/a/telemetry", true],
    ["sensors/#", "sensors", true], // '#' also matches the parent level
    ["sensors/#", "sensors/a/telemetry", true],
    ["sensors/+/telemetry", "sensors/a/telemetry", true],
    ["sensors/+/telemetry", "sensors/a/b/telemetry", false],
    ["sensors/+", "sensors", false],
    ["sensors/+/#", "sensors/a", true],
    ["+/+", "/a", true], // empty levels are levels
    ["+", "/a", false],
    ["sensors/a/cmd", "sensors/a/cmd/ack", false],
    ["sensors/a/cmd/+", "sensors/a/cmd/ack", true],
    ["#", "$SYS/x", false], // §4.7.2: wildcards at the start do not match $ topics
    ["+/x", "$SYS/x", false],
    ["$SYS/#", "$SYS/x", true],
    ["a/b", "a/b", true],
    ["a/b", "a/B", false],
  ])("%j vs %j → %s", (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});

describe("filterCovers", () => {
  it.each([
    ["#", "sensors/+/telemetry", true],
    ["sensors/#", "sensors/a/#", true],
    ["sensors/#", "sensors", true],
    ["sensors/a/#", "sensors/#", false],
    ["sensors/+/telemetry", "sensors/a/telemetry", true],
    ["sensors/a/telemetry", "sensors/+/telemetry", false],
    ["sensors/+/#", "sensors/a/status", true],
    ["sensors/+", "sensors/a/b", false],
    ["sensors/+/telemetry", "sensors/#", false],
    ["#", "$SYS/#", false],
  ])("%j covers %j → %s", (outer, inner, expected) => {
    expect(filterCovers(outer, inner)).toBe(expected);
  });
});

describe("parseDeviceTopic", () => {
  it("splits device topics and refuses others", () => {
    expect(parseDeviceTopic("sensors/k-1/telemetry")).toEqual({ deviceId: "k-1", kind: "telemetry" });
    expect(parseDeviceTopic("sensors/k-1/cmd/ack")).toEqual({ deviceId: "k-1", kind: "cmd/ack" });
    expect(parseDeviceTopic("sensors/k 1/telemetry")).toBeUndefined();
    expect(parseDeviceTopic("sensors/k/other")).toBeUndefined();
    expect(parseDeviceTopic("other/k/telemetry")).toBeUndefined();
    expect(parseDeviceTopic(`sensors/${"x".repeat(65)}/status`)).toBeUndefined();
  });
});

describe("filtersOverlap", () => {
  it("tells whether two filters can match one topic", () => {
    const overlapping = [["#", "sensors/+/cmd"], ["sensors/#", "sensors/+/cmd/ack"], ["sensors/+/cmd", "sensors/d1/+"], ["a", "a/#"], ["+/+", "a/b"]];
    for (const [a, b] of overlapping) {
      expect(filtersOverlap(a!, b!), `${a} ${b}`).toBe(true);
      expect(filtersOverlap(b!, a!), `${b} ${a}`).toBe(true);
    }
    const disjoint = [["sensors/+/cmd", "sensors/+/cmd/ack"], ["sensors/d1/cmd", "sensors/d2/+"], ["a/+", "a"], ["#", "$SYS/x"], ["+/#", "$SYS/#"]];
    for (const [a, b] of disjoint) {
      expect(filtersOverlap(a!, b!), `${a} ${b}`).toBe(false);
      expect(filtersOverlap(b!, a!), `${b} ${a}`).toBe(false);
    }
  });
});
