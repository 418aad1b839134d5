/**
 * Commands to devices: persisted state machine queued → delivered → acked | failed.
 * queued: the broker accepted our QoS 1 publish (it holds it in the sleeping device's session);
 * delivered: the device's client acked the broker's delivery (embedded broker only);
 * acked / failed: the device's own CommandAck on sensors/{id}/cmd/ack.
 * Every change is one `command` event; the command table is derived from those events in the transaction that
 * stores them (transport/sqlite/commands.ts), so every gateway of Redis mode answers the same.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { CommandData, CommandState } from "../protocol/events.ts";
import type { CommandAck, CommandBody } from "../protocol/payloads.ts";
import { deviceTopic } from "../protocol/topics.ts";
import { NEXT_STATES, type CommandView } from "../transport/sqlite/commands.ts";
import { ErrAppliedLate, type Transport } from "../transport/transport.ts";

export type { CommandView } from "../transport/sqlite/commands.ts";

/** Publishes a QoS 1 message; resolves when the broker acknowledged it. */
export type PublishQos1 = (topic: string, payload: string) => Promise<void>;

/** Where commands are stored: a transport whose replica keeps the command table. */
export interface CommandStore {
  dispatch: Transport["dispatch"];
  command(id: string): CommandView | undefined;
}

/** A command that could not be stored (the store is failing or shutting down): HTTP 503, nothing was sent. */
export class ErrStoreUnavailable extends Error {
  readonly code = "store_unavailable";
  constructor(cause: Error) {
    super(`the command could not be stored, nothing was sent: ${cause.message}`);
    this.name = "ErrStoreUnavailable";
  }
}

/** Sortable, unguessable, within the protocol's COMMAND_ID_PATTERN. */
const newCommandId = (): string => `c-${Date.now().toString(36)}-${randomBytes(8).toString("hex")}`;

export class Commands {
  constructor(
    private readonly store: CommandStore,
    private readonly publish: PublishQos1,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /**
   * Stores the command as queued and starts its QoS 1 publish on `sensors/{id}/cmd`. Resolves once it is stored
   * (HTTP 202): while the broker is unreachable mqtt.js holds the publish, and a failure turns the command into
   * `failed`. Rejects with ErrStoreUnavailable when the command could not be stored (nothing is sent).
   */
  async create(deviceId: string, body: CommandBody): Promise<{ id: string; state: CommandState }> {
    const id = newCommandId();
    const { op, ...args } = body;
    try {
      await this.change(deviceId, id, op, "queued", Date.now(), { args });
    } catch (err) {
      // stored, only not yet on this replica (Redis mode): it is queued for every gateway, so it is sent
      if (!(err instanceof ErrAppliedLate)) throw new ErrStoreUnavailable(err as Error);
    }
    this.publish(deviceTopic(deviceId, "cmd"), JSON.stringify({ id, ...body })).catch((e: unknown) => {
      this.log.warn({ err: (e as Error).message, deviceId, commandId: id }, "command publish failed");
      this.fail(deviceId, id, `publish failed: ${(e as Error).message}`).catch((err: unknown) =>
        this.log.warn({ err: (err as Error).message, deviceId, commandId: id }, "cannot record the failed publish"),
      );
    });
    return { id, state: "queued" };
  }

  get(deviceId: string, id: string): CommandView | undefined {
    const command = this.store.command(id);
    return command?.deviceId === deviceId ? command : undefined;
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
    this.moveTo(deviceId, id, "delivered", Date.now()).catch((e: unknown) =>
      this.log.warn({ err: (e as Error).message, deviceId, commandId: id }, "cannot record command delivery"),
    );
  }

  /** A CommandAck from the device (already validated and streamed as `command-ack`). */
  async handleAck(deviceId: string, ack: CommandAck, receivedAt: number): Promise<void> {
    if (ack.ok) await this.moveTo(deviceId, ack.id, "acked", receivedAt);
    else await this.fail(deviceId, ack.id, ack.error ?? "device refused the command", receivedAt);
  }

  private fail(deviceId: string, id: string, error: string, at = Date.now()): Promise<void> {
    return this.moveTo(deviceId, id, "failed", at, { error });
  }

  /** A command some other client sent (unknown here) is streamed but not ours to track; a change only moves forward. */
  private async moveTo(deviceId: string, id: string, state: CommandState, at: number, extra: Partial<CommandData> = {}): Promise<void> {
    const command = this.get(deviceId, id);
    if (!command || !NEXT_STATES[command.state].includes(state)) return;
    await this.change(deviceId, id, command.op, state, at, extra);
  }

  private async change(deviceId: string, commandId: string, op: string, state: CommandState, at: number, extra: Partial<CommandData>): Promise<void> {
    const data: CommandData = { deviceId, commandId, op, state, at, ...extra };
    // In Redis mode every gateway receives the device's ack and tries this change: the first one stores it.
    const stored = await this.store.dispatch({ kind: "command", topic: deviceTopic(deviceId, "cmd"), deviceId, receivedAt: at, data, dedupeKey: `${commandId}/${state}` });
    if (stored) this.metrics.commands.inc({ state });
  }
}
