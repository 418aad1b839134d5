/** Device state, readings and commands (docs/protocol.md "REST"). */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Commands } from "../../commands/commands.ts";
import type { TelemetryData } from "../../protocol/events.ts";
import { COMMAND_ID_PATTERN, DEVICE_ID_RULE, isDeviceId } from "../../protocol/ids.ts";
import { commandBodySchema, describeIssues } from "../../protocol/payloads.ts";
import { deviceTopic } from "../../protocol/topics.ts";
import type { Transport } from "../../transport/transport.ts";
import { canRead } from "../auth.ts";
import type { AppEnv, Principal } from "../env.ts";
import { ApiError } from "../errors.ts";

const MAX_LIMIT = 1000;

// A device is visible to a caller that may read its telemetry or its status.
const mayRead = (p: Principal, id: string): boolean =>
  canRead(p, deviceTopic(id, "telemetry")) || canRead(p, deviceTopic(id, "status"));

export function devicesRoute(deps: { transport: Transport; commands: Commands }): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/", (c) => {
    const p = c.get("principal");
    return c.json({ devices: deps.transport.devices().filter((d) => mayRead(p, d.deviceId)) });
  });

  app.use("/:id/*", async (c, next) => {
    const id = c.req.param("id");
    if (!isDeviceId(id)) throw new ApiError(400, "invalid_device_id", `device ids are ${DEVICE_ID_RULE}`);
    if (!mayRead(c.get("principal"), id)) throw new ApiError(403, "forbidden", "the token may not read this device");
    await next();
  });

  app.get("/:id/readings", (c) => {
    const since = intParam(c.req.query("since"), 0);
    const from = intParam(c.req.query("from"), 0);
    const to = intParam(c.req.query("to"), Number.MAX_SAFE_INTEGER);
    const limit = intParam(c.req.query("limit"), 100);
    for (const [name, v] of [["since", since], ["from", from], ["to", to]] as const) {
      if (v === undefined || v < 0) throw new ApiError(400, "invalid_query", `${name} must be a non-negative integer (ms)`);
    }
    if (limit === undefined || limit < 1 || limit > MAX_LIMIT) {
      throw new ApiError(400, "invalid_query", `limit must be an integer in 1..${MAX_LIMIT}`);
    }
    const readings = deps.transport.readings(c.req.param("id"), { since, from, to }, limit).map((e) => {
      const d = JSON.parse(e.data) as TelemetryData;
      return {
        eventId: e.id,
        seq: d.seq,
        boot: d.boot,
        t: d.t,
        age: d.age,
        timeSource: d.timeSource,
        receivedAt: d.receivedAt,
        readings: d.readings,
        battery: d.battery,
      };
    });
    return c.json({ readings });
  });

  app.post(
    "/:id/commands",
    bodyLimit({
      maxSize: 4096,
      onError: () => {
        throw new ApiError(413, "body_too_large", "command bodies are at most 4096 bytes");
      },
    }),
    async (c) => {
      if (!c.get("principal").write) throw new ApiError(403, "forbidden", "the token may not send commands");
      let body: unknown;
      try {
        body = JSON.parse(await c.req.text());
      } catch {
        throw new ApiError(400, "invalid_json", "the body must be JSON");
      }
      const parsed = commandBodySchema.safeParse(body);
      if (!parsed.success) throw new ApiError(400, "invalid_command", describeIssues(parsed.error));
      const command = deps.commands.create(c.req.param("id"), parsed.data);
      return c.json({ id: command.id, state: command.state }, 202);
    },
  );

  app.get("/:id/commands/:cid", (c) => {
    const cid = c.req.param("cid");
    const command = COMMAND_ID_PATTERN.test(cid) ? deps.commands.get(c.req.param("id"), cid) : undefined;
    if (!command) throw new ApiError(404, "not_found", "no such command for this device");
    return c.json(command);
  });

  return app;
}

/** Parses an optional integer query parameter; undefined when present but not an integer. */
function intParam(raw: string | undefined, fallback: number): number | undefined {
  if (raw === undefined || raw === "") return fallback;
  return /^-?\d{1,15}$/.test(raw) ? Number(raw) : undefined;
}
