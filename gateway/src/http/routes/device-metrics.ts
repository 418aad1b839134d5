/**
 * GET /api/metrics/devices: the per-device gauges (ops/device-metrics.ts) for Prometheus, behind the API's
 * token auth like every reading (Prometheus: `authorization: { credentials_file: … }`), and only of the devices
 * whose telemetry the token may read.
 */
import { Hono } from "hono";
import { deviceTopic } from "../../protocol/topics.ts";
import { renderDeviceMetrics, type DeviceMetricsLimits } from "../../ops/device-metrics.ts";
import type { Transport } from "../../transport/transport.ts";
import { canRead } from "../auth.ts";
import type { AppEnv } from "../env.ts";

export function deviceMetricsRoute(deps: { transport: Transport; limits: DeviceMetricsLimits }): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/", async (c) => {
    const p = c.get("principal");
    const devices = deps.transport.devices().filter((d) => canRead(p, deviceTopic(d.deviceId, "telemetry")));
    const { body, contentType } = await renderDeviceMetrics(devices, deps.limits);
    return c.body(body, 200, { "Content-Type": contentType });
  });
  return app;
}
