/** What the firmware stored and what subscribers on each broker received: the failover tests compare the two. */
import mqtt, { type MqttClient } from "mqtt";
import type { RunningMosquitto } from "../../helpers/mosquitto.ts";
import type { FirmwareRun } from "./fleet.ts";

export interface Arrival {
  device: string;
  seq: number;
  /** The name the test gave the broker ("A", "B"…). */
  broker: string;
  at: number;
}

/** A subscriber on one broker that records every telemetry message; reconnects when the broker is back. */
export async function watchTelemetry(broker: RunningMosquitto, name: string, arrivals: Arrival[], qos: 1 | 2): Promise<MqttClient> {
  const client = await mqtt.connectAsync(broker.url, { clientId: `watch-${name}`, clean: true, reconnectPeriod: 100 });
  client.on("connect", () => void client.subscribe("sensors/+/telemetry", { qos }));
  client.on("error", () => {}); // refused while the broker is down: reconnectPeriod retries
  client.on("message", (topic, payload) => {
    arrivals.push({ device: topic.split("/")[1]!, seq: JSON.parse(payload.toString()).seq, broker: name, at: Date.now() });
  });
  await client.subscribeAsync("sensors/+/telemetry", { qos });
  return client;
}

/** seqs the firmware stored in flash ("reading seq=N ... stored"), per device id. */
export function storedSeqs(run: FirmwareRun): Map<string, number[]> {
  const stored = new Map<string, number[]>();
  for (const line of run.logs) {
    const m = /^\[([^\]]+)\] reading seq=(\d+) /.exec(line);
    if (!m) continue;
    stored.set(m[1]!, [...(stored.get(m[1]!) ?? []), Number(m[2])]);
  }
  return stored;
}
