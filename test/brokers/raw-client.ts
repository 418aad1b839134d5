import { connect as tcpConnect, type Socket } from "node:net";
import mqttPacket, { type IConnackPacket, type Packet } from "mqtt-packet";

export interface RawConnect {
  clientId: string;
  clean: boolean;
  username?: string;
  password?: string;
  /** 4 = MQTT 3.1.1 (default), 3 = MQTT 3.1. */
  protocolVersion?: 3 | 4;
}

/**
 * A bare MQTT client over TCP (mqtt-packet): it answers nothing by itself, so a test can stop a QoS 2 flow at
 * any step (after PUBLISH, after PUBREL) and see what the broker sends on reconnect, and it sends CONNECTs that
 * mqtt.js refuses to (an empty client id without clean session) and shows every CONNACK return code.
 */
export class RawClient {
  readonly packets: Packet[] = [];
  private constructor(private readonly socket: Socket) {}

  /** Connects with a persistent or clean session; throws when the broker refuses. */
  static async connect(
    port: number,
    clientId: string,
    opts: { clean: boolean; username?: string; password?: string },
  ): Promise<RawClient> {
    const { client, connack } = await RawClient.open(port, { clientId, ...opts });
    if (connack.returnCode !== 0) throw new Error(`refused: ${JSON.stringify(connack)}`);
    return client;
  }

  /** Sends the CONNECT and returns the CONNACK, refused or not. */
  static async open(port: number, connect: RawConnect): Promise<{ client: RawClient; connack: IConnackPacket }> {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    const client = new RawClient(socket);
    const parser = mqttPacket.parser({ protocolVersion: connect.protocolVersion ?? 4 });
    parser.on("packet", (packet) => client.packets.push(packet));
    socket.on("data", (chunk) => parser.parse(chunk));
    socket.on("error", () => undefined); // a destroyed socket is part of the test
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    socket.write(encodeConnect(connect));
    return { client, connack: await client.next("connack") };
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

  /** Resolves when the connection is closed, by the broker or by {@link drop}. */
  async closed(timeoutMs = 5_000): Promise<void> {
    if (this.socket.closed) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
      this.socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Drops the TCP connection without DISCONNECT (a device losing power or Wi-Fi). */
  async drop(): Promise<void> {
    this.socket.destroy();
    await this.closed();
  }
}

/**
 * MQTT 3.1.1 §3.1 / MQTT 3.1 CONNECT, written here because mqtt-packet refuses the ones a conformance test needs
 * (an empty client id without clean session, or with MQTT 3.1).
 */
function encodeConnect({ clientId, clean, username, password, protocolVersion = 4 }: RawConnect): Buffer {
  const string = (text: string) => {
    const bytes = Buffer.from(text);
    return Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 0xff]), bytes]);
  };
  const flags = (username === undefined ? 0 : 0x80) | (password === undefined ? 0 : 0x40) | (clean ? 0x02 : 0);
  const keepAlive = [0, 30];
  const body = Buffer.concat([
    string(protocolVersion === 3 ? "MQIsdp" : "MQTT"),
    Buffer.from([protocolVersion, flags, ...keepAlive]),
    string(clientId),
    ...(username === undefined ? [] : [string(username)]),
    ...(password === undefined ? [] : [string(password)]),
  ]);
  const length: number[] = []; // §2.2.3 remaining length, 7 bits per byte
  let rest = body.length;
  do {
    length.push((rest & 0x7f) | (rest > 0x7f ? 0x80 : 0));
    rest >>= 7;
  } while (rest > 0);
  return Buffer.concat([Buffer.from([0x10, ...length]), body]);
}
