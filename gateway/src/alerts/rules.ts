/**
 * Alert rules: their schema (the config file and PUT /api/alert-rules/:id validate with it), the defaults that
 * ship enabled, the layering (defaults < config < API, by id) and which devices and events a rule applies to.
 * docs/protocol.md "Alerts" is the contract.
 */
import { z } from "zod";
import { DEVICE_ID_PATTERN } from "../protocol/ids.ts";
import { topicMatches, validateTopicFilter } from "../protocol/topic-filter.ts";

const RULE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const READING_KEY = /^[a-z][a-zA-Z0-9_]{0,31}$/;
const finite = z.number().refine(Number.isFinite, "must be a finite number");
const nonNegative = finite.refine((n) => n >= 0, "must be ≥ 0");

const scopeSchema = z
  .strictObject({
    /** Exactly this device id. */
    device: z.string().regex(DEVICE_ID_PATTERN, "scope.device must be a device id").optional(),
    /** A glob over device ids: `*` any run of characters, `?` one. */
    devices: z.string().regex(/^[A-Za-z0-9_*?-]{1,64}$/, "scope.devices is a glob of device-id characters, * and ?").optional(),
    /** An MQTT topic filter over the event's topic (sensors/{id}/telemetry or …/status). */
    topic: z
      .string()
      .superRefine((f, ctx) => {
        try {
          validateTopicFilter(f);
        } catch (e) {
          ctx.addIssue({ code: "custom", message: (e as Error).message });
        }
      })
      .optional(),
  })
  .optional();

const common = {
  id: z.string().regex(RULE_ID, "rule ids are 1-64 characters from A-Z a-z 0-9 _ -"),
  name: z.string().min(1).max(100).optional(),
  enabled: z.boolean().default(true),
  severity: z.enum(["info", "warning", "critical"]).default("warning"),
  scope: scopeSchema,
};

const thresholdSchema = z
  .strictObject({
    ...common,
    kind: z.literal("threshold"),
    metric: z.string().regex(READING_KEY, "metric must be a reading key (^[a-z][a-zA-Z0-9_]{0,31}$) or battery"),
    above: finite.optional(),
    below: finite.optional(),
    hysteresis: nonNegative.default(0),
    forS: nonNegative.default(0),
    forReadings: z.number().int().min(1).default(1),
  })
  .refine((r) => (r.above === undefined) !== (r.below === undefined), "a threshold rule needs exactly one of above and below");

const batterySchema = z.strictObject({
  ...common,
  kind: z.literal("battery"),
  below: finite,
  hysteresis: nonNegative.default(0.1),
  forReadings: z.number().int().min(1).default(1),
});

const overdueSchema = z.strictObject({
  ...common,
  kind: z.literal("overdue"),
  /** Overdue after sleepMs × factor + grace. */
  factor: finite.refine((n) => n >= 1, "factor must be ≥ 1").default(2),
  graceS: nonNegative.default(60),
});

const offlineSchema = z.strictObject({ ...common, kind: z.literal("offline") });

export const ruleSchema = z.discriminatedUnion("kind", [thresholdSchema, batterySchema, overdueSchema, offlineSchema]);
export type Rule = z.infer<typeof ruleSchema>;
export type RuleInput = z.input<typeof ruleSchema>;
export type RuleSource = "default" | "config" | "api";
export type SourcedRule = Rule & { source: RuleSource };

/**
 * A config entry: a full rule, or `{id, enabled: false}` (or other fields) changing a default of that id.
 * Partial entries are merged onto the default before validation (resolveRules).
 */
export const configRuleSchema = z.looseObject({ id: z.string().regex(RULE_ID, "rule ids are 1-64 characters from A-Z a-z 0-9 _ -") });

/** Ship enabled: a fresh install learns that a device is overdue, offline or low on battery. */
export const DEFAULT_RULES: readonly Rule[] = [
  ruleSchema.parse({ id: "overdue", name: "Device overdue", kind: "overdue", factor: 2, graceS: 60 }),
  ruleSchema.parse({ id: "offline", name: "Device offline", kind: "offline" }),
  ruleSchema.parse({ id: "battery-low", name: "Battery low", kind: "battery", below: 3.4, hysteresis: 0.1 }),
];

export class ErrInvalidRule extends Error {
  readonly code = "invalid_rule";
  constructor(readonly problems: string[]) {
    super(problems.join("; "));
    this.name = "ErrInvalidRule";
  }
}

/** Validates one rule; a partial rule with the id of a default is completed from it. */
export function parseRule(input: unknown, base?: Rule): Rule {
  const merged = base && typeof input === "object" && input !== null && !Array.isArray(input) ? { ...base, ...input } : input;
  const parsed = ruleSchema.safeParse(merged);
  if (!parsed.success) {
    throw new ErrInvalidRule(parsed.error.issues.map((i) => `${i.path.length ? i.path.join(".") : "rule"}: ${i.message}`));
  }
  return parsed.data;
}

/** The effective rules: defaults, then the config's, then the API's, later ones replacing by id. */
export function resolveRules(config: readonly Rule[], api: readonly Rule[]): SourcedRule[] {
  const byId = new Map<string, SourcedRule>();
  for (const r of DEFAULT_RULES) byId.set(r.id, { ...r, source: "default" });
  for (const r of config) byId.set(r.id, { ...r, source: "config" });
  for (const r of api) byId.set(r.id, { ...r, source: "api" });
  return [...byId.values()];
}

/** Config entries → rules (partial entries complete a default of the same id). Throws with every problem. */
export function parseConfigRules(entries: readonly { id: string }[]): Rule[] {
  const problems: string[] = [];
  const rules: Rule[] = [];
  for (const [i, entry] of entries.entries()) {
    try {
      rules.push(parseRule(entry, DEFAULT_RULES.find((d) => d.id === entry.id)));
    } catch (e) {
      if (!(e instanceof ErrInvalidRule)) throw e;
      problems.push(...e.problems.map((p) => `alerts.rules[${i}] (${entry.id}): ${p}`));
    }
  }
  if (problems.length) throw new ErrInvalidRule(problems);
  return rules;
}

/** Whether the rule applies to this device and the topic of the event being evaluated. */
export function ruleApplies(rule: Rule, deviceId: string, topic: string): boolean {
  const s = rule.scope;
  if (!s) return true;
  if (s.device !== undefined && s.device !== deviceId) return false;
  if (s.devices !== undefined && !globMatches(s.devices, deviceId)) return false;
  if (s.topic !== undefined && !topicMatches(s.topic, topic)) return false;
  return true;
}

/**
 * `*` any run of characters, `?` one. A two-pointer match, not a RegExp: a glob like `*a*a*a*b` would make a
 * backtracking RegExp take exponential time, and this runs for every reading against every rule.
 */
export function globMatches(glob: string, id: string): boolean {
  let g = 0;
  let i = 0;
  let star = -1;
  let resume = 0;
  while (i < id.length) {
    if (g < glob.length && (glob[g] === "?" || glob[g] === id[i])) {
      g++;
      i++;
    } else if (g < glob.length && glob[g] === "*") {
      star = g++;
      resume = i;
    } else if (star >= 0) {
      g = star + 1;
      i = ++resume;
    } else return false;
  }
  while (glob[g] === "*") g++;
  return g === glob.length;
}

export function ruleName(r: Rule): string {
  if (r.name) return r.name;
  if (r.kind === "threshold") return `${r.metric} ${r.above !== undefined ? `above ${r.above}` : `below ${r.below}`}`;
  if (r.kind === "battery") return `battery below ${r.below} V`;
  return r.kind === "overdue" ? "device overdue" : "device offline";
}
