/**
 * `server.js --workers N`: N gateway processes on one machine (hardware/pi/README.md section 9). Browsers use
 * PORT as with one process: the supervisor accepts there and hands each connection to a worker (handoff.ts).
 * Each worker also listens on its own port, base..base+N-1 (default PORT+1..), for nginx and health checks.
 *
 * Broker: with `mqtt.url` set every worker connects to that broker. Without it the supervisor itself runs the
 * embedded broker (one listener on mqtt.host:mqtt.port, its state in `<dataDir>/broker.sqlite`) and the workers
 * connect to it over loopback with its service login, as to an external broker: N embedded brokers cannot
 * share one port, and devices need one address.
 *
 * The embedded broker here is the workers' external broker: plain MQTT only (no mqtts/ws/wss listeners, no
 * broker counters in /metrics, commands are never "delivered", only "queued" then acked, as with Mosquitto), so those options are refused; use
 * Mosquitto for them. TLS is nginx's job in front of the workers (they are its http:// upstreams).
 *
 * Workers run in Redis mode (config.redis: REDIS_URL or the config file, which they inherit): without it each
 * worker would hold only the events it received itself, and a browser would see a different history on each.
 */
import { loadAdminToken, ADMIN_TOKEN_FILE, type AdminToken } from "../http/auth.ts";
import { loopbackFor } from "../http/listener.ts";
import { startEmbeddedBroker, type EmbeddedBroker } from "../broker/index.ts";
import type { GatewayConfig } from "../config.ts";
import type { Logger } from "../ops/log.ts";
import { join, resolve } from "node:path";
import { ErrBadArgs } from "./args.ts";
import { SharedPort } from "./handoff.ts";
import { Supervisor, type RestartPolicy } from "./supervisor.ts";
import { planWorkers } from "./worker-plan.ts";

export interface RunWorkersOptions {
  workers: number;
  basePort: number | undefined;
  /** How to start one gateway: node + this same server.js (or tsx + server.ts in development). */
  command: string;
  args: string[];
  log: Logger;
  policy?: Partial<RestartPolicy>;
}

export interface RunningWorkers {
  broker: EmbeddedBroker | undefined;
  /** Where browsers connect (PORT), balanced over the workers. */
  sharedPort: number;
  /** Each worker's own port, for nginx. */
  ports: number[];
  /** The admin token every worker accepts, when token auth with the admin token is on. */
  adminToken: AdminToken | undefined;
  /** Resolves with the exit code for the process once every worker has exited and the broker is closed. */
  finished: Promise<number>;
  /** Passes `signal` to the workers; resolves like `finished`. */
  stop(signal: NodeJS.Signals): Promise<number>;
  /** SIGKILLs the workers now; resolves like `finished`. */
  kill(): Promise<number>;
}

export async function runWorkers(config: GatewayConfig, opts: RunWorkersOptions): Promise<RunningWorkers> {
  if (opts.basePort === undefined && config.port === 0) {
    throw new ErrBadArgs("--workers with PORT=0 (a random shared port): give the workers' ports with --base-port P");
  }
  const basePort = opts.basePort ?? config.port + 1;
  checkWorkerConfig(config, opts.workers, basePort);

  // Created (or read) once here, before any worker starts: N workers creating it at once would still agree
  // (loadAdminToken links atomically), but a bad file is better reported once, by the supervisor.
  const adminToken =
    config.auth.mode === "tokens" && config.auth.adminToken
      ? loadAdminToken(config.dataDir, resolve(config.auth.adminTokenFile ?? join(config.dataDir, ADMIN_TOKEN_FILE)))
      : undefined;
  const adminTokenFile = adminToken?.file;

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
  const plans = planWorkers(config, opts.workers, {
    basePort,
    adminTokenFile,
    broker: broker && { url: `mqtt://${loopbackFor(config.mqtt.host)}:${broker.port}`, ...broker.serviceCredentials },
  });
  let shared: SharedPort;
  try {
    shared = await SharedPort.open({ host: config.host, port: config.port, log: opts.log.child({ part: "shared-port" }) });
  } catch (err) {
    await broker?.close();
    throw err;
  }
  const supervisor = new Supervisor({
    command: opts.command,
    args: opts.args,
    plans,
    log: opts.log,
    policy: opts.policy,
    onSpawn: (child) => shared.adopt(child),
    onStopping: () => void shared.close(), // no new connections while the workers drain theirs
  });
  supervisor.start();
  opts.log.info(
    { workers: opts.workers, sharedPort: shared.port, ports: plans.map((p) => p.port), broker: broker ? `embedded on port ${broker.port}` : config.mqtt.url },
    "supervisor running",
  );

  // Also when the pool ends by itself (a worker refused its config): the broker closes after the last worker.
  const finished = supervisor.exited.then(async ({ code }) => {
    await Promise.all([shared.close(), broker?.close()]);
    return code;
  });
  const stop = (signal: NodeJS.Signals) => {
    supervisor.stop(signal);
    return finished;
  };
  const kill = () => {
    supervisor.kill();
    return finished;
  };
  return { broker, sharedPort: shared.port, ports: plans.map((p) => p.port), adminToken, finished, stop, kill };
}

/** What N workers behind nginx cannot do, refused before anything starts (ErrBadArgs: exit 2). */
function checkWorkerConfig(config: GatewayConfig, workers: number, basePort: number): void {
  const problems: string[] = [];
  if (!config.redis) {
    problems.push(
      `--workers ${workers} needs Redis: set REDIS_URL (e.g. redis://:PASSWORD@127.0.0.1:6379). The workers share ` +
        "history and live events through it; without it each would see only part of the devices' events",
    );
  }
  if (basePort === 0) problems.push("--workers needs fixed worker ports: --base-port 0 would pick random ones");
  const lastPort = basePort + workers - 1;
  if (lastPort > 65535) problems.push(`--base-port ${basePort} + ${workers} workers goes past port 65535`);
  if (config.port >= basePort && config.port <= lastPort) {
    problems.push(`--workers: the shared port ${config.port} (PORT) is inside the workers' ports ${basePort}..${lastPort} (--base-port)`);
  }
  if (config.tls) {
    problems.push("--workers: terminate TLS in nginx (hardware/pi/nginx), not in each worker (TLS_CERT/TLS_KEY): nginx reaches the workers over http://");
  }
  if (!config.mqtt.url) {
    if (config.mqtt.wsPort !== undefined) problems.push("--workers: the supervisor's broker serves plain MQTT only; for MQTT over WebSockets (MQTT_WS_PORT) use Mosquitto (MQTT_URL)");
    if (config.mqtt.port !== 0 && config.mqtt.port >= basePort && config.mqtt.port <= lastPort) {
      problems.push(`--workers: the broker's port ${config.mqtt.port} (MQTT_PORT) is inside the workers' ports ${basePort}..${lastPort}`);
    }
    if (config.mqtt.port === config.port) problems.push(`--workers: the broker and the shared HTTP port are both ${config.port} (MQTT_PORT, PORT)`);
  }
  if (problems.length) throw new ErrBadArgs(problems.join("\n"));
}
