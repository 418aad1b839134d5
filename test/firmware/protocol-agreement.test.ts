/**
 * The firmware keeps a DeviceScript copy of the protocol (devs/src/protocol/); the Node side has one owner,
 * gateway/src/protocol/. The DeviceScript compiler cannot import the Node module (zod, regex literals the
 * VM lacks), so this suite proves the two agree on every rule they share: ids, topics, command ranges and
 * payload shapes. A rule changed on one side only fails here.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import {
  commandAckPayload,
  offlinePayload,
  onlinePayload,
  parseCommand,
  sleepingPayload,
  telemetryPayload,
} from "../../devs/src/protocol/messages.ts";
import * as firmware from "../../devs/src/protocol/topics.ts";
import { COMMAND_ID_PATTERN, DEVICE_ID_PATTERN, isDeviceId } from "../../gateway/src/protocol/ids.ts";
import { COMMAND_SECONDS, commandAckSchema, commandBodySchema, statusSchema, telemetrySchema } from "../../gateway/src/protocol/payloads.ts";
import { deviceTopic } from "../../gateway/src/protocol/topics.ts";

const ROOT = join(import.meta.dirname, "../..");

/** Every printable ASCII character, some non-ASCII, and the length limits of both id kinds. */
function candidateIds(): string[] {
  const out = ["", "a", "A-z_09", "x".repeat(40), "x".repeat(41), "x".repeat(64), "x".repeat(65), "é", "ab\u0000", "a\u200bb"];
  for (let c = 0; c < 128; c++) out.push(String.fromCharCode(c), `ok${String.fromCharCode(c)}ok`);
  return out;
}

describe("firmware and gateway protocol modules agree", () => {
  test("device ids: the same verdict on every candidate", () => {
    for (const id of candidateIds()) expect(firmware.isValidDeviceId(id), JSON.stringify(id)).toBe(isDeviceId(id));
  });

  test("command ids: the firmware acks exactly the ids the gateway may assign", () => {
    for (const id of candidateIds()) {
      const accepted = parseCommand({ id, op: "ping" }).command !== undefined;
      expect(accepted, JSON.stringify(id)).toBe(COMMAND_ID_PATTERN.test(id));
    }
  });

  test("topics: the same strings", () => {
    for (const id of ["d1", "kitchen-sensor_2", "x".repeat(64)]) {
      expect(firmware.telemetryTopic(id)).toBe(deviceTopic(id, "telemetry"));
      expect(firmware.statusTopic(id)).toBe(deviceTopic(id, "status"));
      expect(firmware.commandTopic(id)).toBe(deviceTopic(id, "cmd"));
      expect(firmware.commandAckTopic(id)).toBe(deviceTopic(id, "cmd/ack"));
    }
  });

  test("command value ranges: the firmware runs exactly what the API accepts", () => {
    for (const [op, { min, max }] of Object.entries(COMMAND_SECONDS)) {
      for (const seconds of [min - 1, min, min + 0.5, Math.floor((min + max) / 2), max, max + 1, -1, 0, Number.MAX_SAFE_INTEGER]) {
        const api = commandBodySchema.safeParse({ op, seconds }).success;
        const device = parseCommand({ id: "c-1", op, seconds }).command !== undefined;
        expect(device, `${op} ${seconds}`).toBe(api);
      }
      expect(parseCommand({ id: "c-1", op, seconds: "60" }).command).toBeUndefined();
      expect(commandBodySchema.safeParse({ op, seconds: "60" }).success).toBe(false);
    }
    for (const op of ["ping", "reboot"]) {
      expect(parseCommand({ id: "c-1", op }).command).toBeDefined();
      expect(commandBodySchema.safeParse({ op }).success).toBe(true);
    }
    expect(parseCommand({ id: "c-1", op: "format-flash" }).command).toBeUndefined();
    expect(commandBodySchema.safeParse({ op: "format-flash" }).success).toBe(false);
  });

  test("every payload the firmware builds passes the gateway's schema", () => {
    const reading = { seq: 7, boot: 3, readings: { temperature: 21.5, humidity: 40 }, battery: 3.71, dropped: 2, corrupt: 1 };
    for (const takenAt of [null, 0, 5_000]) {
      const parsed = telemetrySchema.safeParse(JSON.parse(telemetryPayload({ ...reading, takenAt }, 10_000)));
      expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
    }
    for (const payload of [
      onlinePayload(3),
      sleepingPayload(3, 60_000),
      sleepingPayload(3, 60_000, { times: { wifi: 3_400, mqtt: 120 }, rejected: 1, deferred: 0, battery: 3.6, lowBattery: false }),
      offlinePayload(),
    ]) {
      const parsed = statusSchema.safeParse(JSON.parse(payload));
      expect(parsed.success, `${payload}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
    }
    for (const payload of [commandAckPayload("c-1", "ping"), commandAckPayload("c-1", "set-interval", "seconds must be an integer 5..86400")]) {
      expect(commandAckSchema.safeParse(JSON.parse(payload)).success, payload).toBe(true);
    }
  });

  test("the firmware's settings message states the same device-id rule", () => {
    const settings = readFileSync(join(ROOT, "devs/src/settings.ts"), "utf8");
    expect(settings).toContain(DEVICE_ID_PATTERN.source);
  });
});
