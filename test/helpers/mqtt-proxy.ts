/**
 * A loopback TCP proxy in front of a real MQTT broker, for network faults a test needs on one client only: it
 * parses what each client sends (mqtt-packet) to learn its client id, then can cut the clients whose id matches
 * and refuse them until unblocked (a kicked client), or hold their traffic in both directions (a stalled link:
 * nothing arrives, nothing is acknowledged, no socket closes) and count the PUBLISH packets held, until thawed.
 *
 * @example
 *   const proxy = await startMqttProxy(mosq.port);
 *   const gw = await startTestGateway({ brokerUrl: proxy.url, ... });
 *   proxy.block((id) => id.endsWith("-out")); ... proxy.unblock();
 *   proxy.freeze((id) => id.endsWith("-out")); await waitUntil(() => proxy.heldPublishes() >= 4); proxy.thaw();
 */
import { createServer, connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import mqttPacket from "mqtt-packet";

interface Link {
  client: Socket;
  broker: Socket;
  clientId: string | undefined;
  /** Traffic held while frozen, each way, forwarded on thaw. */
  up: Buffer[] | undefined;
  down: Buffer[] | undefined;
  heldPublishes: number;
}

export interface MqttProxy {
  url: string;
  /** Cuts the connections whose client id matches and refuses new ones, until unblock(). */
  block(match: (clientId: string) => boolean): void;
  unblock(): void;
  /** Holds the traffic of the connections whose client id matches (default: all; kept open), until thaw(). */
  freeze(match?: (clientId: string) => boolean): void;
  /** How many PUBLISH packets from clients are held now. */
  heldPublishes(): number;
  /** Forwards what was held, in order, and goes on forwarding. */
  thaw(): void;
  close(): Promise<void>;
}

export async function startMqttProxy(brokerPort: number): Promise<MqttProxy> {
  const links = new Set<Link>();
  let blocked: ((clientId: string) => boolean) | undefined;
  let frozen: ((clientId: string) => boolean) | undefined;
  const hold = (l: Link) => {
    l.up ??= [];
    l.down ??= [];
  };
  const cut = (l: Link) => {
    l.client.destroy();
    l.broker.destroy();
    links.delete(l);
  };
  const server = createServer((client) => {
    const broker = connect(brokerPort, "127.0.0.1");
    const link: Link = { client, broker, clientId: undefined, up: undefined, down: undefined, heldPublishes: 0 };
    links.add(link);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on("packet", (p) => {
      if (p.cmd === "publish" && link.up) link.heldPublishes++;
      if (p.cmd !== "connect" || link.clientId !== undefined) return;
      link.clientId = p.clientId;
      if (blocked?.(p.clientId)) cut(link);
      else if (frozen?.(p.clientId)) hold(link);
    });
    client.on("data", (chunk: Buffer) => {
      parser.parse(chunk); // may cut or freeze the link (its CONNECT), counts the PUBLISH packets held
      if (!links.has(link)) return;
      if (link.up) link.up.push(chunk);
      else broker.write(chunk);
    });
    broker.on("data", (chunk: Buffer) => (link.down ? link.down.push(chunk) : client.write(chunk)));
    for (const s of [client, broker]) {
      s.on("error", () => cut(link));
      s.on("close", () => cut(link));
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
    freeze(match = () => true) {
      frozen = match;
      for (const l of links) if (l.clientId !== undefined && match(l.clientId)) hold(l);
    },
    heldPublishes: () => [...links].reduce((n, l) => n + l.heldPublishes, 0),
    thaw() {
      frozen = undefined;
      for (const l of links) {
        const { up, down } = l;
        l.up = l.down = undefined;
        l.heldPublishes = 0;
        for (const c of up ?? []) l.broker.write(c);
        for (const c of down ?? []) l.client.write(c);
      }
    },
    async close() {
      for (const l of [...links]) cut(l);
      await new Promise((r) => server.close(r));
    },
  };
}
