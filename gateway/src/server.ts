/**
 * The gateway's only Node entry point: `npm run gateway` (node gateway/dist/server.js, built by
 * `npm run build:gateway`), `npm run gateway -- --workers N` for N processes behind nginx (supervisor/).
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
import type { AdminToken } from "./http/auth.ts";
import { loopbackFor } from "./http/listener.ts";
import { createLogger, type Logger } from "./ops/log.ts";
import { ErrBadArgs, parseServerArgs, USAGE, type ServerArgs } from "./supervisor/args.ts";

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
  if (e instanceof ErrBadConfig || e instanceof ErrBadArgs) {
    process.stderr.write(e instanceof ErrBadArgs ? `${e.message}\n${USAGE}\n` : `${e.message}\n`);
    process.exit(2);
  }
  throw e;
}

/**
 * SIGTERM/SIGINT → `stop` (once `ready` set it), then exit with its code. A second signal → `now` (the user wants
 * out). Installed first thing in main(): a signal during start-up exits at once (nothing to shut down yet).
 * A --workers worker has an IPC channel to its supervisor, which closes when the supervisor dies (even by
 * SIGKILL, even while this worker is still starting): the worker then stops instead of living on, orphaned.
 */
function onStopSignals(log: Logger): { ready(stop: (signal: NodeJS.Signals) => Promise<number>, now?: () => Promise<number>): void } {
  let stop: ((signal: NodeJS.Signals) => Promise<number>) | undefined;
  let now: (() => Promise<number>) | undefined;
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (!stop) process.exit(1);
    if (stopping) {
      if (!now) process.exit(1);
      log.warn({ signal }, "second stop signal: killing now");
      now().then((code) => process.exit(code), () => process.exit(1));
      return;
    }
    stopping = true;
    log.info({ signal }, "shutdown requested");
    stop(signal).then(
      (code) => process.exit(code),
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", handle);
  process.on("SIGINT", handle);
  // process.send stays defined when started with a channel; process.channel is gone once it closed
  const supervised = typeof process.send === "function";
  if (supervised) {
    process.channel?.unref();
    process.once("disconnect", () => {
      if (!stopping) handle("SIGTERM");
    });
    if (!process.connected) handle("SIGTERM"); // closed before this listener existed (while modules loaded)
  }
  return {
    ready(s, n) {
      stop = s;
      now = n;
      if (supervised && !process.connected && !stopping) handle("SIGTERM"); // gone while we started
    },
  };
}

async function supervise(
  config: GatewayConfig,
  args: Extract<ServerArgs, { mode: "workers" }>,
  log: Logger,
  signals: ReturnType<typeof onStopSignals>,
): Promise<void> {
  // Loaded only in supervisor mode: it brings the embedded broker (aedes), which a worker does not need.
  const { runWorkers } = await import("./supervisor/run-workers.ts");
  const running = await runWorkers(config, {
    workers: args.workers,
    basePort: args.basePort,
    // The same entry point without --workers; execArgv keeps a loader (tsx) when run from source.
    command: process.execPath,
    args: [...process.execArgv, process.argv[1]],
    log: log.child({ part: "supervisor" }),
  }).catch(exitOnBadConfig);
  const urls = dashboardUrls(config, running.sharedPort);
  process.stdout.write(
    `Dashboard: ${urls.join("  ")}  (balanced over ${args.workers} gateway worker(s), their own ports ${running.ports[0]}..${running.ports.at(-1)})\n` +
      (running.broker ? `MQTT broker: mqtt://${loopbackFor(config.mqtt.host)}:${running.broker.port}\n` : "") +
      (running.adminToken ? loginLines(urls, running.adminToken) : "") +
      `For TLS or gateways on several machines, nginx: npm run -s nginx-config -- --workers ${args.workers} --base-port ${running.ports[0]}\n`,
  );
  signals.ready(running.stop, running.kill);
  process.exit(await running.finished);
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
  let args: ServerArgs;
  let config: GatewayConfig;
  try {
    args = parseServerArgs(process.argv.slice(2));
    config = loadConfig();
  } catch (e) {
    exitOnBadConfig(e);
  }
  const log = createLogger(config.logLevel);
  const signals = onStopSignals(log);
  if (args.mode === "workers") return supervise(config, args, log, signals);

  // Loaded here, not at the top: a supervisor (--workers) runs no gateway itself (no SQLite, no bridge, no SSE).
  const { startGateway } = await import("./gateway.ts");
  // A --workers worker (worker-plan.ts sets GATEWAY_WORKER) also serves the supervisor's shared port, which the
  // supervisor prints with the login URL: N workers printing their own would only say where not to go.
  const worker = process.env.GATEWAY_WORKER !== undefined && typeof process.send === "function";
  const gateway = await startGateway(config, { logger: log, processMetrics: true, ...(worker && { supervisor: process }) }).catch(exitOnBadConfig);
  if (worker) return signals.ready(() => gateway.close().then(() => 0));
  const urls = dashboardUrls(config, gateway.port);
  process.stdout.write(
    `Dashboard: ${urls.join("  ")}\nMQTT broker: ${(gateway.broker ? Object.values(gateway.broker.urls) : (config.mqtt.url ?? [])).join("  ")}\n` +
      (gateway.adminToken ? loginLines(urls, gateway.adminToken) : ""),
  );
  signals.ready(() => gateway.close().then(() => 0));
}

main().catch((err: unknown) => {
  process.stderr.write(`gateway failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
