/**
 * The payloads of docs/protocol.md as zod schemas: device payloads from MQTT and command bodies from HTTP.
 * Everything that crosses the gateway's edges is validated here before any side effect. The firmware's
 * DeviceScript copy is devs/src/protocol/messages.ts (test/firmware/protocol-agreement.test.ts).
 */
import { z } from "zod";
import { COMMAND_SECONDS } from "./commands.ts";
import { COMMAND_ID_PATTERN } from "./ids.ts";

export { COMMAND_SECONDS } from "./commands.ts";

export const MAX_PAYLOAD_BYTES = 1024;

const u32 = z.number().int().min(0).max(0xffff_ffff);
const finite = z.number().finite();
const readingKey = /^[a-z][a-zA-Z0-9_]{0,31}$/;

/** Upper bound of telemetry `age`: 400 days in ms (beyond any outbox's life; keeps receivedAt - age sane). */
export const MAX_AGE_MS = 400 * 24 * 3600_000;

export const telemetrySchema = z.object({
  v: z.literal(1),
  seq: u32,
  boot: u32,
  t: z.number().int().min(0).nullable(),
  /** ms between taking the reading and building this PUBLISH, on the device's clock (see reading-time.ts). */
  age: z.number().int().min(0).max(MAX_AGE_MS).optional(),
  readings: z
    .record(z.string().regex(readingKey, "reading key must match ^[a-z][a-zA-Z0-9_]{0,31}$"), finite)
    .refine((r) => Object.keys(r).length <= 16, "at most 16 readings"),
  battery: finite.nullable(),
  dropped: u32.optional(),
  corrupt: u32.optional(),
});
export type Telemetry = z.infer<typeof telemetrySchema>;

export const statusSchema = z.discriminatedUnion("state", [
  z.object({ v: z.literal(1), state: z.literal("online"), boot: u32.optional() }),
  z.object({ v: z.literal(1), state: z.literal("sleeping"), sleepMs: u32, boot: u32.optional() }),
  z.object({ v: z.literal(1), state: z.literal("offline") }),
]);
export type Status = z.infer<typeof statusSchema>;

export const commandAckSchema = z.object({
  v: z.literal(1),
  id: z.string().regex(COMMAND_ID_PATTERN),
  op: z.string().max(40),
  ok: z.boolean(),
  error: z.string().max(200).optional(),
});
export type CommandAck = z.infer<typeof commandAckSchema>;

const seconds = (op: keyof typeof COMMAND_SECONDS) =>
  z.number().int().min(COMMAND_SECONDS[op].min).max(COMMAND_SECONDS[op].max);

/** Body of POST /api/devices/:id/commands: the command without its id (the gateway assigns it). */
export const commandBodySchema = z.discriminatedUnion("op", [
  z.strictObject({ op: z.literal("set-interval"), seconds: seconds("set-interval") }),
  z.strictObject({ op: z.literal("stay-awake"), seconds: seconds("stay-awake") }),
  z.strictObject({ op: z.literal("ping") }),
  z.strictObject({ op: z.literal("reboot") }),
]);
export type CommandBody = z.infer<typeof commandBodySchema>;

/** One-line description of a zod failure, for logs and JSON errors. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

export type PayloadRejection = "too_large" | "not_json" | "bad_shape";

/** Parses a device payload: size limit, UTF-8 JSON, then shape. Never throws. */
export function parsePayload<T>(
  schema: z.ZodType<T>,
  payload: Buffer,
): { ok: true; value: T } | { ok: false; reason: PayloadRejection; detail: string } {
  if (payload.length > MAX_PAYLOAD_BYTES) {
    return { ok: false, reason: "too_large", detail: `${payload.length} bytes > ${MAX_PAYLOAD_BYTES}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch (e) {
    return { ok: false, reason: "not_json", detail: (e as Error).message };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) return { ok: false, reason: "bad_shape", detail: describeIssues(parsed.error) };
  return { ok: true, value: parsed.data };
}
