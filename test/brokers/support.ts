import mqtt, { type IClientOptions, type MqttClient } from "mqtt";

/** Test-side MQTT helpers shared by the broker suites (real mqtt.js clients over TCP, deadlines, no sleeps). */

const clients = new Set<MqttClient>();

/** Connects once (no auto-reconnect); rejects with the CONNACK error when refused. */
export async function connect(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000, protocolVersion: 4, ...opts });
  clients.add(client);
  return client;
}

/** The CONNACK return code of a refused connect (MQTT 3.1.1: 4 bad user/password, 5 not authorized). */
export async function refusedCode(url: string, opts: IClientOptions): Promise<number> {
  try {
    const client = await connect(url, opts);
    await client.endAsync(true);
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (typeof code === "number") return code;
    throw err;
  }
  throw new Error(`connect as ${String(opts.username)} was accepted, expected a refusal`);
}

/**
 * Connects with a message recorder attached before CONNACK: a broker sends a persistent session's queued
 * messages right after CONNACK, before connectAsync() resolves and before a later listener could see them.
 */
export async function connectRecording(url: string, opts: IClientOptions = {}): Promise<[MqttClient, Received[]]> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5_000, protocolVersion: 4, ...opts });
  clients.add(client);
  const received = recordMessages(client);
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  return [client, received];
}

/** Ends every client opened by connect(); for afterEach. */
export async function endAllClients(): Promise<void> {
  await Promise.all([...clients].map((c) => c.endAsync(true).catch(() => undefined)));
  clients.clear();
}

export interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  dup: boolean;
}

/** Records every message a client receives, from now on. */
export function recordMessages(client: MqttClient): Received[] {
  const received: Received[] = [];
  client.on("message", (topic, payload, packet) => {
    received.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, dup: packet.dup });
  });
  return received;
}

export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Resolves when the client's connection is closed (by the broker or locally). */
export function closed(client: MqttClient, timeoutMs = 5_000): Promise<void> {
  return waitFor(() => !client.connected, "the connection to close", timeoutMs);
}

/**
 * Proves that something did NOT arrive: publishes a marker on `markerTopic` after the probe and waits for it.
 * MQTT keeps order per publisher and subscription, so once the marker is in, the probe would have been too.
 */
export async function barrier(publisher: MqttClient, received: Received[], markerTopic: string): Promise<void> {
  const marker = `marker-${Math.random()}`;
  await publisher.publishAsync(markerTopic, marker, { qos: 1 });
  await waitFor(() => received.some((m) => m.payload === marker), `marker on ${markerTopic}`);
}

/** SUBACK return codes per filter, 128 included (mqtt.js rejects a SUBACK with any 128; we want the codes). */
export async function subscribeCodes(client: MqttClient, filters: string[], qos: 0 | 1 | 2): Promise<number[]> {
  try {
    const granted = await client.subscribeAsync(filters, { qos });
    return granted.map((g) => g.qos);
  } catch (err) {
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (granted === undefined) throw err;
    return granted;
  }
}
