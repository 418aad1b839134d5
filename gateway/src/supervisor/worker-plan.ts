/**
 * What makes worker i of `--workers N` its own gateway: the environment it starts with, over the supervisor's
 * own (so GATEWAY_CONFIG and every other variable apply to all workers alike; env beats the config file).
 * - PORT: base + i (consecutive, so nginx's upstream list is predictable: hardware/pi/nginx);
 * - DATA_DIR: `<dataDir>/worker-<i>`, its own SQLite replica (two processes must not share one database file);
 * - MQTT_CLIENT_ID: `<clientId>-<i>`, its own persistent MQTT session (one id per connection, or the broker
 *   would kick one worker off each time another connects);
 * - ADMIN_TOKEN_FILE: the supervisor's `<dataDir>/admin-token`, so one admin token works on every worker;
 * - MQTT_URL (+ login) when the supervisor runs the embedded broker for them;
 * - GATEWAY_WORKER: i, which makes the gateway take the shared port's connections from its IPC channel
 *   (handoff.ts) and leave the console's login lines to the supervisor.
 */
import { resolve, join } from "node:path";
import type { GatewayConfig } from "../config.ts";

export interface WorkerPlan {
  index: number;
  port: number;
  dataDir: string;
  /** Variables set over the supervisor's environment. */
  env: Record<string, string>;
}

export interface SharedWorkerSettings {
  basePort: number;
  /** The admin token file every worker reads; undefined when auth is open or the admin token is off. */
  adminTokenFile: string | undefined;
  /** The broker the workers connect to, when the supervisor runs the embedded one. */
  broker?: { url: string; username: string; password: string };
}

export function planWorkers(config: GatewayConfig, count: number, shared: SharedWorkerSettings): WorkerPlan[] {
  const root = resolve(config.dataDir);
  return Array.from({ length: count }, (_, index) => {
    const port = shared.basePort + index;
    const dataDir = join(root, `worker-${index}`);
    const env: Record<string, string> = {
      PORT: String(port),
      DATA_DIR: dataDir,
      MQTT_CLIENT_ID: `${config.mqtt.clientId}-${index}`,
      GATEWAY_WORKER: String(index),
    };
    if (shared.adminTokenFile !== undefined) env.ADMIN_TOKEN_FILE = shared.adminTokenFile;
    if (shared.broker) {
      env.MQTT_URL = shared.broker.url;
      env.MQTT_USERNAME = shared.broker.username;
      env.MQTT_PASSWORD = shared.broker.password;
    }
    return { index, port, dataDir, env };
  });
}
