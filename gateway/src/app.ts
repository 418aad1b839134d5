/**
 * The gateway's HTTP app (Hono). It speaks Request/Response only and never listens: server.ts
 * (through gateway.ts) binds it to a port, and tests may call `app.request()` directly.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { serveStatic } from "@hono/node-server/serve-static";
import { Hono } from "hono";
import type { Commands } from "./commands.ts";
import type { AuthConfig } from "./config.ts";
import type { DeviceRegistry } from "./devices.ts";
import type { History } from "./history/types.ts";
import type { AppEnv } from "./http/env.ts";
import { jsonError } from "./http/errors.ts";
import type { Hub } from "./hub/hub.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { auth } from "./middleware/auth/index.ts";
import { devicesRoute } from "./routes/devices.ts";
import { eventsRoute } from "./routes/events.ts";
import { opsRoutes, type HealthProbe } from "./routes/ops.ts";

/** The dashboard bundle built by gateway/web/build.ts. */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL("../web/dist/", import.meta.url));

export interface AppDeps {
  auth: AuthConfig;
  hub: Hub;
  history: History;
  devices: DeviceRegistry;
  commands: Commands;
  metrics: Metrics;
  health: HealthProbe;
  log: Logger;
  /** Directory served at `/`; default DEFAULT_WEB_ROOT. */
  webRoot?: string;
}

const PLACEHOLDER = `<!doctype html><meta charset="utf-8"><title>Sensors</title>
<p>The dashboard is not built (run <code>npm run build</code>). Raw stream below.</p><pre id="log"></pre>
<script>const es=new EventSource("/events");
for(const k of ["telemetry","status","command-ack","command","reset"])es.addEventListener(k,e=>{log.textContent=k+" "+e.data+"\\n"+log.textContent})</script>`;

export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticate = auth(deps.auth);

  app.route("/", opsRoutes({ health: deps.health, metrics: deps.metrics }));
  app.use("/events", authenticate);
  app.use("/api/*", authenticate);
  app.route("/events", eventsRoute(deps.hub));
  app.route("/api/devices", devicesRoute(deps));

  // The page itself is public so it can show a login form; its data needs a token.
  const webRoot = deps.webRoot ?? DEFAULT_WEB_ROOT;
  if (existsSync(`${webRoot}/index.html`)) app.use("/*", serveStatic({ root: webRoot }));
  else app.get("/", (c) => c.html(PLACEHOLDER));

  app.notFound((c) => {
    deps.metrics.httpRejected.inc({ code: "not_found" });
    return jsonError(c, 404, "not_found", `no route for ${c.req.method} ${c.req.path}`);
  });
  app.onError((err, c) => {
    deps.log.error({ err, path: c.req.path }, "request failed");
    deps.metrics.httpRejected.inc({ code: "internal" });
    return jsonError(c, 500, "internal", "internal error");
  });
  return app;
}
