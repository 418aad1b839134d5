/**
 * A scripted MQTT peer for firmware tests: a TCP server on 127.0.0.1 that parses what the device sends
 * with mqtt-packet (a real MQTT parser, not our code) and answers like a broker unless a test's hook
 * decides otherwise. It can write its packets whole, byte by byte (each byte its own TCP write), or
 * several coalesced into one write.
 */
import { createServer, type Server, type Socket } from "node:net";
import { EventEmitter } from "node:events";
import mqttPacket, { type Packet } from "mqtt-packet";

export type WriteMode = "whole" | "bytes";

export interface PeerPacket {
  /** connection number, 0 for the first connection the device opened */
  conn: number;
  packet: Packet;
  /** wire size in bytes, from the parser */
  length: number;
}

export class PeerConnection {
  closed = false;
  constructor(
    readonly index: number,
    readonly socket: Socket,
  ) {}

  /** Writes packets: "whole" one TCP write each, "bytes" one write per byte (split across reads). */
  async send(packets: Packet | Packet[], mode: WriteMode = "whole"): Promise<void> {
    const list = Array.isArray(packets) ? packets : [packets];
    for (const p of list) {
      const buf = mqttPacket.generate(p);
      if (mode === "whole") this.write(buf);
      else for (const byte of buf) await this.writeAndYield(Buffer.from([byte]));
    }
  }

  /** Several packets in ONE write: the device must find all of them in a single read. */
  sendCoalesced(packets: Packet[]): void {
    this.write(Buffer.concat(packets.map((p) => mqttPacket.generate(p))));
  }

  /** Drops the TCP connection without any MQTT goodbye. */
  drop(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private write(buf: Buffer) {
    if (!this.closed) this.socket.write(buf);
  }

  private async writeAndYield(buf: Buffer) {
    if (this.closed) return;
    await new Promise<void>((resolve) => this.socket.write(buf, () => resolve()));
    // let the event loop deliver this byte to the VM before the next one goes out
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** What the peer does with a packet; return true when the hook answered it itself. */
export type PeerHook = (conn: PeerConnection, packet: Packet) => boolean | Promise<boolean>;

export interface PeerOptions {
  /** CONNACK sessionPresent for a connection (default: false on the first, true afterwards) */
  sessionPresent?: (connIndex: number) => boolean;
  /** runs before the default broker-like answer */
  hook?: PeerHook;
  /** how the default answers are written (default "whole") */
  mode?: WriteMode;
}

export class MqttPeer extends EventEmitter {
  readonly received: PeerPacket[] = [];
  readonly connections: PeerConnection[] = [];
  /** errors thrown by hooks or answers (a test may assert there are none) */
  readonly hookErrors: unknown[] = [];
  private server!: Server;
  port = 0;

  constructor(private readonly options: PeerOptions = {}) {
    super();
  }

  async start(): Promise<this> {
    this.server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", () => resolve()));
    const address = this.server.address();
    if (address === null || typeof address === "string") throw new Error("peer: no port");
    this.port = address.port;
    return this;
  }

  private accept(socket: Socket) {
    socket.setNoDelay(true);
    const conn = new PeerConnection(this.connections.length, socket);
    this.connections.push(conn);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    let queue: Promise<void> = Promise.resolve();
    parser.on("packet", (packet: Packet) => {
      const entry: PeerPacket = { conn: conn.index, packet, length: (packet as { length?: number }).length ?? 0 };
      this.received.push(entry);
      // answers go out in packet order, even when a hook awaits
      queue = queue
        .then(() => this.answer(conn, packet))
        .catch((err: unknown) => {
          this.hookErrors.push(err);
        });
      this.emit("packet", entry);
    });
    parser.on("error", (err: Error) => {
      this.emit("parse-error", err);
      conn.drop();
    });
    socket.on("data", (data) => parser.parse(data));
    socket.on("error", () => conn.drop());
    socket.on("close", () => {
      conn.closed = true;
      this.emit("close", conn.index);
    });
  }

  private async answer(conn: PeerConnection, packet: Packet) {
    if (this.options.hook && (await this.options.hook(conn, packet))) return;
    const mode = this.options.mode ?? "whole";
    switch (packet.cmd) {
      case "connect": {
        const present = this.options.sessionPresent ? this.options.sessionPresent(conn.index) : conn.index > 0;
        await conn.send({ cmd: "connack", returnCode: 0, sessionPresent: present }, mode);
        break;
      }
      case "subscribe":
        await conn.send(
          { cmd: "suback", messageId: packet.messageId, granted: packet.subscriptions.map((s) => s.qos) },
          mode,
        );
        break;
      case "publish":
        if (packet.qos === 1) await conn.send({ cmd: "puback", messageId: packet.messageId! }, mode);
        if (packet.qos === 2) await conn.send({ cmd: "pubrec", messageId: packet.messageId! }, mode);
        break;
      case "pubrel":
        await conn.send({ cmd: "pubcomp", messageId: packet.messageId! }, mode);
        break;
      case "pingreq":
        await conn.send({ cmd: "pingresp" }, mode);
        break;
      case "disconnect":
        // brokers close the connection on DISCONNECT (aedes, Mosquitto); the firmware waits for it
        conn.socket.end();
        break;
      default:
        break;
    }
  }

  /** Received packets of one kind, optionally on one topic. */
  packets<C extends Packet["cmd"]>(cmd: C, topic?: string): (PeerPacket & { packet: Extract<Packet, { cmd: C }> })[] {
    return this.received.filter(
      (e) => e.packet.cmd === cmd && (topic === undefined || (e.packet as { topic?: string }).topic === topic),
    ) as (PeerPacket & { packet: Extract<Packet, { cmd: C }> })[];
  }

  /** Resolves once `check()` returns a value other than undefined/false; rejects after timeoutMs. */
  async waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
    const first = check();
    if (first !== undefined && first !== false) return first;
    return new Promise<T>((resolve, reject) => {
      const onEvent = () => {
        const v = check();
        if (v === undefined || v === false) return;
        cleanup();
        resolve(v);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`peer: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off("packet", onEvent);
        this.off("close", onEvent);
      };
      this.on("packet", onEvent);
      this.on("close", onEvent);
    });
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.drop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
