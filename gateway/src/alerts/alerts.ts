/**
 * The alert service: feeds stored readings and status reports (transport.onStored) and a clock to the engine
 * (engine.ts), stores what it decides (store.ts) with its `alert` event in one transaction, and hands every
 * change to the webhooks. Rules come from rules.ts (defaults < config < API).
 */
import type { Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { AlertData } from "../protocol/events.ts";
import { gatewayEventTopic } from "../protocol/topics.ts";
import type { Db } from "../transport/sqlite/db.ts";
import type { SqliteTransport } from "../transport/sqlite/transport.ts";
import type { NewEvent } from "../transport/transport.ts";
import { AlertEngine, type Transition } from "./engine.ts";
import { parseRule, resolveRules, type Rule, type SourcedRule } from "./rules.ts";
import { AlertStore, type AlertQuery } from "./store.ts";

/** Where alert changes go besides the browser (webhooks.ts). */
export interface AlertSink {
  send(alert: AlertData): void;
  close(): Promise<void>;
}

export interface AlertsOptions {
  /** alerts.rules of the config, already validated (rules.ts parseConfigRules). */
  configRules: Rule[];
  /** How often the overdue clock runs. */
  checkIntervalMs: number;
}

export interface AlertsDeps {
  db: Db;
  transport: SqliteTransport;
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
  private readonly store: AlertStore;
  private readonly engine: AlertEngine;
  private readonly timer: NodeJS.Timeout;
  private readonly stopListening: () => void;
  private readonly sinks: AlertSink[];
  private closed = false;

  constructor(
    private readonly deps: AlertsDeps,
    private readonly opts: AlertsOptions,
  ) {
    this.sinks = [...deps.sinks];
    this.store = new AlertStore(deps.db);
    this.engine = new AlertEngine(this.rules());
    this.apply(this.engine.load(this.store.firing()));
    this.updateFiringGauge();
    this.stopListening = deps.transport.onStored((event) => this.observe(event));
    this.timer = setInterval(() => this.check(), opts.checkIntervalMs);
    this.timer.unref();
  }

  /** Adds a sink that reads these alerts itself (MQTT alerts republish the latest ones), so exists after them. */
  addSink(sink: AlertSink): void {
    this.sinks.push(sink);
  }

  /** The effective rules, with where each comes from. */
  rules(): SourcedRule[] {
    return resolveRules(this.opts.configRules, this.store.apiRules());
  }

  /** Sets (or replaces) a rule through the API. Throws ErrInvalidRule with every problem. */
  putRule(id: string, input: unknown, now = Date.now()): SourcedRule {
    const body = typeof input === "object" && input !== null && !Array.isArray(input) ? { ...input, id } : input;
    const base = this.rules().find((r) => r.id === id);
    // A partial body changes the rule of that id (e.g. {"enabled": false}); a full one replaces it.
    const rule = parseRule(body, base && !hasKind(input) ? stripSource(base) : undefined);
    this.store.putApiRule(rule, now);
    this.apply(this.engine.setRules(this.rules(), now));
    return this.rules().find((r) => r.id === id)!;
  }

  /** Removes the API layer's rule of that id; returns the rule in force now (config, default), if any. */
  deleteRule(id: string, now = Date.now()): { deleted: boolean; rule: SourcedRule | null } {
    const deleted = this.store.deleteApiRule(id);
    this.apply(this.engine.setRules(this.rules(), now));
    return { deleted, rule: this.rules().find((r) => r.id === id) ?? null };
  }

  list(q: AlertQuery): AlertData[] {
    return this.store.list(q);
  }

  /** The newest alert of every (device, rule), of one device or of all (what MQTT alerts republish). */
  latestPerRule(deviceId?: string): AlertData[] {
    return this.store.latestPerRule(deviceId);
  }

  /** How many alerts of the device fire now (from memory: called for every stored reading). */
  firingCount(deviceId: string): number {
    return this.engine.firingCount(deviceId);
  }

  get(id: number): AlertData | undefined {
    return this.store.get(id);
  }

  /** Acknowledges an alert (firing or resolved); a second ack keeps the first. Undefined: no such alert. */
  ack(id: number, by: string, now = Date.now()): AlertData | undefined {
    const alert = this.store.get(id);
    if (!alert || alert.ackedAt !== null) return alert;
    const acked: AlertData = { ...alert, ackedAt: now, ackedBy: by, updatedAt: now };
    this.record(acked, now);
    this.deps.metrics.alertTransitions.inc({ kind: acked.kind, change: "acked" });
    return acked;
  }

  /**
   * A device is being deleted (DELETE /api/devices/:id): resolves its firing alerts (nothing is left to end them)
   * and drops what the engine kept about it.
   */
  resolveDevice(deviceId: string, now = Date.now()): void {
    for (const alert of this.store.firing()) {
      if (alert.deviceId !== deviceId) continue;
      const resolved: AlertData = { ...alert, state: "resolved", resolvedAt: now, updatedAt: now };
      this.record(resolved, now);
      this.changed(resolved, "resolved");
    }
    this.engine.forgetDevice(deviceId);
  }

  /** Runs the overdue clock now (the timer does it every checkIntervalMs). */
  check(now = Date.now()): void {
    const since = this.deps.intakeSince();
    if (this.closed || since === undefined) return;
    this.guard(() => this.apply(this.engine.check(this.deps.transport.devices(), now, since)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.stopListening();
    await Promise.all(this.sinks.map((s) => s.close()));
  }

  private observe(event: NewEvent): void {
    if (this.closed) return;
    if (event.kind === "telemetry") this.guard(() => this.apply(this.engine.onTelemetry(event.data)));
    else if (event.kind === "status") this.guard(() => this.apply(this.engine.onStatus(event.data)));
  }

  /** A failure here must not fail the reading that caused it (it is stored already): log it. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.deps.log.error({ err }, "alert evaluation failed");
    }
  }

  private apply(transitions: Transition[]): void {
    for (const t of transitions) {
      if (t.type === "fire") {
        const alert = this.deps.transport.atomically(() => {
          const stored = this.store.add(t.alert);
          this.engine.update(stored); // before the event's listeners run (firingCount for Home Assistant)
          this.dispatch(stored, t.alert.firedAt);
          return stored;
        });
        this.changed(alert, "firing");
      } else {
        const current = this.store.get(t.alertId);
        if (!current || current.state !== "firing") continue;
        const resolved: AlertData = { ...current, state: "resolved", resolvedAt: t.at, updatedAt: t.at };
        this.record(resolved, t.at);
        this.changed(resolved, "resolved");
      }
    }
  }

  /**
   * Stores a changed alert with its event and tells the engine, before the event's listeners run (they read
   * firingCount), then the sinks.
   */
  private record(alert: AlertData, at: number): void {
    this.deps.transport.atomically(() => {
      this.store.put(alert);
      this.engine.update(alert);
      this.dispatch(alert, at);
    });
    for (const sink of this.sinks) sink.send(alert);
  }

  private changed(alert: AlertData, change: "firing" | "resolved"): void {
    if (change === "firing") for (const sink of this.sinks) sink.send(alert);
    this.deps.metrics.alertTransitions.inc({ kind: alert.kind, change });
    this.deps.log.info({ alertId: alert.alertId, rule: alert.ruleId, deviceId: alert.deviceId, state: alert.state }, alert.message);
    this.updateFiringGauge();
  }

  private dispatch(alert: AlertData, at: number): void {
    const topic = gatewayEventTopic(alert.deviceId, "alert");
    this.deps.transport.dispatchNow({ kind: "alert", topic, deviceId: alert.deviceId, receivedAt: at, data: alert });
  }

  private updateFiringGauge(): void {
    this.deps.metrics.alertsFiring.set(this.store.firing().length);
  }
}

const hasKind = (input: unknown): boolean => typeof input === "object" && input !== null && "kind" in input;

function stripSource(r: SourcedRule): Rule {
  const { source: _source, ...rule } = r;
  return rule as Rule;
}
