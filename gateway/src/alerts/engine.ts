/**
 * When an alert fires and when it resolves: the state machine of every (rule, device), fed with readings,
 * status reports and the clock. Pure: no storage, no I/O; alerts.ts stores what it decides and streams it.
 *
 * - threshold and battery: a reading in breach starts (or continues) a pending run; the alert fires once the
 *   run has lasted `forS` seconds of reading time and `forReadings` readings; a reading outside the breach
 *   ends the run. A firing alert resolves only once the value is back past the threshold by `hysteresis`, so a
 *   value that flaps around the threshold fires once. Only readings newer (by seq) than the last one seen are
 *   evaluated: a late, older reading says nothing about now.
 * - overdue: the clock (check()) fires it when a sleeping device missed `sleepMs × factor + grace`.
 * - offline: a Last Will fires it. Both resolve on the device's next report.
 */
import type { AlertData, StatusData, TelemetryData } from "../protocol/events.ts";
import type { DeviceView } from "../protocol/device-state.ts";
import { deviceTopic } from "../protocol/topics.ts";
import { ruleApplies, ruleName, type Rule } from "./rules.ts";

/** A new alert (alerts.ts gives it its id) or the resolution of a firing one. */
export type Transition =
  | { type: "fire"; alert: Omit<AlertData, "alertId"> }
  | { type: "resolve"; alertId: number; ruleId: string; deviceId: string; at: number; why: string };

type ValueRule = Extract<Rule, { kind: "threshold" | "battery" }>;

interface Track {
  /** Reading time the current breach run started at; null when no run. */
  since: number | null;
  count: number;
  lastSeq: number;
}

export class AlertEngine {
  private rules: Rule[] = [];
  /** Each rule as it was last set, to see which ones changed. */
  private defined = new Map<string, string>();
  private readonly tracks = new Map<string, Track>();
  private readonly applicable = new Map<string, ValueRule[]>();
  /** Firing alerts by device, then rule id: a report looks at its own device's only. */
  private readonly firing = new Map<string, Map<string, AlertData>>();

  constructor(rules: readonly Rule[]) {
    this.setRules(rules);
  }

  /**
   * Replaces the rules. The alerts of a rule that is gone, disabled or changed (another threshold, metric, scope…)
   * resolve, and its pending runs start over: the new rule decides afresh on the next reading or check.
   */
  setRules(rules: readonly Rule[], now = Date.now()): Transition[] {
    const defined = new Map(rules.filter((r) => r.enabled).map((r) => [r.id, JSON.stringify(r)]));
    const unchanged = (id: string) => defined.has(id) && defined.get(id) === this.defined.get(id);
    this.rules = rules.filter((r) => r.enabled);
    this.applicable.clear();
    const out: Transition[] = [];
    for (const byRule of this.firing.values()) {
      for (const a of byRule.values()) if (!unchanged(a.ruleId)) out.push(resolve(a, now, "its rule was changed, removed or disabled"));
    }
    for (const k of this.tracks.keys()) if (!unchanged(k.split("\u0000")[0]!)) this.tracks.delete(k);
    this.defined = defined;
    return out;
  }

  /**
   * Alerts still firing from before a restart (the store's), so they resolve instead of firing twice. Those whose
   * rule is no longer there (or disabled) resolve now: returned.
   */
  load(open: readonly AlertData[], now = Date.now()): Transition[] {
    for (const a of open) this.update(a);
    return open.filter((a) => !this.defined.has(a.ruleId)).map((a) => resolve(a, now, "its rule was removed or disabled"));
  }

  /**
   * Drops everything kept about a deleted device (its pending runs, the last seq seen, its firing alerts): if it
   * comes back (re-flashed, seq from 0 again), its readings count from the first.
   */
  forgetDevice(deviceId: string): void {
    this.firing.delete(deviceId);
    for (const k of this.tracks.keys()) if (k.endsWith(`\u0000${deviceId}`)) this.tracks.delete(k);
    for (const k of this.applicable.keys()) if (k.startsWith(`${deviceId}\u0000`)) this.applicable.delete(k);
  }

  /** How many alerts of the device fire now. */
  firingCount(deviceId: string): number {
    return this.firing.get(deviceId)?.size ?? 0;
  }

  /** Keeps the engine's copy of a firing alert current (after an ack, say). */
  update(alert: AlertData): void {
    let byRule = this.firing.get(alert.deviceId);
    if (alert.state === "firing") {
      if (!byRule) this.firing.set(alert.deviceId, (byRule = new Map()));
      byRule.set(alert.ruleId, alert);
    } else if (byRule?.get(alert.ruleId)?.alertId === alert.alertId) {
      byRule.delete(alert.ruleId);
      if (byRule.size === 0) this.firing.delete(alert.deviceId);
    }
  }

  /** The threshold and battery rules whose scope covers this device and topic, worked out once per device. */
  private valueRulesFor(deviceId: string, topic: string): ValueRule[] {
    const k = `${deviceId}\u0000${topic}`;
    let rules = this.applicable.get(k);
    if (!rules) {
      rules = this.rules.filter((r): r is ValueRule => (r.kind === "threshold" || r.kind === "battery") && ruleApplies(r, deviceId, topic));
      if (this.applicable.size >= 100_000) this.applicable.clear();
      this.applicable.set(k, rules);
    }
    return rules;
  }

  private firingOf(ruleId: string, deviceId: string): AlertData | undefined {
    return this.firing.get(deviceId)?.get(ruleId);
  }

  onTelemetry(d: TelemetryData): Transition[] {
    const out = this.resolveOnReport(d.deviceId, d.receivedAt);
    for (const rule of this.valueRulesFor(d.deviceId, d.topic)) {
      const value = rule.kind === "battery" ? d.battery : valueOf(d, rule.metric);
      if (value === null || value === undefined) continue;
      const t = this.track(rule.id, d.deviceId);
      if (d.seq <= t.lastSeq) continue;
      t.lastSeq = d.seq;
      const transition = this.evaluate(rule, t, d, value);
      if (transition) out.push(transition);
    }
    return out;
  }

  onStatus(s: StatusData): Transition[] {
    if (s.state !== "offline") return this.resolveOnReport(s.deviceId, s.receivedAt);
    const out: Transition[] = [];
    for (const rule of this.rules) {
      if (rule.kind !== "offline" || !ruleApplies(rule, s.deviceId, s.topic) || this.firingOf(rule.id, s.deviceId)) continue;
      out.push(fire(rule, s.deviceId, s.topic, null, null, null, s.receivedAt, "offline: its connection dropped without a goodbye (Last Will)"));
    }
    return out;
  }

  /**
   * The clock: sleeping devices past `sleepMs × factor + grace` since their status, or since `listeningSince`
   * (when the gateway started receiving again) if that is later: a device cannot be late for a gateway that was
   * not listening.
   */
  check(devices: readonly DeviceView[], now: number, listeningSince = 0): Transition[] {
    const out: Transition[] = [];
    for (const rule of this.rules) {
      if (rule.kind !== "overdue") continue;
      for (const d of devices) {
        if (d.status !== "sleeping" || d.nextWakeAt === null) continue;
        const topic = deviceTopic(d.deviceId, "status");
        if (!ruleApplies(rule, d.deviceId, topic) || this.firingOf(rule.id, d.deviceId)) continue;
        const sleepMs = Math.max(0, d.nextWakeAt - d.statusAt);
        const dueBy = Math.max(d.statusAt, listeningSince) + sleepMs * rule.factor + rule.graceS * 1000;
        if (now <= dueBy) continue;
        const late = Math.round((now - d.nextWakeAt) / 1000);
        out.push(fire(rule, d.deviceId, topic, null, null, null, now, `overdue: due at ${new Date(d.nextWakeAt).toISOString()}, nothing for ${late} s since`));
      }
    }
    return out;
  }

  private evaluate(rule: ValueRule, t: Track, d: TelemetryData, value: number): Transition | undefined {
    const above = rule.kind === "threshold" && rule.above !== undefined;
    const threshold = rule.kind === "battery" ? rule.below : (rule.above ?? rule.below)!;
    const breach = above ? value > threshold : value < threshold;
    const firing = this.firingOf(rule.id, d.deviceId);
    if (firing) {
      const clear = above ? value <= threshold - rule.hysteresis : value >= threshold + rule.hysteresis;
      if (!clear) return undefined;
      t.since = null;
      t.count = 0;
      return resolve(firing, d.receivedAt, `${label(rule)} ${value} back ${above ? "below" : "above"} ${above ? threshold - rule.hysteresis : threshold + rule.hysteresis}`);
    }
    if (!breach) {
      t.since = null;
      t.count = 0;
      return undefined;
    }
    t.since ??= d.t;
    t.count++;
    const forS = rule.kind === "threshold" ? rule.forS : 0;
    const heldMs = d.t - t.since;
    if (heldMs < forS * 1000 || t.count < rule.forReadings) return undefined;
    const held = forS > 0 ? ` for ${Math.round(heldMs / 1000)} s` : t.count > 1 ? ` for ${t.count} readings` : "";
    const message = `${label(rule)} ${value} ${above ? "above" : "below"} ${threshold}${rule.kind === "battery" ? " V" : ""}${held}`;
    return fire(rule, d.deviceId, d.topic, rule.kind === "battery" ? "battery" : rule.metric, value, threshold, d.receivedAt, message);
  }

  /** Overdue and offline alerts end with the device's next report. */
  private resolveOnReport(deviceId: string, at: number): Transition[] {
    const out: Transition[] = [];
    for (const a of this.firing.get(deviceId)?.values() ?? []) {
      if (a.kind === "overdue" || a.kind === "offline") out.push(resolve(a, at, "the device reported again"));
    }
    return out;
  }

  private track(ruleId: string, deviceId: string): Track {
    const k = key(ruleId, deviceId);
    let t = this.tracks.get(k);
    if (!t) this.tracks.set(k, (t = { since: null, count: 0, lastSeq: -1 }));
    return t;
  }
}

const key = (ruleId: string, deviceId: string) => `${ruleId}\u0000${deviceId}`;

const label = (rule: ValueRule) => (rule.kind === "battery" ? "battery" : rule.metric);

function valueOf(d: TelemetryData, metric: string): number | undefined {
  return d.readings[metric] ?? (metric === "battery" && d.battery !== null ? d.battery : undefined);
}

function fire(
  rule: Rule,
  deviceId: string,
  topic: string,
  metric: string | null,
  value: number | null,
  threshold: number | null,
  at: number,
  message: string,
): Transition {
  return {
    type: "fire",
    alert: {
      ruleId: rule.id,
      ruleName: ruleName(rule),
      kind: rule.kind,
      severity: rule.severity,
      deviceId,
      topic,
      metric,
      state: "firing",
      message,
      value,
      threshold,
      firedAt: at,
      resolvedAt: null,
      ackedAt: null,
      ackedBy: null,
      updatedAt: at,
    },
  };
}

function resolve(a: AlertData, at: number, why: string): Transition {
  return { type: "resolve", alertId: a.alertId, ruleId: a.ruleId, deviceId: a.deviceId, at, why };
}
