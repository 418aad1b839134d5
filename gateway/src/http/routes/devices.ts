/** Device state, names, readings, series and commands (docs/protocol.md "REST", "Summaries", "Device names"). */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ErrStoreUnavailable, type Commands } from "../../commands/commands.ts";
import type { TelemetryData } from "../../protocol/events.ts";
import { COMMAND_ID_PATTERN, DEVICE_ID_RULE, isDeviceId } from "../../protocol/ids.ts";
import { commandBodySchema, describeIssues } from "../../protocol/payloads.ts";
import { deviceTopic, gatewayEventTopic } from "../../protocol/topics.ts";
import { ErrTooManyPoints, querySeries, SERIES_STEPS, type Coverage, type SeriesStep, type SummaryQueries } from "../../summaries/series.ts";
import type { Transport } from "../../transport/transport.ts";
import { canRead } from "../auth.ts";
import type { AppEnv, Principal } from "../env.ts";
import { ApiError } from "../errors.ts";

const MAX_LIMIT = 1000;

// A device is visible to a caller that may read its telemetry or its status.
const mayRead = (p: Principal, id: string): boolean =>
  canRead(p, deviceTopic(id, "telemetry")) || canRead(p, deviceTopic(id, "status"));

export interface DevicesRouteDeps {
  transport: Transport;
  commands: Commands;
  summaries: SummaryQueries;
  coverage: Coverage;
  /**
   * Forgets a device: its state, its retained status on the broker, and what the gateway published about it
   * (Home Assistant entities, MQTT alerts): devices/forget-device.ts. False: no such device. Throws when the
   * broker did not acknowledge a removal (nothing was deleted).
   */
  forgetDevice: (deviceId: string) => Promise<boolean>;
}

const MAX_NAME = 64;
const DAY_MS = 24 * 3600_000;

export function devicesRoute(deps: DevicesRouteDeps): Hono<AppEnv> {
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

  // Readings and their series are telemetry: the status topic alone does not open them.
  const requireTelemetryRead = (p: Principal, id: string) => {
    if (!canRead(p, deviceTopic(id, "telemetry"))) throw new ApiError(403, "forbidden", "the token may not read this device's telemetry");
  };

  app.get("/:id/readings", (c) => {
    requireTelemetryRead(c.get("principal"), c.req.param("id"));
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

  app.get("/:id/series", (c) => {
    requireTelemetryRead(c.get("principal"), c.req.param("id"));
    const metric = c.req.query("metric") ?? "";
    if (!/^[a-z][a-zA-Z0-9_]{0,31}$/.test(metric)) throw new ApiError(400, "invalid_query", "metric must be a reading key, e.g. temperature or battery");
    const step = c.req.query("step") ?? "auto";
    if (step !== "auto" && !(SERIES_STEPS as readonly string[]).includes(step)) {
      throw new ApiError(400, "invalid_query", `step must be auto, ${SERIES_STEPS.join(", ")}`);
    }
    const now = Date.now();
    const to = intParam(c.req.query("to"), now);
    const from = intParam(c.req.query("from"), (to ?? now) - DAY_MS);
    if (to === undefined || from === undefined || from < 0 || to < from) {
      throw new ApiError(400, "invalid_query", "from and to are times in ms with from ≤ to");
    }
    try {
      return c.json(querySeries(deps.summaries, { deviceId: c.req.param("id"), metric, from, to, step: step as SeriesStep | "auto" }, deps.coverage, now));
    } catch (e) {
      if (e instanceof ErrTooManyPoints) throw new ApiError(400, e.code, e.message);
      throw e;
    }
  });

  app.patch(
    "/:id",
    bodyLimit({
      maxSize: 1024,
      onError: () => {
        throw new ApiError(413, "body_too_large", "device bodies are at most 1024 bytes");
      },
    }),
    async (c) => {
      const id = c.req.param("id");
      if (!isDeviceId(id)) throw new ApiError(400, "invalid_device_id", `device ids are ${DEVICE_ID_RULE}`);
      const p = c.get("principal");
      if (!mayRead(p, id)) throw new ApiError(403, "forbidden", "the token may not read this device");
      if (!p.write) throw new ApiError(403, "forbidden", "the token may not change devices");
      let body: unknown;
      try {
        body = JSON.parse(await c.req.text());
      } catch {
        throw new ApiError(400, "invalid_json", "the body must be JSON");
      }
      const unknown = typeof body === "object" && body !== null ? Object.keys(body).filter((k) => k !== "name" && k !== "location") : [];
      if (unknown.length) throw new ApiError(400, "invalid_device", `unknown field ${unknown.join(", ")}: a device has a name and a location`);
      const name = textField(body, "name");
      const location = textField(body, "location");
      const device = deps.transport.device(id);
      if (!device) throw new ApiError(404, "not_found", "no such device (it has not reported yet)");
      const at = Date.now();
      const topic = gatewayEventTopic(id, "device");
      const data = { deviceId: id, topic, name: name === undefined ? device.name : name, location: location === undefined ? device.location : location, at };
      await deps.transport.dispatch({ kind: "device", topic, deviceId: id, receivedAt: at, data });
      return c.json(deps.transport.device(id));
    },
  );

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    if (!isDeviceId(id)) throw new ApiError(400, "invalid_device_id", `device ids are ${DEVICE_ID_RULE}`);
    const p = c.get("principal");
    if (!mayRead(p, id)) throw new ApiError(403, "forbidden", "the token may not read this device");
    if (!p.write) throw new ApiError(403, "forbidden", "the token may not change devices");
    let forgotten: boolean;
    try {
      forgotten = await deps.forgetDevice(id);
    } catch (e) {
      throw new ApiError(503, "broker_unavailable", `the broker did not acknowledge the removal of the device's retained messages, nothing was deleted: ${(e as Error).message}`);
    }
    if (!forgotten) throw new ApiError(404, "not_found", "no such device");
    return c.body(null, 204);
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
      const command = await deps.commands.create(c.req.param("id"), parsed.data).catch((e: unknown) => {
        throw e instanceof ErrStoreUnavailable ? new ApiError(503, e.code, e.message) : e;
      });
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

/** A name or location from a PATCH body: undefined when absent (kept), null for null or "" (cleared), else trimmed text. */
function textField(body: unknown, key: "name" | "location"): string | null | undefined {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new ApiError(400, "invalid_device", "the body must be an object with name and/or location");
  if (!(key in body)) return undefined;
  const v = (body as Record<string, unknown>)[key];
  if (v === null) return null;
  if (typeof v !== "string") throw new ApiError(400, "invalid_device", `${key} must be a string or null`);
  const text = v.trim();
  if (text.length > MAX_NAME) throw new ApiError(400, "invalid_device", `${key} is at most ${MAX_NAME} characters`);
  if (/[\u0000-\u001f\u007f]/.test(text)) throw new ApiError(400, "invalid_device", `${key} must not contain control characters`);
  return text === "" ? null : text;
}

/** Parses an optional integer query parameter; undefined when present but not an integer. */
function intParam(raw: string | undefined, fallback: number): number | undefined {
  if (raw === undefined || raw === "") return fallback;
  return /^-?\d{1,15}$/.test(raw) ? Number(raw) : undefined;
}
