/**
 * The alerts table as the apply step derives it from `alert` events (alerts.ts): ids from the firing event,
 * forward-only changes (an ack made from a stale copy cannot undo a resolution), and the event carrying what
 * the table stored. Through a real SqliteTransport on a temp database.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createMetrics } from "../../ops/metrics.ts";
import type { AlertData } from "../../protocol/events.ts";
import { gatewayEventTopic } from "../../protocol/topics.ts";
import { telemetry } from "../contract.ts";
import { openDatabase } from "./db.ts";
import { SqliteTransport } from "./transport.ts";

const dirs: string[] = [];
const transports: SqliteTransport[] = [];
afterEach(async () => {
  for (const t of transports.splice(0)) await t.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function open(): SqliteTransport {
  const dir = mkdtempSync(join(tmpdir(), "alerts-table-"));
  dirs.push(dir);
  const transport = new SqliteTransport(
    openDatabase(dir),
    {
      retention: { maxEvents: 1_000_000, maxAgeMs: 3600_000 * 24 * 365 },
      summaryRetention: { "1m": 0, "1h": 0, "1d": 0 },
      sse: { heartbeatMs: 15_000, retryMs: 2_000, maxQueueEvents: 1000, maxQueueBytes: 1 << 20, replayPageSize: 100 },
    },
    createMetrics(),
    pino({ level: "silent" }),
  );
  transports.push(transport);
  return transport;
}

const firing = (deviceId: string, at: number): AlertData => ({
  alertId: 0, ruleId: "battery-low", ruleName: "Battery low", kind: "battery", severity: "warning", deviceId,
  topic: `sensors/${deviceId}/telemetry`, metric: "battery", state: "firing", message: "battery 3.1 below 3.4 V",
  value: 3.1, threshold: 3.4, firedAt: at, resolvedAt: null, ackedAt: null, ackedBy: null, updatedAt: at,
});

async function put(transport: SqliteTransport, alert: AlertData, at: number): Promise<AlertData> {
  const topic = gatewayEventTopic(alert.deviceId, "alert");
  const stored = await transport.dispatch({ kind: "alert", topic, deviceId: alert.deviceId, receivedAt: at, data: alert });
  return JSON.parse(stored!.data) as AlertData;
}

describe("alerts table (projection of alert events)", () => {
  it("a new alert takes the id of the event that fired it; the event and the row say the same", async () => {
    const transport = open();
    await transport.dispatch(telemetry("d", 1));
    const stored = await put(transport, firing("d", 1_000), 1_000);
    expect(stored.alertId).toBe(2);
    expect(transport.alertTable.get(2)).toEqual(stored);
    expect(transport.alertTable.firing()).toEqual([stored]);
  });

  it("a stale ack after a resolution keeps it resolved, with the ack; the second ack keeps the first", async () => {
    const transport = open();
    const fired = await put(transport, firing("d", 1_000), 1_000);
    const resolved = await put(transport, { ...fired, state: "resolved", resolvedAt: 2_000, updatedAt: 2_000 }, 2_000);
    // another gateway acked from its copy, still firing, before it applied the resolution
    const acked = await put(transport, { ...fired, ackedAt: 1_500, ackedBy: "ops", updatedAt: 1_500 }, 1_500);
    expect(acked).toEqual({ ...resolved, ackedAt: 1_500, ackedBy: "ops" });
    expect(transport.alertTable.get(fired.alertId)).toEqual(acked);
    const second = await put(transport, { ...acked, ackedAt: 3_000, ackedBy: "viewer", updatedAt: 3_000 }, 3_000);
    expect(second).toMatchObject({ state: "resolved", ackedAt: 1_500, ackedBy: "ops", updatedAt: 3_000 });
  });

  it("a second firing alert of one rule and device (overlapping leaders) is not a row, and applying goes on", async () => {
    const transport = open();
    const first = await put(transport, firing("d", 1_000), 1_000);
    const second = await put(transport, firing("d", 1_100), 1_100);
    expect(second.alertId).not.toBe(first.alertId);
    expect(transport.alertTable.get(second.alertId)).toBeUndefined();
    expect(transport.alertTable.firing()).toEqual([first]);
    expect(await transport.dispatch(telemetry("d", 1))).toBeDefined();
  });

  it("forgetDevice() is a `device` event that removes the row; the device's next reading starts afresh", async () => {
    const transport = open();
    await transport.dispatch(telemetry("d", 1));
    expect(await transport.forgetDevice("d")).toBe(true);
    expect(transport.device("d")).toBeUndefined();
    expect(await transport.forgetDevice("d")).toBe(false);
    await transport.dispatch(telemetry("d", 2));
    expect(transport.device("d")).toMatchObject({ lastReading: { seq: 2 } });
  });
});
