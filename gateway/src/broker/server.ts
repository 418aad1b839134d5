/**
 * One embedded broker alone, without the gateway: `npm run broker` (node gateway/dist/broker/server.js, built by
 * `npm run build:gateway`). With `broker.store: "redis"` (BROKER_STORE=redis) and `redis.url` (REDIS_URL) it is
 * one node of several on that Redis (nodes.ts): run it on two ports or machines, give devices both addresses
 * (MQTT_HOSTS) and gateways all of them (mqtt.url, a list). Same configuration as the gateway (config.ts: env and
 * GATEWAY_CONFIG); it uses host/port/wsPort of `mqtt`, `dataDir` (device credentials), `broker`, `redis`,
 * `tls` (mqtts on mqtt.tlsPort). Bad config → one line per problem, exit 2. SIGTERM/SIGINT → close, exit 0.
 */
import { ErrBadConfig, loadConfig, type GatewayConfig } from "../config.ts";
import { createLogger } from "../ops/log.ts";
import { loadTlsCredentials } from "../tls/credentials.ts";
import { brokerNodeOptions } from "./nodes.ts";
import { startEmbeddedBroker } from "./embedded.ts";

let config: GatewayConfig;
try {
  config = loadConfig();
} catch (e) {
  if (!(e instanceof ErrBadConfig)) throw e;
  process.stderr.write(`${e.message}\n`);
  process.exit(2);
}
const log = createLogger(config.logLevel).child({ part: "broker" });
const tls = config.tls ? loadTlsCredentials(config.tls) : undefined;
const broker = await startEmbeddedBroker({
  host: config.mqtt.host,
  port: config.mqtt.port,
  tls,
  tlsPort: tls ? config.mqtt.tlsPort : undefined,
  wsPort: config.mqtt.wsPort,
  wssPort: tls ? config.mqtt.wssPort : undefined,
  dataDir: config.dataDir,
  auth: config.broker.auth,
  ...brokerNodeOptions(config),
  logger: log,
});
// A plain line for whoever starts it (and for tests waiting on the port): the URLs, never a credential.
process.stdout.write(`Broker node ${broker.aedes.id} on ${Object.values(broker.urls).join(" ")}\n`);

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    broker.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "broker close failed");
        process.exit(1);
      },
    );
  });
}
