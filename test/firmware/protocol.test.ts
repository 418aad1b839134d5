/** The firmware's protocol module (plain TS shared with Node) against docs/protocol.md. */
import { describe, expect, test } from "vitest";
import {
  commandAckPayload,
  offlinePayload,
  onlinePayload,
  parseCommand,
  sleepingPayload,
  telemetryPayload,
} from "../../devs/src/protocol/messages.ts";
import { commandAckTopic, commandTopic, isValidDeviceId, statusTopic, telemetryTopic } from "../../devs/src/protocol/topics.ts";

describe("firmware protocol module", () => {
  test("topics", () => {
    expect(telemetryTopic("d1")).toBe("sensors/d1/telemetry");
    expect(statusTopic("d1")).toBe("sensors/d1/status");
    expect(commandTopic("d1")).toBe("sensors/d1/cmd");
    expect(commandAckTopic("d1")).toBe("sensors/d1/cmd/ack");
  });

  test("device ids: ^[A-Za-z0-9_-]{1,64}$", () => {
    expect(isValidDeviceId("abc_D-9")).toBe(true);
    expect(isValidDeviceId("x".repeat(64))).toBe(true);
    expect(isValidDeviceId("x".repeat(65))).toBe(false);
    expect(isValidDeviceId("")).toBe(false);
    for (const bad of ["a/b", "a+b", "a#", "a b", "é"]) expect(isValidDeviceId(bad), bad).toBe(false);
  });

  test("payloads have the documented shape", () => {
    const t = JSON.parse(
      telemetryPayload({
        seq: 42,
        boot: 7,
        takenAt: 1_000,
        readings: { temperature: 21.4, humidity: 40.2 },
        battery: null,
        dropped: 0,
        corrupt: 0,
      }, 3_601_000),
    );
    expect(t).toEqual({
      v: 1,
      seq: 42,
      boot: 7,
      t: null,
      age: 3_600_000,
      readings: { temperature: 21.4, humidity: 40.2 },
      battery: null,
      dropped: 0,
      corrupt: 0,
    });
    expect(JSON.parse(onlinePayload(7))).toEqual({ v: 1, state: "online", boot: 7 });
    expect(JSON.parse(sleepingPayload(7, 60000))).toEqual({ v: 1, state: "sleeping", sleepMs: 60000, boot: 7 });
    expect(JSON.parse(offlinePayload())).toEqual({ v: 1, state: "offline" });
    expect(JSON.parse(commandAckPayload("c-1", "ping"))).toEqual({ v: 1, id: "c-1", op: "ping", ok: true });
    expect(JSON.parse(commandAckPayload("c-1", "bogus", "unknown op"))).toEqual({
      v: 1,
      id: "c-1",
      op: "bogus",
      ok: false,
      error: "unknown op",
    });
  });

  test("commands: valid ones parse, invalid ones say why", () => {
    expect(parseCommand({ id: "c-1", op: "set-interval", seconds: 300 })).toEqual({
      command: { id: "c-1", op: "set-interval", seconds: 300 },
    });
    expect(parseCommand({ id: "c-2", op: "stay-awake", seconds: 60 }).command?.seconds).toBe(60);
    expect(parseCommand({ id: "c-3", op: "ping" }).command?.op).toBe("ping");
    expect(parseCommand({ id: "c-4", op: "reboot" }).command?.op).toBe("reboot");
    expect(parseCommand({ id: "c-5", op: "set-interval", seconds: 4 }).error).toMatch(/5\.\.86400/);
    expect(parseCommand({ id: "c-5", op: "set-interval", seconds: 86401 }).error).toMatch(/5\.\.86400/);
    expect(parseCommand({ id: "c-6", op: "stay-awake", seconds: 3601 }).error).toMatch(/1\.\.3600/);
    expect(parseCommand({ id: "c-6", op: "stay-awake", seconds: 1.5 }).error).toMatch(/integer/);
    expect(parseCommand({ id: "c-7", op: "bogus" })).toEqual({ id: "c-7", op: "bogus", error: "unknown op" });
    expect(parseCommand({ op: "ping" }).error).toBe("invalid id");
    expect(parseCommand({ id: "bad id!", op: "ping" }).error).toBe("invalid id");
    expect(parseCommand({ id: "x".repeat(41), op: "ping" }).error).toBe("invalid id");
    expect(parseCommand(null).error).toBe("not an object");
    expect(parseCommand("ping").error).toBe("not an object");
    expect(parseCommand({ id: "c-8" }).error).toBe("missing op");
  });
});
