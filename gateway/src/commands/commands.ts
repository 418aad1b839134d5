/**
 * Commands to devices: persisted state machine queued → delivered → acked | failed.
 * queued: the broker accepted our QoS 1 publish (it holds it in the sleeping device's session);
 * delivered: the device's client acked the broker's delivery (embedded broker only);
 * acked / failed: the device's own CommandAck on sensors/{id}/cmd/ack.
 * Every change is stored and streamed as `event: command`.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { CommandData, CommandState } from "../protocol/events.ts";
import type { CommandAck, CommandBody } from "../protocol/payloads.ts";
import { deviceTopic } from "../protocol/topics.ts";
import type { Db } from "../transport/sqlite/db.ts";
import type { SqliteTransport } from "../transport/sqlite/transport.ts";


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

/** Publishes a QoS 1 message; resolves when the broker acknowledged it. */
export type PublishQos1 = (topic: string, payload: string) => Promise<void>;

/** Sortable, unguessable, within the protocol's COMMAND_ID_PATTERN. */
const newCommandId = (): string => `c-${Date.now().toString(36)}-${randomBytes(8).toString("hex")}`;

export class Commands {
  private readonly insert;
  private readonly select;
  private readonly setDelivered;
  private readonly setAcked;
  private readonly setFailed;

  /**
   * The command table lives in `db`, the database `transport` stores events in: each state change and its
   * `command` event commit together (transport.atomically), and the event reaches streams only after that.
   */
  constructor(
    db: Db,
    private readonly transport: SqliteTransport,
    private readonly publish: PublishQos1,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.insert = db.prepare<[string, string, string, string, number]>(
      "INSERT INTO commands (id, device_id, op, args, state, created_at) VALUES (?, ?, ?, ?, 'queued', ?)",
    );
    this.select = db.prepare<[string], Row>("SELECT * FROM commands WHERE id = ?");
    // Each transition only moves forward, so late or repeated signals cannot undo a final state.
    this.setDelivered = db.prepare<[number, string]>(
      "UPDATE commands SET state = 'delivered', delivered_at = ? WHERE id = ? AND state = 'queued'",
    );
    this.setAcked = db.prepare<[number, string, string]>(
      "UPDATE commands SET state = 'acked', acked_at = ? WHERE id = ? AND device_id = ? AND state IN ('queued', 'delivered')",
    );
    this.setFailed = db.prepare<[number, string, string, string]>(
      "UPDATE commands SET state = 'failed', acked_at = ?, error = ? WHERE id = ? AND device_id = ? AND state IN ('queued', 'delivered')",
    );
  }

  /**
   * Stores the command as queued and starts its QoS 1 publish on `sensors/{id}/cmd`. Returns at
   * once (HTTP 202): while the broker is unreachable mqtt.js holds the publish, and a failure
   * turns the command into `failed`.
   */
  create(deviceId: string, body: CommandBody): CommandView {
    const id = newCommandId();
    const { op, ...args } = body;
    const now = Date.now();
    this.transport.atomically(() => {
      this.insert.run(id, deviceId, op, JSON.stringify(args), now);
      this.emitState(deviceId, id, op, "queued", now);
    });
    this.publish(deviceTopic(deviceId, "cmd"), JSON.stringify({ id, ...body })).catch((e: unknown) => {
      this.log.warn({ err: (e as Error).message, deviceId, commandId: id }, "command publish failed");
      this.fail(deviceId, id, `publish failed: ${(e as Error).message}`);
    });
    return this.get(deviceId, id)!;
  }

  get(deviceId: string, id: string): CommandView | undefined {
    const row = this.select.get(id);
    if (!row || row.device_id !== deviceId) return undefined;
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

  /** The broker reports that a device's client acknowledged a message on its `cmd` topic. */
  markDelivered(deviceId: string, payload: Buffer | string): void {
    let id: unknown;
    try {
      id = (JSON.parse(payload.toString()) as { id?: unknown }).id;
    } catch {
      return; // not one of ours
    }
    if (typeof id !== "string") return;
    const now = Date.now();
    const row = this.select.get(id);
    if (!row || row.device_id !== deviceId) return;
    this.transport.atomically(() => {
      if (this.setDelivered.run(now, id).changes) this.emitState(deviceId, id, row.op, "delivered", now);
    });
  }

  /** A CommandAck from the device (already validated and streamed as `command-ack`). */
  handleAck(deviceId: string, ack: CommandAck, receivedAt: number): void {
    const row = this.select.get(ack.id);
    if (!row) return; // a command some other client sent: streamed, but not ours to track
    if (ack.ok) {
      this.transport.atomically(() => {
        if (this.setAcked.run(receivedAt, ack.id, deviceId).changes) this.emitState(deviceId, ack.id, row.op, "acked", receivedAt);
      });
    } else {
      this.fail(deviceId, ack.id, ack.error ?? "device refused the command", receivedAt);
    }
  }

  private fail(deviceId: string, id: string, error: string, at = Date.now()): void {
    const row = this.select.get(id);
    if (!row) return;
    this.transport.atomically(() => {
      if (this.setFailed.run(at, error, id, deviceId).changes) this.emitState(deviceId, id, row.op, "failed", at);
    });
  }

  /** Inside the caller's transaction: the event is stored with the state change. */
  private emitState(deviceId: string, commandId: string, op: string, state: CommandState, at: number): void {
    this.metrics.commands.inc({ state });
    const data: CommandData = { deviceId, commandId, op, state, at };
    this.transport.dispatchNow({ kind: "command", topic: deviceTopic(deviceId, "cmd"), deviceId, receivedAt: at, data });
  }
}
