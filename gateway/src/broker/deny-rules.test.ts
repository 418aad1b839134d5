import { describe, expect, it } from "vitest";
import { compileDenyRules, ErrInvalidDenyRule } from "./deny-rules.ts";

describe("deny rules", () => {
  const rules = compileDenyRules([
    { username: "dashboard", publish: ["sensors/+/cmd"], subscribe: ["sensors/+/cmd/ack"] },
    { publish: ["admin/#"] },
  ]);

  it("apply to the named user, and a rule without username (or \"*\") to every user", () => {
    expect(rules.publish("dashboard", "sensors/d1/cmd")).toBe(0);
    expect(rules.publish("ops", "sensors/d1/cmd")).toBeUndefined();
    expect(rules.publish(undefined, "sensors/d1/cmd")).toBeUndefined();
    expect(rules.publish("ops", "admin/reboot")).toBe(1);
    expect(rules.publish(undefined, "admin")).toBe(1);
    expect(rules.publish("dashboard", "sensors/d1/telemetry")).toBeUndefined();
  });

  it("refuse a subscription that could receive a denied topic, and forward no denied message", () => {
    for (const filter of ["sensors/+/cmd/ack", "sensors/d1/cmd/ack", "sensors/#", "#", "+/+/cmd/+"]) {
      expect(rules.subscribe("dashboard", filter), filter).toBe(0);
    }
    for (const filter of ["sensors/+/telemetry", "sensors/+/cmd", "$SYS/#"]) {
      expect(rules.subscribe("dashboard", filter), filter).toBeUndefined();
    }
    expect(rules.forward("dashboard", "sensors/d1/cmd/ack")).toBe(0);
    expect(rules.forward("dashboard", "sensors/d1/telemetry")).toBeUndefined();
  });

  it.each([
    ["not an array", {}, "auth.deny: expected an array of rules"],
    ["a rule that is no object", ["x"], "auth.deny[0]: expected an object { username?, publish?, subscribe? }"],
    ["an empty username", [{ username: "", publish: ["a"] }], 'auth.deny[0].username: expected a non-empty string, or "*" for every user'],
    ["filters that are no array", [{ publish: "a/#" }], "auth.deny[0].publish: expected an array of MQTT topic filters"],
    ["a filter that is no string", [{ subscribe: [1] }], 'auth.deny[0].subscribe[0]: 1 is not a valid MQTT topic filter (not a string)'],
    ["an empty filter", [{ subscribe: [""] }], 'auth.deny[0].subscribe[0]: "" is not a valid MQTT topic filter (empty)'],
  ])("reject %s, naming the entry", (_what, input, message) => {
    expect(() => compileDenyRules(input)).toThrow(new ErrInvalidDenyRule(message));
  });
});
