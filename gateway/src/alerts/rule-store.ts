/**
 * Alert rules set through the API (PUT/DELETE /api/alert-rules/:id): in SQLite mode the alert_rules table
 * (transport/sqlite/db.ts), in Redis mode a hash in Redis (transport/redis/shared-hash.ts), so every gateway
 * answers the same rules and the leader's engine sees a rule set on any of them. Rules are settings, not events:
 * history retention never takes them.
 */
import type { Db } from "../transport/sqlite/db.ts";
import type { SharedHash } from "../transport/redis/shared-hash.ts";
import { ruleSchema, type Rule } from "./rules.ts";

export interface RuleStore {
  /** By id. */
  all(): Promise<Rule[]>;
  put(rule: Rule, now: number): Promise<void>;
  /** True when there was a rule of that id. */
  delete(id: string): Promise<boolean>;
}

const parse = (json: string): Rule => ruleSchema.parse(JSON.parse(json));

export class SqliteRuleStore implements RuleStore {
  constructor(private readonly db: Db) {}

  async all(): Promise<Rule[]> {
    return this.db
      .prepare<[], { rule: string }>("SELECT rule FROM alert_rules ORDER BY id")
      .all()
      .map((r) => parse(r.rule));
  }

  async put(rule: Rule, now: number): Promise<void> {
    this.db
      .prepare<[string, string, number], void>(
        "INSERT INTO alert_rules (id, rule, updated_at) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET rule = excluded.rule, updated_at = excluded.updated_at",
      )
      .run(rule.id, JSON.stringify(rule), now);
  }

  async delete(id: string): Promise<boolean> {
    return this.db.prepare<[string], void>("DELETE FROM alert_rules WHERE id = ?").run(id).changes > 0;
  }
}

export class SharedRuleStore implements RuleStore {
  constructor(private readonly hash: SharedHash) {}

  async all(): Promise<Rule[]> {
    const entries = [...(await this.hash.entries())].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return entries.map(([, json]) => parse(json));
  }

  async put(rule: Rule): Promise<void> {
    await this.hash.set(rule.id, JSON.stringify(rule));
  }

  delete(id: string): Promise<boolean> {
    return this.hash.delete(id);
  }
}
