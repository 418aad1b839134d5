/**
 * The gateway's only Node entry point: `npm run gateway` (tsx gateway/src/server.ts).
 * Configuration: env (PORT, HOST, MQTT_PORT, MQTT_HOST, MQTT_URL, DATA_DIR, ...; see config.ts)
 * and an optional JSON file named by GATEWAY_CONFIG. Bad config → one line per problem, exit 2.
 * SIGTERM/SIGINT → graceful shutdown, exit 0.
 */
import { networkInterfaces } from "node:os";
import { ErrBadConfig, loadConfig, type GatewayConfig } from "./config.ts";
import { startGateway } from "./gateway.ts";
import { createLogger } from "./log.ts";

function dashboardUrls(config: GatewayConfig, port: number): string[] {
  if (config.host !== "0.0.0.0" && config.host !== "::") return [`http://${config.host}:${port}/`];
  const lan = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === "IPv4" && !a.internal)
    .map((a) => `http://${a!.address}:${port}/`);
  return [`http://127.0.0.1:${port}/`, ...lan];
}

async function main(): Promise<void> {
  let config: GatewayConfig;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ErrBadConfig) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(config.logLevel);
  const gateway = await startGateway(config, { logger: log, processMetrics: true });
  process.stdout.write(`Dashboard: ${dashboardUrls(config, gateway.port).join("  ")}\nMQTT broker: ${gateway.mqttUrl}\n`);

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
