/**
 * `server.js --workers N`: N gateway processes on one machine behind nginx (hardware/pi/README.md).
 *
 * Broker: with `mqtt.url` set every worker connects to that broker. Without it the supervisor itself runs the
 * embedded broker (one listener on mqtt.host:mqtt.port, its state in `<dataDir>/broker.sqlite`) and the workers
 * connect to it over loopback with its service login, as to an external broker: N embedded brokers cannot
 * share one port, and devices need one address.
 *
 * Workers share their state through Redis (transport), so a Redis URL is required: without it each worker
 * would hold only the events it received itself, and a browser would see a different history on each.
 */
import { loadAdminToken, ADMIN_TOKEN_FILE } from "../http/auth.ts";
import { startEmbeddedBroker, type EmbeddedBroker } from "../broker/index.ts";
import type { GatewayConfig } from "../config.ts";
import type { Logger } from "../ops/log.ts";
import { join, resolve } from "node:path";
import { ErrBadArgs } from "./args.ts";
import { Supervisor, type RestartPolicy } from "./supervisor.ts";
import { planWorkers } from "./worker-plan.ts";

export interface RunWorkersOptions {
  workers: number;
  basePort: number | undefined;
  /** The shared-state URL; workers refuse to start without one (see above). */
  redisUrl: string | undefined;
  /** How to start one gateway: node + this same server.js (or tsx + server.ts in development). */
  command: string;
  args: string[];
  log: Logger;
  policy?: Partial<RestartPolicy>;
}

export interface RunningWorkers {
  supervisor: Supervisor;
  broker: EmbeddedBroker | undefined;
  ports: number[];
  /** Resolves with the exit code for the process once every worker has exited and the broker is closed. */
  finished: Promise<number>;
  /** Passes `signal` to the workers; resolves like `finished`. */
  stop(signal: NodeJS.Signals): Promise<number>;
}

export async function runWorkers(config: GatewayConfig, opts: RunWorkersOptions): Promise<RunningWorkers> {
  if (!opts.redisUrl) {
    throw new ErrBadArgs(
      `--workers ${opts.workers} needs Redis: set REDIS_URL (e.g. redis://:PASSWORD@127.0.0.1:6379). The workers share ` +
        "history and live events through it; without it each would see only part of the devices' events",
    );
  }
  const basePort = opts.basePort ?? config.port;
  if (basePort === 0) throw new ErrBadArgs("--workers needs fixed ports: set PORT or --base-port (port 0 picks a random one)");
  if (basePort + opts.workers - 1 > 65535) throw new ErrBadArgs(`--base-port ${basePort} + ${opts.workers} workers goes past port 65535`);

  // Created (or read) once here, before any worker starts: N workers creating it at once would still agree
  // (loadAdminToken links atomically), but a bad file is better reported once, by the supervisor.
  const adminTokenFile =
    config.auth.mode === "tokens" && config.auth.adminToken
      ? loadAdminToken(config.dataDir, resolve(config.auth.adminTokenFile ?? join(config.dataDir, ADMIN_TOKEN_FILE))).file
      : undefined;

  let broker: EmbeddedBroker | undefined;
  if (!config.mqtt.url) {
    broker = await startEmbeddedBroker({
      host: config.mqtt.host,
      port: config.mqtt.port,
      dataDir: config.dataDir,
      auth: config.broker.auth,
      logger: opts.log.child({ part: "broker" }),
    });
  }
  const loopback = config.mqtt.host === "0.0.0.0" || config.mqtt.host === "::" ? "127.0.0.1" : config.mqtt.host;
  const plans = planWorkers(config, opts.workers, {
    basePort,
    adminTokenFile,
    broker: broker && { url: `mqtt://${loopback.includes(":") ? `[${loopback}]` : loopback}:${broker.port}`, ...broker.serviceCredentials },
  });
  const supervisor = new Supervisor({ command: opts.command, args: opts.args, plans, log: opts.log, policy: opts.policy });
  supervisor.start();
  opts.log.info(
    { workers: opts.workers, ports: plans.map((p) => p.port), broker: broker ? `embedded on port ${broker.port}` : config.mqtt.url },
    "supervisor running",
  );

  // Also when the pool ends by itself (a worker refused its config): the broker closes after the last worker.
  const finished = supervisor.exited.then(async ({ code }) => {
    await broker?.close();
    return code;
  });
  const stop = (signal: NodeJS.Signals) => {
    supervisor.stop(signal);
    return finished;
  };
  return { supervisor, broker, ports: plans.map((p) => p.port), finished, stop };
}
