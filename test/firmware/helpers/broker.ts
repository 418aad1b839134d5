/**
 * The broker we ship (gateway/src/broker, open auth, in memory) on 127.0.0.1, and an observer client, for
 * firmware tests. `aedes` is the aedes instance inside it, for tests that watch "publish" / "subscribe".
 */
import type { Aedes } from "aedes";
import mqtt, { type MqttClient } from "mqtt";
import { startSimBroker } from "../../../simulator/src/sim-broker.ts";
import { startMosquitto } from "../../helpers/mosquitto.ts";

export interface Broker {
  port: number;
  url: string;
  aedes: Aedes;
  close(): Promise<void>;
}

/** port 0 = a free one; give the old port to restart a broker where devices expect it (without its sessions). */
export async function startBroker(port = 0): Promise<Broker> {
  const broker = await startSimBroker({ port });
  return { port: broker.port, url: broker.url, aedes: broker.broker, close: () => broker.close() };
}

/** Either broker on a free port, for suites that run the same case on both: its port and how to stop it. */
export async function startBrokerOfKind(kind: "embedded" | "mosquitto"): Promise<{ port: number; close(): Promise<void> }> {
  if (kind === "embedded") return startBroker();
  const mosq = await startMosquitto();
  return { port: mosq.port, close: () => mosq.close() };
}

export interface Received {
  topic: string;
  /** the JSON payload, or undefined when it was not JSON */
  body: any;
  raw: string;
  at: number;
}

/** An observer client that records every device message. */
export async function observe(port: number): Promise<{ client: MqttClient; messages: Received[] }> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `obs-${Date.now()}`, clean: true });
  const messages: Received[] = [];
  client.on("message", (topic, payload) => {
    const raw = payload.toString();
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      body = undefined;
    }
    messages.push({ topic, body, raw, at: Date.now() });
  });
  await client.subscribeAsync("sensors/#", { qos: 1 });
  return { client, messages };
}

export async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20)); // polling step, not a timing assumption
  }
}
