/**
 * A TCP proxy between the device and a real broker that parses both directions with mqtt-packet and passes
 * them on (device → broker byte for byte, broker → device packet by packet, re-encoded), so a test can act
 * at an exact step of a flow (e.g. kill the broker right after its PUBREC was written to the device). While `refusing`, new connections are closed at once, as if the
 * broker were down.
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import mqttPacket, { type Packet } from "mqtt-packet";

export interface TapConnection {
  /** the CONNECT's client id (the device id), once seen */
  clientId?: string;
  /** telemetry seq by packet id, from the device's PUBLISHes on this connection */
  seqById: Map<number, number>;
  device: Socket;
  upstream: Socket;
}

export interface MqttTap {
  port: number;
  refusing: boolean;
  /** called after a broker → device packet was passed on */
  onBrokerPacket?: (conn: TapConnection, packet: Packet) => void;
  /** closes every open connection (both sides) */
  cut(): void;
  close(): Promise<void>;
}

export async function startMqttTap(brokerPort: number): Promise<MqttTap> {
  const open = new Set<TapConnection>();
  const tap: MqttTap = {
    port: 0,
    refusing: false,
    cut() {
      for (const c of open) {
        c.device.destroy();
        c.upstream.destroy();
      }
      open.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        tap.cut();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((device) => {
    if (tap.refusing) return void device.destroy();
    const upstream = connect(brokerPort, "127.0.0.1");
    const conn: TapConnection = { seqById: new Map(), device, upstream };
    open.add(conn);
    const end = () => {
      open.delete(conn);
      device.destroy();
      upstream.destroy();
    };
    device.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);

    const fromDevice = mqttPacket.parser({ protocolVersion: 4 });
    fromDevice.on("packet", (p: Packet) => {
      if (p.cmd === "connect") conn.clientId = p.clientId;
      if (p.cmd === "publish" && p.topic.endsWith("/telemetry") && p.messageId !== undefined)
        conn.seqById.set(p.messageId, JSON.parse(p.payload.toString()).seq);
    });
    fromDevice.on("error", end);
    device.on("data", (d) => {
      fromDevice.parse(d);
      upstream.write(d);
    });

    // packet by packet, so that a hook runs right after its packet was written to the device
    const fromBroker = mqttPacket.parser({ protocolVersion: 4 });
    fromBroker.on("packet", (p: Packet) => {
      if (device.destroyed) return;
      device.write(mqttPacket.generate(p));
      tap.onBrokerPacket?.(conn, p);
    });
    fromBroker.on("error", end);
    upstream.on("data", (d) => fromBroker.parse(d));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("mqtt tap: no port");
  tap.port = address.port;
  return tap;
}
