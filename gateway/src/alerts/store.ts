/**
 * Alerts and API-set rules in the gateway's SQLite database (tables in transport/sqlite/db.ts). alerts.ts
 * changes them inside transport.atomically(), so an alert's row and its `alert` event commit together.
 */
import type { AlertData, AlertState } from "../protocol/events.ts";
import type { Db } from "../transport/sqlite/db.ts";
import { ruleSchema, type Rule } from "./rules.ts";

export interface AlertQuery {
  state: AlertState | "all";
  deviceId?: string;
  /** Only alerts older than this id (paging). */
  beforeId?: number;
  limit: number;
}

export class AlertStore {
  private readonly insert;
  private readonly save;
  private readonly one;
  private readonly open;
  private readonly latest;
  private readonly latestOfDevice;

  constructor(private readonly db: Db) {
    this.insert = db.prepare<[string, string, string, number, string], void>(
      "INSERT INTO alerts (rule_id, device_id, state, fired_at, data) VALUES (?, ?, ?, ?, ?)",
    );
    this.save = db.prepare<[string, number | null, number | null, string, number], void>(
      "UPDATE alerts SET state = ?, resolved_at = ?, acked_at = ?, data = ? WHERE id = ?",
    );
    this.one = db.prepare<[number], { data: string }>("SELECT data FROM alerts WHERE id = ?");
    this.open = db.prepare<[], { data: string }>("SELECT data FROM alerts WHERE state = 'firing' ORDER BY id");
    this.latest = db.prepare<[], { data: string }>("SELECT data FROM alerts WHERE id IN (SELECT MAX(id) FROM alerts GROUP BY device_id, rule_id) ORDER BY id");
    this.latestOfDevice = db.prepare<[string], { data: string }>(
      "SELECT data FROM alerts WHERE id IN (SELECT MAX(id) FROM alerts WHERE device_id = ? GROUP BY rule_id) ORDER BY id",
    );
  }

  /** Stores a new firing alert; its id is the row's. */
  add(alert: Omit<AlertData, "alertId">): AlertData {
    const id = Number(this.insert.run(alert.ruleId, alert.deviceId, alert.state, alert.firedAt, "{}").lastInsertRowid);
    const stored: AlertData = { alertId: id, ...alert };
    this.put(stored);
    return stored;
  }

  put(alert: AlertData): void {
    this.save.run(alert.state, alert.resolvedAt, alert.ackedAt, JSON.stringify(alert), alert.alertId);
  }

  get(id: number): AlertData | undefined {
    const row = this.one.get(id);
    return row ? (JSON.parse(row.data) as AlertData) : undefined;
  }

  firing(): AlertData[] {
    return this.open.all().map((r) => JSON.parse(r.data) as AlertData);
  }

  /** The newest alert of every (device, rule), of one device or of all. */
  latestPerRule(deviceId?: string): AlertData[] {
    const rows = deviceId === undefined ? this.latest.all() : this.latestOfDevice.all(deviceId);
    return rows.map((r) => JSON.parse(r.data) as AlertData);
  }

  /** Newest first. */
  list(q: AlertQuery): AlertData[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.state !== "all") {
      where.push("state = ?");
      args.push(q.state);
    }
    if (q.deviceId !== undefined) {
      where.push("device_id = ?");
      args.push(q.deviceId);
    }
    if (q.beforeId !== undefined) {
      where.push("id < ?");
      args.push(q.beforeId);
    }
    const sql = `SELECT data FROM alerts ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`;
    return this.db
      .prepare<(string | number)[], { data: string }>(sql)
      .all(...args, q.limit)
      .map((r) => JSON.parse(r.data) as AlertData);
  }

  apiRules(): Rule[] {
    return this.db
      .prepare<[], { rule: string }>("SELECT rule FROM alert_rules ORDER BY id")
      .all()
      .map((r) => ruleSchema.parse(JSON.parse(r.rule)));
  }

  putApiRule(rule: Rule, now: number): void {
    this.db
      .prepare<[string, string, number], void>(
        "INSERT INTO alert_rules (id, rule, updated_at) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET rule = excluded.rule, updated_at = excluded.updated_at",
      )
      .run(rule.id, JSON.stringify(rule), now);
  }

  deleteApiRule(id: string): boolean {
    return this.db.prepare<[string], void>("DELETE FROM alert_rules WHERE id = ?").run(id).changes > 0;
  }
}
