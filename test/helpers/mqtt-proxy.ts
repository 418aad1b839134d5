/**
 * A loopback TCP proxy in front of a real MQTT broker, for network faults a test needs on one client only: it
 * reads each connection's CONNECT packet (mqtt-packet) to learn its client id, then can cut the clients whose
 * id matches and refuse them until unblocked (a kicked client), or stall every connection in both directions
 * (a half-open link: nothing arrives, nothing is acknowledged, no socket closes).
 *
 * @example
 *   const proxy = await startMqttProxy(mosq.port);
 *   const gw = await startTestGateway({ brokerUrl: proxy.url, ... });
 *   proxy.block((id) => id.endsWith("-out")); ... proxy.unblock();
 */
import { createServer, connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import mqttPacket from "mqtt-packet";

interface Link {
  client: Socket;
  broker: Socket;
  clientId: string | undefined;
}

export interface MqttProxy {
  url: string;
  /** Cuts the connections whose client id matches and refuses new ones, until unblock(). */
  block(match: (clientId: string) => boolean): void;
  unblock(): void;
  /** Stops forwarding in both directions on every connection (kept open), until thaw(). */
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

export async function startMqttProxy(brokerPort: number): Promise<MqttProxy> {
  const links = new Set<Link>();
  let blocked: ((clientId: string) => boolean) | undefined;
  let frozen = false;
  const cut = (l: Link) => {
    l.client.destroy();
    l.broker.destroy();
    links.delete(l);
  };
  const server = createServer((client) => {
    const broker = connect(brokerPort, "127.0.0.1");
    const link: Link = { client, broker, clientId: undefined };
    links.add(link);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on("packet", (p) => {
      if (p.cmd !== "connect" || link.clientId !== undefined) return;
      link.clientId = p.clientId;
      if (blocked?.(p.clientId)) cut(link);
    });
    client.on("data", (chunk: Buffer) => {
      if (link.clientId === undefined) parser.parse(chunk);
      if (links.has(link)) broker.write(chunk);
    });
    broker.on("data", (chunk: Buffer) => client.write(chunk));
    for (const s of [client, broker]) {
      s.on("error", () => cut(link));
      s.on("close", () => cut(link));
    }
    if (frozen) {
      client.pause();
      broker.pause();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    block(match) {
      blocked = match;
      for (const l of [...links]) if (l.clientId !== undefined && match(l.clientId)) cut(l);
    },
    unblock() {
      blocked = undefined;
    },
    freeze() {
      frozen = true;
      for (const l of links) {
        l.client.pause();
        l.broker.pause();
      }
    },
    thaw() {
      frozen = false;
      for (const l of links) {
        l.client.resume();
        l.broker.resume();
      }
    },
    async close() {
      for (const l of [...links]) cut(l);
      await new Promise((r) => server.close(r));
    },
  };
}
