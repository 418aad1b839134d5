/**
 * An independent MQTT subscriber next to the gateway: what the broker routed, each message with when it
 * arrived.
 * - QoS 0 (clean session): the broker sends each message once per time it routes it and never again, so a
 *   reading seen twice was accepted twice from the device (an MQTT-level duplicate of the device → broker
 *   hop). Messages routed while it reconnects are missed.
 * - QoS 1/2 (persistent session, survives restarts): also shows the broker → subscriber hop; mqtt.js hands a
 *   QoS 2 message over once, on PUBREL, so a QoS 2 subscriber should never see one twice.
 */
import mqtt, { type MqttClient } from "mqtt";

export interface Observed {
  topic: string;
  raw: string;
  /** JSON payload, undefined when not JSON */
  body: any;
  qos: number;
  /** DUP flag of the PUBLISH that carried it to the observer */
  dup: boolean;
  at: number;
}

export interface Observer {
  client: MqttClient;
  messages: Observed[];
  /** Messages on one topic. */
  on(topic: string): Observed[];
  close(): Promise<void>;
}

export interface ObserverOptions {
  /** Subscription QoS, default 2. QoS 0 uses a clean session: only what the broker routes while connected. */
  qos?: 0 | 1 | 2;
  clientId?: string;
}

let observers = 0;

export async function startObserver(brokerUrl: string, topics: string[], opts: ObserverOptions = {}): Promise<Observer> {
  const qos = opts.qos ?? 2;
  const clientId = opts.clientId ?? `soak-observer-${process.pid}-${++observers}-${Date.now()}`;
  const client = await mqtt.connectAsync(brokerUrl, { clientId, clean: qos === 0, protocolVersion: 4, reconnectPeriod: 100 });
  const messages: Observed[] = [];
  client.on("message", (topic, payload, packet) => {
    const raw = payload.toString();
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      body = undefined;
    }
    messages.push({ topic, raw, body, qos: packet.qos, dup: packet.dup, at: Date.now() });
  });
  client.on("error", () => {
    // broker restarts show up as connection errors; mqtt.js reconnects and resumes the session
  });
  await client.subscribeAsync(topics, { qos });
  return {
    client,
    messages,
    on: (topic) => messages.filter((m) => m.topic === topic),
    close: async () => {
      await client.endAsync(true);
    },
  };
}
