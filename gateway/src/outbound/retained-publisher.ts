/**
 * The gateway's outbound MQTT client, for what it publishes to other tools (Home Assistant discovery, device
 * states, alerts): retained, QoS 1, clean session (nothing to keep: everything is republished on connect).
 * Separate from the bridge (bridge/mqtt-client.ts, the intake) so its persistent session and
 * acknowledge-after-store intake stay exactly as they are. Its Last Will marks `sleepy/gateway/status` offline; it publishes `online` on connect.
 *
 * @example
 *   const out = new RetainedPublisher({ broker: { urls: [url] }, clientId: "sensors-gateway-out" }, counters, log);
 *   out.onConnect(() => republishEverything());
 *   out.start(); // connects in the background
 *   out.publish("sleepy/devices/k1/state", "{...}", "ha_state"); // never throws; failures are counted and logged
 *   await out.publishAcked("sleepy/devices/k1/state", "", "ha_state"); // a removal: throws unless the broker has it
 */
import type { MqttClient } from "mqtt";
import { connectToBroker, currentBroker, type BrokerTarget } from "../bridge/broker-connection.ts";
import type { Logger } from "../ops/log.ts";
import { ackWithin } from "./ack-timeout.ts";
import { gatewayStatusTopic } from "../protocol/topics.ts";

export interface PublisherOptions {
  broker: BrokerTarget;
  clientId: string;
  /** How long publishAcked() and close() wait for a PUBACK (default 5 s). */
  ackTimeoutMs?: number;
}

/** publishAcked() while the publisher is not connected: nothing was sent. */
export class ErrPublisherDisconnected extends Error {
  constructor() {
    super("the gateway's MQTT publisher is not connected to the broker");
  }
}

export interface PublisherCounters {
  /**
   * A publish the broker did not acknowledge (not connected, no PUBACK in time, closed). Not an ACL denial: MQTT
   * 3.1.1 brokers acknowledge a PUBLISH they drop (Mosquitto), or close the connection (the embedded broker).
   */
  failed: { inc(labels: { what: string }): void };
}

export class RetainedPublisher {
  private client?: MqttClient;
  private closed = false;
  private readonly connectListeners: Array<() => void> = [];
  private readonly messageListeners = new Map<string, (payload: Buffer) => void>();

  constructor(private readonly opts: PublisherOptions, private readonly counters: PublisherCounters, private readonly log: Logger) {}

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Called after every (re)connection: retained state is republished then (idempotent). */
  onConnect(listener: () => void): void {
    this.connectListeners.push(listener);
  }

  /** Subscribes to one exact topic (e.g. Home Assistant's birth message), on every connection. */
  onMessage(topic: string, listener: (payload: Buffer) => void): void {
    this.messageListeners.set(topic, listener);
  }

  /** Connects in the background (retrying every second); the onConnect listeners run on each connection. */
  start(): void {
    const client = connectToBroker(this.opts.broker, {
      clientId: this.opts.clientId,
      clean: true,
      will: { topic: gatewayStatusTopic, payload: Buffer.from("offline"), qos: 1, retain: true },
    });
    this.client = client;
    client.on("error", (err) => this.log.warn({ err: err.message }, "mqtt publisher error"));
    client.on("message", (topic, payload) => {
      try {
        this.messageListeners.get(topic)?.(payload);
      } catch (err) {
        this.log.error({ err, topic }, "mqtt publisher listener failed");
      }
    });
    client.on("connect", () => {
      this.log.info({ broker: currentBroker(client) }, "mqtt publisher connected");
      this.publish(gatewayStatusTopic, "online", "gateway_status");
      if (this.messageListeners.size) {
        client.subscribe([...this.messageListeners.keys()], { qos: 1 }, (err) => {
          if (err) this.log.error({ err: err.message }, "mqtt publisher subscribe failed");
        });
      }
      for (const listener of this.connectListeners) {
        try {
          listener();
        } catch (err) {
          this.log.error({ err }, "republish after connect failed");
        }
      }
    });
  }

  /**
   * Publishes retained, QoS 1; an empty payload deletes the retained message (MQTT 3.1.1 §3.3.1.3). Returns at
   * once; while disconnected the publish is dropped and counted, because the next connection republishes all.
   */
  publish(topic: string, payload: string, what: string): void {
    const client = this.client;
    if (!client || this.closed || !client.connected) {
      this.counters.failed.inc({ what });
      return;
    }
    client.publish(topic, payload, { qos: 1, retain: true }, (err) => {
      if (!err) return;
      this.counters.failed.inc({ what });
      this.log.warn({ topic, err: err.message }, "mqtt publish failed");
    });
  }

  /**
   * Publishes retained, QoS 1, and resolves on the broker's PUBACK: for removals (an empty payload), which no
   * later connection would repeat. Throws ErrPublisherDisconnected, ErrAckTimeout or the broker's error (and
   * counts it).
   */
  async publishAcked(topic: string, payload: string, what: string): Promise<void> {
    const client = this.client;
    if (!client || this.closed || !client.connected) {
      this.counters.failed.inc({ what });
      throw new ErrPublisherDisconnected();
    }
    try {
      await ackWithin(client.publishAsync(topic, payload, { qos: 1, retain: true }), this.ackTimeoutMs, `publish ${topic}`);
    } catch (err) {
      this.counters.failed.inc({ what });
      throw err;
    }
  }

  private get ackTimeoutMs(): number {
    return this.opts.ackTimeoutMs ?? 5_000;
  }

  /**
   * Publishes `offline` (a clean disconnect sends no Last Will), waiting at most ackTimeoutMs for the broker, and
   * disconnects; idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const client = this.client;
    if (!client) return;
    if (client.connected) {
      await ackWithin(client.publishAsync(gatewayStatusTopic, "offline", { qos: 1, retain: true }), this.ackTimeoutMs, "gateway status offline").catch((err: Error) =>
        this.log.warn({ err: err.message }, "gateway status offline not acknowledged; the Last Will says it when the broker notices"),
      );
    }
    await client.endAsync(true);
  }
}
