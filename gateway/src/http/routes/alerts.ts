/** Alerts and alert rules (docs/protocol.md "Alerts"). */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Alerts } from "../../alerts/alerts.ts";
import { ErrInvalidRule } from "../../alerts/rules.ts";
import type { AlertData } from "../../protocol/events.ts";
import { isDeviceId } from "../../protocol/ids.ts";
import { gatewayEventTopic } from "../../protocol/topics.ts";
import { canRead } from "../auth.ts";
import type { AppEnv, Principal } from "../env.ts";
import { ApiError } from "../errors.ts";

const MAX_LIMIT = 1000;
const STATES = ["firing", "resolved", "all"] as const;

const mayRead = (p: Principal, a: AlertData): boolean => canRead(p, gatewayEventTopic(a.deviceId, "alert"));

function requireWrite(p: Principal): void {
  if (!p.write) throw new ApiError(403, "forbidden", "the token may not change alerts or rules");
}

export function alertsRoutes(alerts: Alerts): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/alerts", (c) => {
    const state = c.req.query("state") ?? "firing";
    if (!(STATES as readonly string[]).includes(state)) throw new ApiError(400, "invalid_query", `state must be ${STATES.join(", ")}`);
    const device = c.req.query("device");
    if (device !== undefined && !isDeviceId(device)) throw new ApiError(400, "invalid_device_id", "device must be a device id");
    const rawLimit = c.req.query("limit") ?? "200";
    const limit = /^\d{1,4}$/.test(rawLimit) ? Number(rawLimit) : 0;
    if (limit < 1 || limit > MAX_LIMIT) throw new ApiError(400, "invalid_query", `limit must be an integer in 1..${MAX_LIMIT}`);
    const p = c.get("principal");
    const query = { state: state as (typeof STATES)[number], deviceId: device, limit };
    // the token's read filters apply before the limit: page back until enough alerts it may see are found
    const list: AlertData[] = [];
    for (let beforeId: number | undefined; list.length < limit; ) {
      const page = alerts.list({ ...query, beforeId });
      list.push(...page.filter((a) => mayRead(p, a)).slice(0, limit - list.length));
      if (page.length < limit) break;
      beforeId = page[page.length - 1]!.alertId;
    }
    return c.json({ alerts: list });
  });

  app.post("/alerts/:id/ack", async (c) => {
    const raw = c.req.param("id");
    const alert = /^\d{1,15}$/.test(raw) ? alerts.get(Number(raw)) : undefined;
    const p = c.get("principal");
    if (!alert || !mayRead(p, alert)) throw new ApiError(404, "not_found", "no such alert");
    requireWrite(p);
    return c.json({ alert: await alerts.ack(alert.alertId, p.name) });
  });

  app.get("/alert-rules", async (c) => c.json({ rules: await alerts.rules() }));

  app.put(
    "/alert-rules/:id",
    bodyLimit({
      maxSize: 4096,
      onError: () => {
        throw new ApiError(413, "body_too_large", "rule bodies are at most 4096 bytes");
      },
    }),
    async (c) => {
      requireWrite(c.get("principal"));
      let body: unknown;
      try {
        body = JSON.parse(await c.req.text());
      } catch {
        throw new ApiError(400, "invalid_json", "the body must be JSON");
      }
      try {
        return c.json({ rule: await alerts.putRule(c.req.param("id"), body) });
      } catch (e) {
        if (e instanceof ErrInvalidRule) throw new ApiError(400, e.code, e.message);
        throw e;
      }
    },
  );

  app.delete("/alert-rules/:id", async (c) => {
    requireWrite(c.get("principal"));
    const { deleted, rule } = await alerts.deleteRule(c.req.param("id"));
    if (!deleted) throw new ApiError(404, "not_found", "no rule of that id was set through the API");
    return c.json({ rule });
  });

  return app;
}
