/** /healthz and /metrics: unauthenticated, for supervisors and Prometheus on the Pi. */
import { Hono } from "hono";
import type { Metrics } from "../../ops/metrics.ts";
import type { AppEnv } from "../env.ts";

export interface HealthProbe {
  broker(): boolean;
  db(): boolean;
  /** Redis mode only: the shared log answers and this gateway may write to it. */
  redis?(): boolean;
  /**
   * The outbound publisher's connection (Home Assistant, MQTT alerts), when one runs. Reported, but not part of
   * `ok`: without it the gateway still stores and streams everything, and DELETE /api/devices answers 503.
   */
  publisher?(): boolean;
}

export function opsRoutes(deps: { health: HealthProbe; metrics: Metrics }): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/healthz", (c) => {
    const broker = safe(deps.health.broker) ? "up" : "down";
    const db = safe(deps.health.db) ? "up" : "down";
    const redis = deps.health.redis && (safe(deps.health.redis) ? "up" : "down");
    const ok = broker === "up" && db === "up" && redis !== "down";
    const publisher = deps.health.publisher ? { publisher: safe(deps.health.publisher) ? "up" : "down" } : {};
    return c.json({ ok, broker, db, ...(redis && { redis }), ...publisher }, ok ? 200 : 503);
  });
  app.get("/metrics", async (c) => {
    const body = await deps.metrics.registry.metrics();
    return c.body(body, 200, { "Content-Type": deps.metrics.registry.contentType });
  });
  return app;
}

function safe(probe: () => boolean): boolean {
  try {
    return probe();
  } catch {
    return false;
  }
}
