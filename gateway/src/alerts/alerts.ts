/**
 * The alert service. The alerts table is a projection of `alert` events (transport/sqlite/alerts.ts), applied by
 * every replica; this service only dispatches those events. The engine (engine.ts: rule evaluation, the overdue
 * clock) and the sinks (webhooks, MQTT alerts) run where one instance decides: always in SQLite mode, on the
 * lease holder in Redis mode (`isLeader`). An instance that becomes leader builds its engine from the table's
 * firing alerts and the rules, and goes on from there. Acknowledging works on any instance: it is an `alert`
 * event too. Rules come from rules.ts (defaults < config < API, the API's in rule-store.ts).
 */
import type { Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { AlertData } from "../protocol/events.ts";
import { gatewayEventTopic } from "../protocol/topics.ts";
import type { AlertQuery, AlertTable } from "../transport/sqlite/alerts.ts";
import type { NewEvent, StoredEvent, Transport } from "../transport/transport.ts";
import { AlertEngine, type Transition } from "./engine.ts";
import type { RuleStore } from "./rule-store.ts";
import { parseRule, resolveRules, type Rule, type SourcedRule } from "./rules.ts";

/** Where alert changes go besides the browser (webhooks.ts, mqtt-alerts.ts). */
export interface AlertSink {
  send(alert: AlertData): void;
  close(): Promise<void>;
}

export interface AlertsOptions {
  /** alerts.rules of the config, already validated (rules.ts parseConfigRules); the same on every gateway. */
  configRules: Rule[];
  /** How often the overdue clock runs, and the leader reads the rules again (a rule set on another gateway). */
  checkIntervalMs: number;
}

export interface AlertsDeps {
  transport: Pick<Transport, "dispatch" | "onStored" | "devices"> & { readonly alertTable: AlertTable };
  ruleStore: RuleStore;
  /** Whether this instance runs the engine and the sinks: SQLite mode always, Redis mode the lease holder. */
  isLeader: () => boolean;
  /**
   * Since when the gateway has been receiving MQTT without a break; undefined while it is not. Silence before
   * that is the gateway's, not the device's: the overdue clock counts from it.
   */
  intakeSince: () => number | undefined;
  sinks: AlertSink[];
  metrics: Metrics;
  log: Logger;
}

export class Alerts {
  /** Only while this instance leads. */
  private engine: AlertEngine | undefined;
  /** The effective rules the engine has, as JSON: to see when the store changed. */
  private engineRules = "";
  /** The engine's work, one step after the other: each step's alert events are stored before the next decides. */
  private work: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;
  private readonly stopListening: () => void;
  private readonly sinks: AlertSink[];
  /** Firing alerts per device, as the table has them (every instance; Home Assistant reads it per reading). */
  private firingByDevice = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly deps: AlertsDeps,
    private readonly opts: AlertsOptions,
  ) {
    this.sinks = [...deps.sinks];
    this.firingChanged();
    this.stopListening = deps.transport.onStored((event, stored) => this.observe(event, stored));
    this.timer = setInterval(() => this.check(), opts.checkIntervalMs);
    this.timer.unref();
    this.enqueue(() => this.lead(true));
  }

  /** Adds a sink that reads these alerts itself (MQTT alerts republish the latest ones), so exists after them. */
  addSink(sink: AlertSink): void {
    this.sinks.push(sink);
  }

  /** Removes a sink added with addSink (Redis mode: the outward client stops when this gateway is no longer leader). */
  removeSink(sink: AlertSink): void {
    const i = this.sinks.indexOf(sink);
    if (i >= 0) this.sinks.splice(i, 1);
  }

  /** The effective rules, with where each comes from. */
  async rules(): Promise<SourcedRule[]> {
    return resolveRules(this.opts.configRules, await this.deps.ruleStore.all());
  }

  /** Sets (or replaces) a rule through the API. Throws ErrInvalidRule with every problem. */
  async putRule(id: string, input: unknown, now = Date.now()): Promise<SourcedRule> {
    const body = typeof input === "object" && input !== null && !Array.isArray(input) ? { ...input, id } : input;
    const base = (await this.rules()).find((r) => r.id === id);
    // A partial body changes the rule of that id (e.g. {"enabled": false}); a full one replaces it.
    const rule = parseRule(body, base && !hasKind(input) ? stripSource(base) : undefined);
    await this.deps.ruleStore.put(rule, now);
    await this.enqueue(() => this.lead(true, now)); // on the leader now; another gateway's leader at its next check
    return (await this.rules()).find((r) => r.id === id)!;
  }

  /** Removes the API layer's rule of that id; returns the rule in force now (config, default), if any. */
  async deleteRule(id: string, now = Date.now()): Promise<{ deleted: boolean; rule: SourcedRule | null }> {
    const deleted = await this.deps.ruleStore.delete(id);
    await this.enqueue(() => this.lead(true, now));
    return { deleted, rule: (await this.rules()).find((r) => r.id === id) ?? null };
  }

  list(q: AlertQuery): AlertData[] {
    return this.deps.transport.alertTable.list(q);
  }

  /** The newest alert of every (device, rule), of one device or of all (what MQTT alerts republish). */
  latestPerRule(deviceId?: string): AlertData[] {
    return this.deps.transport.alertTable.latestPerRule(deviceId);
  }

  /** How many alerts of the device fire now (from memory: called for every stored reading). */
  firingCount(deviceId: string): number {
    return this.firingByDevice.get(deviceId) ?? 0;
  }

  get(id: number): AlertData | undefined {
    return this.deps.transport.alertTable.get(id);
  }

  /**
   * Acknowledges an alert (firing or resolved), on any instance; a second ack keeps the first (the table only
   * moves forward). Undefined: no such alert.
   */
  async ack(id: number, by: string, now = Date.now()): Promise<AlertData | undefined> {
    const alert = this.get(id);
    if (!alert || alert.ackedAt !== null) return alert;
    const acked = await this.record({ ...alert, ackedAt: now, ackedBy: by, updatedAt: now }, now);
    this.deps.metrics.alertTransitions.inc({ kind: alert.kind, change: "acked" });
    return acked;
  }

  /** Resolves every firing alert of a device that is being deleted (DELETE /api/devices/:id): nothing is left to end them. */
  async resolveDevice(deviceId: string, now = Date.now()): Promise<void> {
    for (const alert of this.deps.transport.alertTable.firing()) {
      if (alert.deviceId !== deviceId) continue;
      this.changed(await this.record({ ...alert, state: "resolved", resolvedAt: now, updatedAt: now }, now), "resolved");
    }
  }

  /** Runs the overdue clock now (the timer does it every checkIntervalMs), after reading the rules again. */
  check(now = Date.now()): void {
    this.enqueue(async () => {
      await this.lead(true, now);
      const since = this.deps.intakeSince();
      if (this.engine && since !== undefined) await this.apply(this.engine.check(this.deps.transport.devices(), now, since));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.stopListening();
    await this.work;
    await Promise.all(this.sinks.map((s) => s.close()));
  }

  /**
   * Starts the engine when this instance became leader (from the table's firing alerts: they resolve instead of
   * firing twice), drops it when it no longer is, and with `readRules` gives it the rules if they changed.
   */
  private async lead(readRules: boolean, now = Date.now()): Promise<void> {
    if (!this.deps.isLeader()) {
      if (this.engine) this.deps.log.info("not the leader any more: the alert engine stops here");
      this.engine = undefined;
      return;
    }
    if (this.engine && !readRules) return;
    const rules = await this.rules();
    const json = JSON.stringify(rules);
    if (!this.engine) {
      this.engine = new AlertEngine(rules);
      this.engineRules = json;
      const firing = this.deps.transport.alertTable.firing();
      this.deps.log.info({ firing: firing.length }, "alert engine started");
      await this.apply(this.engine.load(firing, now));
    } else if (json !== this.engineRules) {
      this.engineRules = json;
      await this.apply(this.engine.setRules(rules, now));
    }
  }

  private observe(event: NewEvent, stored: StoredEvent): void {
    if (this.closed) return;
    if (event.kind === "alert") {
      // every instance: its table changed (before later listeners read firingCount). The leader: its engine's
      // copy and the sinks, whoever made the change.
      this.firingChanged();
      if (!this.engine) return;
      const alert = JSON.parse(stored.data) as AlertData;
      // not in the table: a second firing alert of one (rule, device), from two leaders overlapping at a handover
      if (!this.get(alert.alertId)) return;
      this.engine.update(alert);
      for (const sink of this.sinks) sink.send(alert);
    } else if (event.kind === "device" && event.data.deleted) {
      // deleted on any instance: if it comes back (re-flashed, seq from 0 again), its readings count from the first
      this.engine?.forgetDevice(event.deviceId);
    } else if (event.kind === "telemetry" || event.kind === "status") {
      if (!this.engine && !this.deps.isLeader()) return;
      const decide = (engine: AlertEngine) => (event.kind === "telemetry" ? engine.onTelemetry(event.data) : engine.onStatus(event.data));
      this.enqueue(async () => {
        await this.lead(false);
        if (this.engine) await this.apply(decide(this.engine));
      });
    }
  }

  /** A failure here must not fail the reading that caused it (it is stored already), nor stop the queue: log it. */
  private enqueue(step: () => Promise<void>): Promise<void> {
    if (this.closed) return this.work;
    return (this.work = this.work.then(step).catch((err: unknown) => this.deps.log.error({ err }, "alert evaluation failed")));
  }

  private async apply(transitions: Transition[]): Promise<void> {
    for (const t of transitions) {
      if (t.type === "fire") {
        this.changed(await this.record({ alertId: 0, ...t.alert }, t.alert.firedAt), "firing");
      } else {
        const current = this.get(t.alertId);
        if (!current || current.state !== "firing") continue;
        this.changed(await this.record({ ...current, state: "resolved", resolvedAt: t.at, updatedAt: t.at }, t.at), "resolved");
      }
    }
  }

  /**
   * Dispatches an alert change as its `alert` event (alertId 0: a new alert, which takes the event's id); resolves
   * with the alert as the table stored it, once this instance applied it.
   */
  private async record(alert: AlertData, at: number): Promise<AlertData> {
    const topic = gatewayEventTopic(alert.deviceId, "alert");
    const stored = await this.deps.transport.dispatch({ kind: "alert", topic, deviceId: alert.deviceId, receivedAt: at, data: alert });
    return stored ? (JSON.parse(stored.data) as AlertData) : alert;
  }

  private changed(alert: AlertData, change: "firing" | "resolved"): void {
    this.deps.metrics.alertTransitions.inc({ kind: alert.kind, change });
    this.deps.log.info({ alertId: alert.alertId, rule: alert.ruleId, deviceId: alert.deviceId, state: alert.state }, alert.message);
  }

  private firingChanged(): void {
    const firing = this.deps.transport.alertTable.firing();
    this.deps.metrics.alertsFiring.set(firing.length);
    this.firingByDevice = new Map();
    for (const a of firing) this.firingByDevice.set(a.deviceId, (this.firingByDevice.get(a.deviceId) ?? 0) + 1);
  }
}

const hasKind = (input: unknown): boolean => typeof input === "object" && input !== null && "kind" in input;

function stripSource(r: SourcedRule): Rule {
  const { source: _source, ...rule } = r;
  return rule as Rule;
}
