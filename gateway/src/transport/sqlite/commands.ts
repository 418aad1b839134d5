/**
 * The command table in SQLite: the projection of `command` events (each state change of a command is one), written
 * in the transaction that stores the event (projection.ts), so it reads the same in every replica of Redis mode.
 * Read by commands/commands.ts and GET /api/devices/:id/commands/:cid.
 */
import type { CommandData, CommandState } from "../../protocol/events.ts";
import type { NewEvent } from "../transport.ts";
import type { Db } from "./db.ts";

export interface CommandView {
  id: string;
  deviceId: string;
  op: string;
  args: Record<string, unknown>;
  state: CommandState;
  createdAt: number;
  deliveredAt: number | null;
  ackedAt: number | null;
  error: string | null;
}

type Row = {
  id: string;
  device_id: string;
  op: string;
  args: string;
  state: CommandState;
  created_at: number;
  delivered_at: number | null;
  acked_at: number | null;
  error: string | null;
};

/** The states a command may move to from each state: forward only, so late or repeated changes cannot undo a final one. */
export const NEXT_STATES: Record<CommandState, readonly CommandState[]> = {
  queued: ["delivered", "acked", "failed"],
  delivered: ["acked", "failed"],
  acked: [],
  failed: [],
};

export class CommandTable {
  private readonly insert;
  private readonly select;
  private readonly setDelivered;
  private readonly setAcked;
  private readonly setFailed;

  constructor(db: Db) {
    this.insert = db.prepare<[string, string, string, string, number]>(
      "INSERT OR IGNORE INTO commands (id, device_id, op, args, state, created_at) VALUES (?, ?, ?, ?, 'queued', ?)",
    );
    this.select = db.prepare<[string], Row>("SELECT * FROM commands WHERE id = ?");
    this.setDelivered = db.prepare<[number, string, string]>(
      "UPDATE commands SET state = 'delivered', delivered_at = ? WHERE id = ? AND device_id = ? AND state = 'queued'",
    );
    this.setAcked = db.prepare<[number, string, string]>(
      "UPDATE commands SET state = 'acked', acked_at = ? WHERE id = ? AND device_id = ? AND state IN ('queued', 'delivered')",
    );
    this.setFailed = db.prepare<[number, string, string, string]>(
      "UPDATE commands SET state = 'failed', acked_at = ?, error = ? WHERE id = ? AND device_id = ? AND state IN ('queued', 'delivered')",
    );
  }

  /** Applies a stored `command` event; other kinds change nothing. */
  apply(event: NewEvent): void {
    if (event.kind !== "command") return;
    const c: CommandData = event.data;
    if (c.state === "queued") this.insert.run(c.commandId, c.deviceId, c.op, JSON.stringify(c.args ?? {}), c.at);
    else if (c.state === "delivered") this.setDelivered.run(c.at, c.commandId, c.deviceId);
    else if (c.state === "acked") this.setAcked.run(c.at, c.commandId, c.deviceId);
    else this.setFailed.run(c.at, c.error ?? "failed", c.commandId, c.deviceId);
  }

  get(id: string): CommandView | undefined {
    const row = this.select.get(id);
    if (!row) return undefined;
    return {
      id: row.id,
      deviceId: row.device_id,
      op: row.op,
      args: JSON.parse(row.args) as Record<string, unknown>,
      state: row.state,
      createdAt: row.created_at,
      deliveredAt: row.delivered_at,
      ackedAt: row.acked_at,
      error: row.error,
    };
  }
}
