/**
 * The gateway's HTTP app (Hono). It speaks Request/Response only and never listens: server.ts
 * (through gateway.ts) binds it to a port, and tests may call `app.request()` directly.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { serveStatic } from "@hono/node-server/serve-static";
import type { HttpBindings } from "@hono/node-server";
import { Hono } from "hono";
import type { Alerts } from "../alerts/alerts.ts";
import type { Commands } from "../commands/commands.ts";
import type { Logger } from "../ops/log.ts";
import type { DeviceMetricsLimits } from "../ops/device-metrics.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Coverage, SummaryQueries } from "../summaries/series.ts";
import type { Transport } from "../transport/transport.ts";
import { createAuthenticator, loginFromUrl, sameOriginWrites, sessionRoutes, type HttpAuth } from "./auth.ts";
import type { AppEnv } from "./env.ts";
import { errorHandlers } from "./errors.ts";
import { alertsRoutes } from "./routes/alerts.ts";
import { deviceMetricsRoute } from "./routes/device-metrics.ts";
import { devicesRoute } from "./routes/devices.ts";
import { eventsRoute } from "./routes/events.ts";
import { opsRoutes, type HealthProbe } from "./routes/ops.ts";
import { summariesRoutes, type SummaryExport } from "./routes/summaries.ts";

/** The dashboard bundle built by gateway/web/build.ts. */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL("../../web/dist/", import.meta.url));

export interface AppDeps {
  /** Open, or every accepted token (gateway.ts adds the admin token: http/auth.ts resolveAuth). */
  auth: HttpAuth;
  transport: Transport;
  commands: Commands;
  summaries: SummaryQueries & SummaryExport;
  /** How far back raw readings and each bucket width go (series step=auto). */
  coverage: Coverage;
  /** Alerts and rules, shared by every gateway in Redis mode (alerts/alerts.ts). */
  alerts: Alerts;
  /** DELETE /api/devices/:id (routes/devices.ts). */
  forgetDevice: (deviceId: string) => Promise<boolean>;
  metrics: Metrics;
  /** Bounds of GET /api/metrics/devices (config `metrics`). */
  deviceMetrics: DeviceMetricsLimits;
  health: HealthProbe;
  log: Logger;
  /** Directory served at `/`; default DEFAULT_WEB_ROOT. */
  webRoot?: string;
  /**
   * This process's name among several behind nginx (`<hostname>:<port>`), sent as X-Gateway-Instance on every
   * response: which worker served a stream, for operators and tests. Undefined (no header) until listening.
   */
  instance?: () => string | undefined;
}

const PLACEHOLDER = `<!doctype html><meta charset="utf-8"><title>Sensors</title>
<p>The dashboard is not built (run <code>npm run build</code>). Raw stream below.</p><pre id="log"></pre>
<script>const es=new EventSource("/events");
for(const k of ["telemetry","status","command-ack","command","summary","alert","device","reset"])es.addEventListener(k,e=>{log.textContent=k+" "+e.data+"\\n"+log.textContent})</script>`;

export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authn = createAuthenticator(deps.auth);

  if (deps.instance) {
    const instance = deps.instance;
    app.use("*", async (c, next) => {
      const name = instance();
      if (name) {
        c.header("X-Gateway-Instance", name);
        // also on Node's response itself: GET /events writes its headers there, past Hono (routes/events.ts)
        (c.env as Partial<HttpBindings> | undefined)?.outgoing?.setHeader("X-Gateway-Instance", name);
      }
      await next();
    });
  }
  // First, for every route and every auth mode: no state-changing request from another origin.
  app.use("*", sameOriginWrites());
  app.route("/", opsRoutes({ health: deps.health, metrics: deps.metrics }));
  // Log in and out: before the API's auth middleware (POST and DELETE need no valid token).
  app.route("/api/session", sessionRoutes(authn));
  app.use("/events", authn.middleware);
  app.use("/api/*", authn.middleware);
  app.route("/events", eventsRoute(deps.transport));
  app.route("/api/devices", devicesRoute(deps));
  app.route("/api/metrics/devices", deviceMetricsRoute({ transport: deps.transport, limits: deps.deviceMetrics }));
  app.route("/api", summariesRoutes(deps));
  app.route("/api", alertsRoutes(deps.alerts));

  // The page itself is public so it can show a login form; its data needs a token. The login URL
  // (`/?token=…`) turns into the cookie here, before the static files.
  const login = loginFromUrl(authn);
  app.get("/", login);
  app.get("/index.html", login);
  const webRoot = deps.webRoot ?? DEFAULT_WEB_ROOT;
  if (existsSync(`${webRoot}/index.html`)) app.use("/*", serveStatic({ root: webRoot }));
  else app.get("/", (c) => c.html(PLACEHOLDER));

  const errors = errorHandlers((code) => deps.metrics.httpRejected.inc({ code }), deps.log);
  app.notFound(errors.notFound);
  app.onError(errors.onError);
  return app;
}
