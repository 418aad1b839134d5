/** A real aedes broker on 127.0.0.1 and an observer client, for firmware tests. */
import { createServer, type Server } from "node:net";
import { Aedes } from "aedes";
import mqtt, { type MqttClient } from "mqtt";

export interface Broker {
  port: number;
  aedes: Aedes;
  server: Server;
  close(): Promise<void>;
}

export async function startBroker(port = 0): Promise<Broker> {
  const aedes = await Aedes.createBroker();
  const server = createServer(aedes.handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return {
    port: address.port,
    aedes,
    server,
    async close() {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
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

