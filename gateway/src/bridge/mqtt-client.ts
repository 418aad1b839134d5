/**
 * The gateway's MQTT client (mqtt.js): a persistent session (clean-session off, fixed client id)
 * so messages published while the gateway is down are queued by the broker and arrive on
 * reconnect. Incoming messages go through mqtt.js' handleMessage hook: it takes them one at a time
 * and sends the PUBACK (QoS 1; PUBCOMP for QoS 2) only when the handler's promise resolved, i.e. after
 * the event is stored: an acknowledged message is never lost by a gateway crash. When the handler
 * rejects, no acknowledgement goes out and the broker redelivers the message on the next connection, which the
 * bridge makes once the store is ready again.
 */
import type { MqttClient } from "mqtt";
import type { Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import { GATEWAY_SUBSCRIPTIONS } from "../protocol/topics.ts";
import { ackWithin } from "../outbound/ack-timeout.ts";
import { connectToBroker, currentBroker, type BrokerTarget } from "./broker-connection.ts";

export interface BridgeOptions {
  broker: BrokerTarget;
  clientId: string;
  /** How long start() waits for the first connection before going on (the client keeps retrying). */
  connectWaitMs?: number;
  /**
   * Whether the store takes events again. After a message could not be stored, the bridge reconnects once this
   * is true: a broker resends unacknowledged messages only on a new connection of the session (MQTT 3.1.1 §4.4).
   */
  storeReady?: () => boolean;
  /** How long clearRetained() waits for the broker's PUBACK (default 5 s). */
  ackTimeoutMs?: number;
}

const REDELIVERY_CHECK_MS = 500;
/**
 * The first reconnect for redelivery waits this long after the failure, each further one twice as long (up to
 * REDELIVERY_MAX_MS) until a message is stored again: a store that fails again at once (Redis OOM, a full disk)
 * must not make the gateway reconnect, and the broker replay every retained status, every second forever.
 */
const REDELIVERY_FIRST_MS = 1_000;
const REDELIVERY_MAX_MS = 60_000;

export class MqttBridge {
  private client?: MqttClient;
  private closed = false;
  private redeliveryTimer: NodeJS.Timeout | undefined;
  private redeliveryDelayMs = REDELIVERY_FIRST_MS;

  constructor(
    private readonly opts: BridgeOptions,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Since when the gateway has been taking messages without a break (undefined while it is not). */
  get connectedSince(): number | undefined {
    return this.connected ? this.since : undefined;
  }
  private since: number | undefined;

  /**
   * Connects and subscribes; resolves after the first SUBACK, or after connectWaitMs. A message is
   * acknowledged when `onMessage` resolves, and left to the broker when it rejects.
   */
  async start(onMessage: (topic: string, payload: Buffer, retained: boolean) => Promise<void>): Promise<void> {
    const client = connectToBroker(this.opts.broker, {
      clientId: this.opts.clientId,
      clean: false,
      // No mqtt-packet number cache (6 MB of heap per process), as in broker/embedded.ts.
      writeCache: false,
    });
    this.client = client;
    client.handleMessage = (packet, done) => {
      if (packet.dup) this.metrics.mqttDupFlag.inc();
      const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
      // retain is set only on a retained message a (re)subscription replays (MQTT 3.1.1 §3.3.1.3)
      onMessage(packet.topic, payload, packet.retain).then(
        () => {
          this.redeliveryDelayMs = REDELIVERY_FIRST_MS;
          done();
        },
        (err: Error) => {
          done(err);
          this.redeliverWhenReady();
        },
      );
    };
    client.on("error", (err) => this.log.warn({ err: err.message }, "mqtt client error"));
    client.on("offline", () => this.log.warn({ broker: currentBroker(client) }, "mqtt broker unreachable, retrying"));
    const subscribed = new Promise<void>((resolve) => {
      client.on("close", () => (this.since = undefined));
      client.on("connect", (connack) => {
        this.since = Date.now();
        this.log.info({ broker: currentBroker(client), clientId: this.opts.clientId, sessionPresent: connack.sessionPresent }, "mqtt connected");
        // Required when the session is gone; when it survived, the broker replays the retained status of every
        // device (flagged retain), which handlers.ts recognises.
        client.subscribe([...GATEWAY_SUBSCRIPTIONS], { qos: 1 }, (err) => {
          if (err) this.log.error({ err: err.message }, "mqtt subscribe failed");
          else resolve();
        });
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.log.warn({ brokers: this.opts.broker.urls }, "mqtt broker not reachable yet; starting anyway");
        resolve();
      }, this.opts.connectWaitMs ?? 10_000);
    });
    await Promise.race([subscribed, waited]);
    clearTimeout(timer);
  }

  /** Once the store is ready again, drops the connection: mqtt.js reconnects and the broker resends what we did not ack. */
  private redeliverWhenReady(): void {
    if (this.redeliveryTimer || this.closed) return;
    const notBefore = performance.now() + this.redeliveryDelayMs;
    this.redeliveryTimer = setInterval(() => {
      if (this.closed || performance.now() < notBefore || !(this.opts.storeReady?.() ?? true)) return;
      clearInterval(this.redeliveryTimer);
      this.redeliveryTimer = undefined;
      this.log.info({ afterMs: this.redeliveryDelayMs }, "reconnecting so the broker redelivers what was not acknowledged");
      this.redeliveryDelayMs = Math.min(this.redeliveryDelayMs * 2, REDELIVERY_MAX_MS);
      this.metrics.redeliveryReconnects.inc();
      this.client?.stream.destroy();
    }, REDELIVERY_CHECK_MS);
    this.redeliveryTimer.unref();
  }

  /** QoS 1 publish; resolves on the broker's PUBACK. */
  async publishQos1(topic: string, payload: string): Promise<void> {
    if (!this.client || this.closed) throw new Error("mqtt bridge is closed");
    await this.client.publishAsync(topic, payload, { qos: 1 });
  }

  /** Deletes a retained message (an empty retained payload); resolves on the broker's PUBACK, throws after ackTimeoutMs. */
  async clearRetained(topic: string): Promise<void> {
    if (!this.client || this.closed) throw new Error("mqtt bridge is closed");
    if (!this.client.connected) throw new Error("mqtt broker not connected");
    await ackWithin(this.client.publishAsync(topic, "", { qos: 1, retain: true }), this.opts.ackTimeoutMs ?? 5_000, `clear ${topic}`);
  }

  /** Disconnects cleanly (the broker keeps our session); idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.redeliveryTimer);
    await this.client?.endAsync();
  }
}
