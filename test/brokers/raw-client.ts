import { connect as tcpConnect, type Socket } from "node:net";
import mqttPacket, { type Packet } from "mqtt-packet";

/**
 * A bare MQTT 3.1.1 client over TCP (mqtt-packet): it answers nothing by itself, so a test can stop a
 * QoS 2 flow at any step (after PUBLISH, after PUBREL) and see what the broker sends on reconnect.
 */
export class RawClient {
  readonly packets: Packet[] = [];
  private constructor(private readonly socket: Socket) {}

  static async connect(
    port: number,
    clientId: string,
    opts: { clean: boolean; username?: string; password?: string },
  ): Promise<RawClient> {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    const client = new RawClient(socket);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on("packet", (packet) => client.packets.push(packet));
    socket.on("data", (chunk) => parser.parse(chunk));
    socket.on("error", () => undefined); // a destroyed socket is part of the test
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const { username, clean } = opts;
    const password = opts.password === undefined ? undefined : Buffer.from(opts.password);
    client.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clientId, clean, keepalive: 30, username, password });
    const connack = await client.next("connack");
    if (connack.cmd !== "connack" || connack.returnCode !== 0) throw new Error(`refused: ${JSON.stringify(connack)}`);
    return client;
  }

  send(packet: Packet): void {
    this.socket.write(mqttPacket.generate(packet));
  }

  /** Waits for the next packet of this kind not yet taken, and takes it. */
  async next<C extends Packet["cmd"]>(cmd: C, timeoutMs = 5_000): Promise<Extract<Packet, { cmd: C }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.packets.findIndex((p) => p.cmd === cmd);
      if (index !== -1) return this.packets.splice(index, 1)[0] as Extract<Packet, { cmd: C }>;
      if (Date.now() > deadline) throw new Error(`no ${cmd} within ${timeoutMs} ms; have ${this.packets.map((p) => p.cmd)}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Drops the TCP connection without DISCONNECT (a device losing power or Wi-Fi). */
  async drop(): Promise<void> {
    this.socket.destroy();
    await new Promise((resolve) => (this.socket.closed ? resolve(undefined) : this.socket.once("close", resolve)));
  }
}
