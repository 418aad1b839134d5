/**
 * The broker we ship (gateway/src/broker: aedes whose PUBACK waits until the message is queued, and whose
 * packet ids stay unique for resumed sessions) on 127.0.0.1, open auth, for the simulator's tests and
 * benchmark and the firmware tests (test/firmware/helpers/broker.ts). Port 0 = a free port.
 *
 * The shipped broker speaks plain TCP only (production TLS is Mosquitto's, hardware/mosquitto). With `tls`, a
 * TLS terminator in front of it serves mqtts:// on `port`: each TLS connection is piped to the broker's own
 * loopback port. It exists for the simulator's mqtts:// test (the network layer does the device's TLS).
 *
 * @example
 * const broker = await startSimBroker(); // or startSimBroker({ port: 1883, dataDir: "data/bench" })
 * const fleet = await startFleet({ devices: 3, brokerUrl: broker.url });
 * broker.broker.on("publish", (packet, client) => console.log(client?.id, packet.topic));
 * await fleet.stop();
 * await broker.close();
 */
import { type AddressInfo, type Socket, connect } from "node:net";
import { type TLSSocket, createServer as createTlsServer } from "node:tls";
import type { Aedes } from "aedes";
import { type EmbeddedBroker, startEmbeddedBroker } from "../../gateway/src/broker/index.ts";

export interface SimBroker {
  /** mqtt://127.0.0.1:<port>, or mqtts:// with `tls`. */
  url: string;
  port: number;
  /**
   * The aedes instance inside the shipped broker, for test observers (its "publish", "subscribe", "client"
   * events).
   */
  broker: Aedes;
  /** The shipped broker itself: counters, "delivered"/"clientConnected" events, serviceCredentials. */
  shipped: EmbeddedBroker;
  /** Safe to call twice. */
  close(): Promise<void>;
}

export interface SimBrokerOptions {
  /** 0 (default) = a free port. With `tls` this is the mqtts:// port. */
  port?: number;
  /** PEM key and certificate: serve mqtts:// through a TLS terminator. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** Sessions, queued messages and retained messages on disk here (survive close + start). Default: in memory. */
  dataDir?: string;
}

export async function startSimBroker(options: number | SimBrokerOptions = {}): Promise<SimBroker> {
  const { port = 0, tls, dataDir } = typeof options === "number" ? { port: options } : options;
  const shipped = await startEmbeddedBroker({
    host: "127.0.0.1",
    port: tls ? 0 : port,
    dataDir,
    auth: { mode: "open" },
  });
  let terminator: TlsTerminator | undefined;
  try {
    if (tls) terminator = await startTlsTerminator(tls, port, shipped.port);
  } catch (err) {
    await shipped.close();
    throw err;
  }
  const actual = terminator?.port ?? shipped.port;
  let closing: Promise<void> | undefined;
  return {
    url: `${tls ? "mqtts" : "mqtt"}://127.0.0.1:${actual}`,
    port: actual,
    broker: shipped.aedes,
    shipped,
    close() {
      closing ??= (async () => {
        await terminator?.close();
        await shipped.close();
      })();
      return closing;
    },
  };
}

interface TlsTerminator {
  port: number;
  close(): Promise<void>;
}

async function startTlsTerminator(
  tls: { key: string | Buffer; cert: string | Buffer },
  port: number,
  brokerPort: number,
): Promise<TlsTerminator> {
  const sockets = new Set<Socket>();
  const server = createTlsServer(tls, (client: TLSSocket) => {
    const upstream = connect(brokerPort, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      // Either side ending or failing ends both: the MQTT session sees a dropped connection, nothing else.
      s.once("close", () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
      s.on("error", () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.on("tlsClientError", () => {}); // a failed handshake only concerns that client
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
