/**
 * One real connection from a simulated device to the fleet's broker (node:net, or node:tls for an mqtts://
 * broker URL), whatever host/port the firmware asked for. Both directions are split into MQTT packets
 * (mqtt-wire.ts) to count bytes and packets and to inject the packet-boundary faults: before CONNACK, in the
 * middle of a PUBLISH, before PUBACK/PUBCOMP. What the device is told, and when, is the socket model's
 * business (vm-socket.ts: the WASM host's glue; esp32-socket.ts: devicescript-esp32 main/sock.c).
 */
import { type Socket, createConnection } from "node:net";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";
import type { DeviceFaults, FaultRecord } from "./faults.ts";
import { type Decoded, MqttFramer, type WireCounters, decode } from "./mqtt-wire.ts";

/** host and port of an mqtt:// or mqtts:// URL (default ports 1883 and 8883). */
export function brokerAddress(url: URL): { host: string; port: number } {
  return { host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || (url.protocol === "mqtts:" ? 8883 : 1883)) };
}

/** Where a connection failed: the TCP connect (or DNS), the TLS handshake, or later reads/writes. */
export type LinkPhase = "connect" | "tls" | "io";

export interface BrokerLinkOptions {
  brokerUrl: URL;
  /** What the firmware passed to sockOpen (for log lines). A negative port means it asked for TLS. */
  requestedHost: string;
  requestedPort: number;
  /** TLS options for an mqtts:// broker URL (tls-trust.ts). */
  tls: ConnectionOptions;
  faults: DeviceFaults;
  counters: WireCounters;
  log: (line: string) => void;
  onPublish?: (publish: { topic: string; qos: number; dup: boolean; bytes: number; payload: Buffer }) => void;
}

export interface BrokerLinkHandlers {
  /** TCP is up (TLS, if any, still to come): the moment sock.c sets sock_fd (sock.c:162). */
  onTcpConnect?(): void;
  /** The link is usable (TLS handshake done for mqtts://). */
  onOpen(): void;
  /** A forwarded inbound packet. Return false to stop forwarding the rest of this chunk. */
  onFrame(frame: Buffer): boolean | void;
  /** The frames of one received chunk have all been offered. */
  onChunkEnd?(): void;
  /** An injected fault killed the link (already counted, logged and torn down). */
  onCut(fault: FaultRecord): void;
  /** A real error (refused, reset, TLS). The link is dead. */
  onError(err: Error, phase: LinkPhase): void;
  /** The broker closed the connection. The link is dead. */
  onClose(): void;
}

export class BrokerLink {
  readonly tls: boolean;
  /** "tcp://host:port" as the firmware asked, for messages. */
  readonly asked: string;
  private socket: Socket | undefined;
  private alive = true;
  private phase: LinkPhase = "connect";
  private readonly outbound = new MqttFramer();
  private readonly inbound = new MqttFramer();

  constructor(
    private readonly options: BrokerLinkOptions,
    private readonly handlers: BrokerLinkHandlers,
  ) {
    const { brokerUrl, requestedHost, requestedPort } = options;
    this.tls = brokerUrl.protocol === "mqtts:";
    this.asked = `${requestedPort < 0 ? "tls" : "tcp"}://${requestedHost}:${Math.abs(requestedPort)}`;
    const { host, port } = brokerAddress(brokerUrl);
    const socket = this.tls ? tlsConnect({ host, port, ...options.tls }) : createConnection({ host, port });
    socket.setNoDelay(true);
    this.socket = socket;
    socket.once("connect", () => {
      if (!this.alive) return;
      this.phase = this.tls ? "tls" : "io";
      handlers.onTcpConnect?.();
      if (!this.tls) this.opened();
    });
    if (this.tls) {
      socket.once("secureConnect", () => {
        if (!this.alive) return;
        this.phase = "io";
        this.opened();
      });
    }
    socket.on("data", (chunk: Buffer) => {
      if (this.alive) this.receive(chunk);
    });
    socket.on("error", (err) => {
      if (!this.alive) return;
      this.kill();
      handlers.onError(err, this.phase);
    });
    socket.on("close", () => {
      if (!this.alive) return;
      this.kill();
      handlers.onClose();
    });
  }

  get isAlive(): boolean {
    return this.alive;
  }

  /** Bytes of an inbound packet not complete yet (delivered raw by a model when the broker closes). */
  takeInboundPending(): Buffer {
    return this.inbound.takePending();
  }

  /** Sends device bytes; a PUBLISH may be cut (fault): onCut then runs inside this call. */
  write(bytes: Buffer): void {
    const socket = this.socket;
    if (!socket || !this.alive) return;
    this.options.counters.bytesOut += bytes.length;
    for (const frame of this.outbound.push(bytes)) {
      const packet = this.count(frame, "out");
      if (packet?.cmd === "publish") {
        const fault = this.options.faults.decide("cut-mid-publish");
        if (fault) {
          const sent = 1 + Math.floor(this.options.faults.detailUnit(fault) * (frame.length - 1));
          // end() after the partial write: the broker must really receive those bytes before the cut.
          this.kill(false);
          socket.end(frame.subarray(0, sent));
          this.cut({ ...fault, detail: sent }, `after ${sent}/${frame.length} bytes of a PUBLISH`);
          return;
        }
      }
      socket.write(frame);
    }
  }

  /** TCP back-pressure: stop reading (the broker stops sending once its window is full) / read again. */
  pause(): void {
    this.socket?.pause();
  }

  resume(): void {
    this.socket?.resume();
  }

  /** Graceful close (FIN after what was already written), as close(fd) / socket.end() do. No handler runs. */
  end(): void {
    const socket = this.socket;
    this.kill(false);
    socket?.end();
  }

  /** Drops the connection at once, telling nobody (deep sleep, power cut, a replaced socket). */
  destroy(): void {
    this.kill();
  }

  private opened(): void {
    this.options.counters.connections++;
    this.options.log(`net: ${this.asked} -> ${this.options.brokerUrl.host} connected`);
    this.handlers.onOpen();
  }

  private receive(chunk: Buffer): void {
    this.options.counters.bytesIn += chunk.length;
    for (const frame of this.inbound.push(chunk)) {
      const packet = this.count(frame, "in");
      const kind =
        packet?.cmd === "connack"
          ? "cut-before-connack"
          : packet?.cmd === "puback" || packet?.cmd === "pubcomp"
            ? "cut-before-ack"
            : undefined;
      const fault = kind && this.options.faults.decide(kind);
      if (fault) {
        this.kill();
        this.cut(fault, `dropped ${packet!.cmd}`);
        return;
      }
      if (this.handlers.onFrame(frame) === false || !this.alive) return;
    }
    this.handlers.onChunkEnd?.();
  }

  /** A fault: the connection dies like a reset by the peer. */
  private cut(fault: FaultRecord, what: string): void {
    this.options.faults.inject(fault);
    this.options.log(`net: FAULT ${fault.kind}: ${what}, connection cut`);
    this.handlers.onCut(fault);
  }

  private kill(destroy = true): void {
    this.alive = false;
    const socket = this.socket;
    this.socket = undefined;
    if (destroy) socket?.destroy();
  }

  private count(frame: Buffer, direction: "in" | "out"): Decoded | undefined {
    const counters = this.options.counters;
    const packet = decode(frame);
    if (!packet) {
      counters.unparsedBytes += frame.length;
      return undefined;
    }
    const table = direction === "out" ? counters.packetsOut : counters.packetsIn;
    table[packet.cmd] = (table[packet.cmd] ?? 0) + 1;
    if (direction === "out" && packet.cmd === "publish") {
      if (packet.dup) counters.dupPublishes++;
      else counters.publishesByQos[(packet.qos ?? 0) as 0 | 1 | 2]++;
      this.options.onPublish?.({
        topic: packet.topic ?? "",
        qos: packet.qos ?? 0,
        dup: packet.dup ?? false,
        bytes: frame.length,
        payload: Buffer.from(packet.payload ?? ""),
      });
    }
    return packet;
  }
}
