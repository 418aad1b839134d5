/**
 * The alerts table, derived from `alert` events by the shared apply step (projection.ts), so it reads the same in
 * every replica of Redis mode. Each event carries the whole alert after a change (protocol/events.ts AlertData);
 * a new alert comes with alertId 0 and takes the id of the event that fired it, which every replica knows.
 * Changes only move forward: a resolved alert stays resolved and the first acknowledgement stays, so an ack made
 * on one gateway from a copy that was still firing cannot undo a resolution the leader stored meanwhile.
 * Read by alerts/alerts.ts (GET /api/alerts, the engine's recovery).
 */
import type { AlertData, AlertState } from "../../protocol/events.ts";
import type { Db } from "./db.ts";

export interface AlertQuery {
  state: AlertState | "all";
  deviceId?: string;
  /** Only alerts older than this id (paging). */
  beforeId?: number;
  limit: number;
}

export class AlertTable {
  private readonly insert;
  private readonly save;
  private readonly one;
  private readonly open;
  private readonly latest;
  private readonly latestOfDevice;

  constructor(private readonly db: Db) {
    // OR IGNORE: a second firing alert of one (rule, device) (two leaders overlapping at a handover) is not a row;
    // the unique index alerts_open keeps one, and a failing insert would stop the replica applying the log.
    this.insert = db.prepare<[number, string, string, string, number, number | null, number | null, string], void>(
      "INSERT OR IGNORE INTO alerts (id, rule_id, device_id, state, fired_at, resolved_at, acked_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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

  /**
   * Applies the alert of a stored `alert` event whose id is `eventId`; returns the alert as stored now, which is
   * what the event then carries (its id filled in, forward-only fields kept).
   */
  apply(incoming: AlertData, eventId: number): AlertData {
    if (incoming.alertId === 0) {
      const alert = { ...incoming, alertId: eventId };
      this.insert.run(alert.alertId, alert.ruleId, alert.deviceId, alert.state, alert.firedAt, alert.resolvedAt, alert.ackedAt, JSON.stringify(alert));
      return alert;
    }
    const current = this.get(incoming.alertId);
    if (!current) return incoming; // retention took it before this replica started: nothing to change
    const acked = current.ackedAt !== null;
    const alert: AlertData = {
      ...incoming,
      state: current.state === "resolved" ? "resolved" : incoming.state,
      resolvedAt: current.resolvedAt ?? incoming.resolvedAt,
      ackedAt: acked ? current.ackedAt : incoming.ackedAt,
      ackedBy: acked ? current.ackedBy : incoming.ackedBy,
      updatedAt: Math.max(current.updatedAt, incoming.updatedAt),
    };
    this.save.run(alert.state, alert.resolvedAt, alert.ackedAt, JSON.stringify(alert), alert.alertId);
    return alert;
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
}
