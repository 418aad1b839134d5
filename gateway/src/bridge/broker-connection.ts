/**
 * How the gateway's MQTT clients (the bridge, bridge/mqtt-client.ts, and the outward publisher,
 * outbound/retained-publisher.ts) reach the broker: the one owner of the connect options they share.
 *
 * Several URLs (config mqtt.url as a list: the nodes of one broker sharing Redis, or a cluster) go to MQTT.js'
 * `servers` option: each new connection attempt goes to the next one in the list, wrapping round (the stream
 * builder wrapper in mqtt/build/lib/connect/index.js), so a client whose broker died reconnects to the next
 * after reconnectPeriod, and a refused attempt moves on again. A persistent session (clean: false, fixed client
 * id) then resumes on the other node because the nodes keep sessions in the shared Redis.
 *
 * With mqtts and host names, MQTT.js keeps the first node's name as the TLS server name, so every node's
 * certificate must name them all (or use IP addresses, which are checked one by one).
 */
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";

export interface BrokerTarget {
  /** mqtt:// or mqtts:// URLs, without login (config.ts moves it to username/password). */
  urls: readonly string[];
  username?: string;
  password?: string;
}

/** What each client sets for itself. */
export type OwnOptions = Pick<IClientOptions, "clientId" | "clean" | "will" | "writeCache">;

export function connectToBroker(target: BrokerTarget, own: OwnOptions): MqttClient {
  if (target.urls.length === 0) throw new Error("connectToBroker: no broker URL");
  return mqtt.connect({
    servers: target.urls.map(server),
    username: target.username,
    password: target.password,
    protocolVersion: 4,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    keepalive: 30,
    ...own,
  });
}

/** The broker the client is connected to (or last tried), as a URL without login: for logs. */
export function currentBroker(client: MqttClient): string {
  const { protocol, hostname, port } = client.options;
  return `${protocol}://${hostname?.includes(":") ? `[${hostname}]` : hostname}:${port}`;
}

function server(href: string): { host: string; port: number; protocol: "mqtt" | "mqtts" } {
  const u = new URL(href);
  const protocol = u.protocol === "mqtts:" ? "mqtts" : "mqtt";
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, "$1"), // net.connect takes ::1, not [::1]
    port: u.port === "" ? (protocol === "mqtts" ? 8883 : 1883) : Number(u.port),
    protocol,
  };
}
