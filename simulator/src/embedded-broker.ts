/**
 * A plain embedded aedes broker on loopback (port 0 = free port), for the simulator's tests and benchmark.
 * With `tls` it listens for mqtts:// instead.
 */
import { type AddressInfo, type Server, type Socket, createServer } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { Aedes } from "aedes";

export interface EmbeddedBroker {
  url: string;
  port: number;
  broker: Aedes;
  close(): Promise<void>;
}

export interface EmbeddedBrokerOptions {
  port?: number;
  /** PEM key and certificate: serve mqtts:// */
  tls?: { key: string | Buffer; cert: string | Buffer };
}

export async function startEmbeddedBroker(options: number | EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const { port = 0, tls } = typeof options === "number" ? { port: options } : options;
  const broker = await Aedes.createBroker();
  const server: Server = tls ? createTlsServer(tls, broker.handle) : createServer(broker.handle);
  const sockets = new Set<Socket>();
  server.on(tls ? "secureConnection" : "connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  let closed = false;
  return {
    url: `${tls ? "mqtts" : "mqtt"}://127.0.0.1:${actual}`,
    port: actual,
    broker,
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
