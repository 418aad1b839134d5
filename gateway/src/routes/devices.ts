/** Device state, readings and commands (docs/protocol.md "REST"). */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Commands } from "../commands.ts";
import type { DeviceRegistry } from "../devices.ts";
import type { History } from "../history/types.ts";
import type { AppEnv, Principal } from "../http/env.ts";
import { jsonError } from "../http/errors.ts";
import { canRead } from "../middleware/auth/index.ts";
import { commandBodySchema, commandIdPattern, describeIssues } from "../schema.ts";
import { deviceTopic, isDeviceId } from "../topics.ts";

const MAX_LIMIT = 1000;

// A device is visible to a caller that may read its telemetry or its status.
const mayRead = (p: Principal, id: string): boolean =>
  canRead(p, deviceTopic(id, "telemetry")) || canRead(p, deviceTopic(id, "status"));

export function devicesRoute(deps: { devices: DeviceRegistry; history: History; commands: Commands }): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/", (c) => {
    const p = c.get("principal");
    return c.json({ devices: deps.devices.list().filter((d) => mayRead(p, d.deviceId)) });
  });

  app.use("/:id/*", async (c, next) => {
    const id = c.req.param("id");
    if (!isDeviceId(id)) return jsonError(c, 400, "invalid_device_id", "device ids match ^[A-Za-z0-9_-]{1,64}$");
    if (!mayRead(c.get("principal"), id)) return jsonError(c, 403, "forbidden", "the token may not read this device");
    await next();
  });

  app.get("/:id/readings", (c) => {
    const since = intParam(c.req.query("since"), 0);
    const from = intParam(c.req.query("from"), 0);
    const to = intParam(c.req.query("to"), Number.MAX_SAFE_INTEGER);
    const limit = intParam(c.req.query("limit"), 100);
    for (const [name, v] of [["since", since], ["from", from], ["to", to]] as const) {
      if (v === undefined || v < 0) return jsonError(c, 400, "invalid_query", `${name} must be a non-negative integer (ms)`);
    }
    if (limit === undefined || limit < 1 || limit > MAX_LIMIT) {
      return jsonError(c, 400, "invalid_query", `limit must be an integer in 1..${MAX_LIMIT}`);
    }
    const readings = deps.history.readings(c.req.param("id"), { since, from, to }, limit).map((e) => {
      const d = JSON.parse(e.data) as Record<string, unknown>;
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
    bodyLimit({ maxSize: 4096, onError: (c) => jsonError(c, 413, "body_too_large", "command bodies are at most 4096 bytes") }),
    async (c) => {
      if (!c.get("principal").write) return jsonError(c, 403, "forbidden", "the token may not send commands");
      let body: unknown;
      try {
        body = JSON.parse(await c.req.text());
      } catch {
        return jsonError(c, 400, "invalid_json", "the body must be JSON");
      }
      const parsed = commandBodySchema.safeParse(body);
      if (!parsed.success) return jsonError(c, 400, "invalid_command", describeIssues(parsed.error));
      const command = deps.commands.create(c.req.param("id"), parsed.data);
      return c.json({ id: command.id, state: command.state }, 202);
    },
  );

  app.get("/:id/commands/:cid", (c) => {
    const cid = c.req.param("cid");
    const command = commandIdPattern.test(cid) ? deps.commands.get(c.req.param("id"), cid) : undefined;
    if (!command) return jsonError(c, 404, "not_found", "no such command for this device");
    return c.json(command);
  });

  return app;
}

/** Parses an optional integer query parameter; undefined when present but not an integer. */
function intParam(raw: string | undefined, fallback: number): number | undefined {
  if (raw === undefined || raw === "") return fallback;
  return /^-?\d{1,15}$/.test(raw) ? Number(raw) : undefined;
}
