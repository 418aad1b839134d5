/**
 * The gateway's only Node entry point: `npm run gateway` (tsx gateway/src/server.ts).
 * Configuration: env (PORT, HOST, MQTT_PORT, MQTT_HOST, MQTT_URL, DATA_DIR, ...; see config.ts)
 * and an optional JSON file named by GATEWAY_CONFIG. Bad config → one line per problem, exit 2.
 * SIGTERM/SIGINT → graceful shutdown, exit 0.
 *
 * With token auth and the admin token (the default) it prints a login URL, `http(s)://<host>:<port>/?token=…`, for
 * the person at the console, as Jupyter does: a plain line on stdout, written here and only here, never
 * through the logger (the JSON log lines stay free of secrets).
 */
import { networkInterfaces } from "node:os";
import { ErrBadConfig, loadConfig, type GatewayConfig } from "./config.ts";
import { startGateway } from "./gateway.ts";
import type { AdminToken } from "./http/auth.ts";
import { createLogger } from "./ops/log.ts";

function dashboardUrls(config: GatewayConfig, port: number): string[] {
  const scheme = config.tls ? "https" : "http";
  if (config.host !== "0.0.0.0" && config.host !== "::") {
    const host = config.host.includes(":") && !config.host.startsWith("[") ? `[${config.host}]` : config.host;
    return [`${scheme}://${host}:${port}/`];
  }
  const lan = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === "IPv4" && !a.internal)
    .map((a) => `${scheme}://${a!.address}:${port}/`);
  return [`${scheme}://127.0.0.1:${port}/`, ...lan];
}

function exitOnBadConfig(e: unknown): never {
  if (e instanceof ErrBadConfig) {
    process.stderr.write(`${e.message}\n`);
    process.exit(2);
  }
  throw e;
}

/** The console's login lines; the token is URL-safe (base64url) unless someone wrote their own into the file. */
function loginLines(urls: string[], admin: AdminToken): string {
  const q = `?token=${encodeURIComponent(admin.token)}`;
  return (
    `Log in with the admin token (kept in ${admin.file}; delete it and restart to rotate it):\n` +
    urls.map((u) => `    ${u}${q}\n`).join("")
  );
}

async function main(): Promise<void> {
  let config: GatewayConfig;
  try {
    config = loadConfig();
  } catch (e) {
    exitOnBadConfig(e);
  }
  const log = createLogger(config.logLevel);
  const gateway = await startGateway(config, { logger: log, processMetrics: true }).catch(exitOnBadConfig);
  const urls = dashboardUrls(config, gateway.port);
  process.stdout.write(
    `Dashboard: ${urls.join("  ")}\nMQTT broker: ${Object.values(gateway.broker?.urls ?? { mqtt: gateway.mqttUrl }).join("  ")}\n` +
      (gateway.adminToken ? loginLines(urls, gateway.adminToken) : ""),
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(1); // a second signal: the user wants out now
    stopping = true;
    log.info({ signal }, "shutdown requested");
    gateway.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((err: unknown) => {
  process.stderr.write(`gateway failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
