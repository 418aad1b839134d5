import MQEmitterRedis from "mqemitter-redis";
import type { GatewayConfig } from "../config.ts";
import type { EmbeddedBrokerOptions } from "./embedded.ts";
import type { BrokerLogger } from "./logger.ts";

/**
 * What carries a publish from the broker node that received it to the subscribers connected to the other nodes
 * (aedes' `mq`): mqemitter-redis, one Redis pub/sub channel per MQTT topic, on the Redis whose RedisPersistence
 * the nodes share. aedes' own cluster traffic rides on it too: `$SYS/<id>/heartbeat` tells the other nodes
 * this one is alive (the survivors publish a silent node's wills: RedisPersistence.streamWill), and
 * `$SYS/<id>/new/clients` makes a node close its connection of a client that reconnected to another node.
 */
export function redisMessageBus(redis: { url: string }, logger: BrokerLogger): MQEmitterRedis.MQEmitterRedis {
  const mq = MQEmitterRedis({ connectionString: redis.url });
  // ioredis reconnects by itself; an 'error' without a listener would end the process.
  (mq as unknown as { state: NodeJS.EventEmitter }).state.on("error", (err: Error) =>
    logger.warn({ err: err.message }, "broker message bus (redis) error"),
  );
  return mq;
}

/** The embedded broker's store and heartbeat from the config: one SQLite broker, or a node on `redis`. */
export function brokerNodeOptions(config: GatewayConfig): Pick<EmbeddedBrokerOptions, "redis" | "heartbeatIntervalMs"> {
  if (config.broker.store !== "redis" || config.redis === undefined) return {};
  return {
    redis: { url: config.redis.url, prefix: `${config.redis.keyPrefix}broker:` },
    heartbeatIntervalMs: config.broker.heartbeatMs,
  };
}
