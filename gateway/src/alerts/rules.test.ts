/** Rule validation, the default rules and the layering (defaults < config < API). */
import { describe, expect, test } from "vitest";
import { parseConfig, ErrBadConfig } from "../config.ts";
import { DEFAULT_RULES, ErrInvalidRule, globMatches, parseRule, resolveRules, ruleApplies } from "./rules.ts";

const problems = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (e) {
    if (e instanceof ErrInvalidRule) return e.problems;
    if (e instanceof ErrBadConfig) return e.problems;
    throw e;
  }
  throw new Error("expected a validation error");
};

describe("alert rules", () => {
  test("ship enabled: overdue, offline and battery-low", () => {
    const rules = parseConfig({}).alerts.rules;
    expect(resolveRules(rules, []).map((r) => [r.id, r.kind, r.enabled, r.source])).toEqual([
      ["overdue", "overdue", true, "default"],
      ["offline", "offline", true, "default"],
      ["battery-low", "battery", true, "default"],
    ]);
  });

  test("a config entry with a default's id changes only what it names; the API layer wins over both", () => {
    const config = parseConfig({ alerts: { rules: [{ id: "battery-low", enabled: false }, { id: "overdue", graceS: 5 }] } }).alerts.rules;
    const api = [parseRule({ id: "overdue", kind: "overdue", factor: 3 })];
    const rules = resolveRules(config, api);
    expect(rules.find((r) => r.id === "battery-low")).toMatchObject({ enabled: false, below: 3.4, source: "config" });
    expect(rules.find((r) => r.id === "overdue")).toMatchObject({ factor: 3, graceS: 60, source: "api" });
    expect(DEFAULT_RULES.find((r) => r.id === "overdue")).toMatchObject({ factor: 2, graceS: 60 });
  });

  test("bad rules are refused with every problem, naming where", () => {
    expect(problems(() => parseRule({ id: "x", kind: "threshold", metric: "temperature", above: 1, below: 0 }))).toEqual([
      "rule: a threshold rule needs exactly one of above and below",
    ]);
    expect(problems(() => parseRule({ id: "bad id!", kind: "offline" }))[0]).toMatch(/^id: rule ids are/);
    expect(problems(() => parseRule({ id: "x", kind: "threshold", metric: "Temp", above: 1, hysteresis: -1 }))).toEqual([
      expect.stringMatching(/^metric: /),
      "hysteresis: must be ≥ 0",
    ]);
    expect(problems(() => parseRule({ id: "x", kind: "nope" }))[0]).toMatch(/^kind: /);
    const config = problems(() =>
      parseConfig({ alerts: { rules: [{ id: "a", kind: "offline", scope: { topic: "sensors/#/x" } }, { id: "a", kind: "offline" }] } }),
    );
    expect(config).toContainEqual(expect.stringMatching(/^alerts\.rules: rule ids must be unique: a/));
    expect(config).toContainEqual(expect.stringMatching(/^alerts\.rules: alerts\.rules\[0\] \(a\): scope\.topic: /));
  });

  test("scopes: exact device, glob over ids, topic filter; all given must match", () => {
    expect(globMatches("freezer-*", "freezer-12")).toBe(true);
    expect(globMatches("freezer-?", "freezer-12")).toBe(false);
    expect(globMatches("*", "anything")).toBe(true);
    expect(globMatches("f*-*-?", "f1-2-3")).toBe(true);
    expect(globMatches("f*-*-?", "f1-2-34")).toBe(false);
    expect(globMatches("**a", "bba")).toBe(true);
    // a glob that sends a backtracking RegExp into exponential time (minutes here) is linear work for this one
    expect(globMatches(`${"*a".repeat(16)}*b`, "a".repeat(64))).toBe(false);
    const rule = parseRule({ id: "r", kind: "offline", scope: { devices: "f*", topic: "sensors/+/status" } });
    expect(ruleApplies(rule, "f1", "sensors/f1/status")).toBe(true);
    expect(ruleApplies(rule, "f1", "sensors/f1/telemetry")).toBe(false);
    expect(ruleApplies(rule, "g1", "sensors/g1/status")).toBe(false);
    expect(ruleApplies(parseRule({ id: "r", kind: "offline", scope: { device: "f1" } }), "f10", "sensors/f10/status")).toBe(false);
  });
});
