/**
 * The simulated network of one device. It replaces the VM's socket hooks (sockOpen/sockWrite/sockClose), so
 * the firmware's single TCP socket always reaches the fleet's broker URL, whatever host/port its settings
 * name (and TLS is done here, per the broker URL, as the WASM host would). It splits both directions into
 * MQTT packets (mqtt-packet decodes each one) to count bytes and packets and to inject faults exactly at
 * packet boundaries: before CONNACK, in the middle of a PUBLISH, before PUBACK/PUBCOMP.
 */
import { Socket, createConnection } from "node:net";
import { connect as tlsConnect } from "node:tls";
import mqttPacket from "mqtt-packet";
import type { DeviceFaults, FaultRecord } from "./faults.ts";
import { SOCK_EVENT, type VmInstance, readCString } from "./vm.ts";

/** Bytes and packets seen on the wire, per device (also summed per fleet). */
export interface WireCounters {
  connections: number;
  /** Socket errors the firmware was told about: refused connects, resets (not the injected cuts). */
  socketErrors: number;
  bytesOut: number;
  bytesIn: number;
  /** Per MQTT packet type name (connect, publish, puback, ...), device → broker. */
  packetsOut: Record<string, number>;
  /** Per MQTT packet type name, broker → device. */
  packetsIn: Record<string, number>;
  /** PUBLISHes from the device by QoS, retransmissions (DUP) excluded. */
  publishesByQos: [number, number, number];
  /** PUBLISHes from the device with DUP set. */
  dupPublishes: number;
  /** Bytes the network could not parse as MQTT (forwarded anyway). */
  unparsedBytes: number;
}

export function emptyWireCounters(): WireCounters {
  return {
    connections: 0,
    socketErrors: 0,
    bytesOut: 0,
    bytesIn: 0,
    packetsOut: {},
    packetsIn: {},
    publishesByQos: [0, 0, 0],
    dupPublishes: 0,
    unparsedBytes: 0,
  };
}

export function sumWireCounters(all: readonly WireCounters[]): WireCounters {
  const sum = emptyWireCounters();
  for (const c of all) {
    sum.connections += c.connections;
    sum.socketErrors += c.socketErrors;
    sum.bytesOut += c.bytesOut;
    sum.bytesIn += c.bytesIn;
    sum.dupPublishes += c.dupPublishes;
    sum.unparsedBytes += c.unparsedBytes;
    for (const q of [0, 1, 2] as const) sum.publishesByQos[q] += c.publishesByQos[q];
    for (const [k, n] of Object.entries(c.packetsOut)) sum.packetsOut[k] = (sum.packetsOut[k] ?? 0) + n;
    for (const [k, n] of Object.entries(c.packetsIn)) sum.packetsIn[k] = (sum.packetsIn[k] ?? 0) + n;
  }
  return sum;
}

/**
 * Splits a byte stream into whole MQTT control packets (fixed header: type byte + variable-length
 * "remaining length", MQTT 3.1.1 §2.2.3). Returns complete packets; keeps the tail for the next chunk.
 */
export class MqttFramer {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Buffer[] = [];
    for (;;) {
      const size = frameSize(this.pending);
      if (size === undefined || size > this.pending.length) break;
      frames.push(this.pending.subarray(0, size));
      this.pending = this.pending.subarray(size);
    }
    return frames;
  }

  get buffered(): number {
    return this.pending.length;
  }
}

function frameSize(buf: Buffer): number | undefined {
  let multiplier = 1;
  let remaining = 0;
  for (let i = 1; i <= 4; i++) {
    if (i >= buf.length) return undefined;
    const byte = buf[i]!;
    remaining += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return 1 + i + remaining;
    multiplier *= 128;
  }
  return 1 + 4 + remaining; // malformed length: let mqtt-packet report it on the bytes we have
}

interface Decoded {
  cmd: string;
  qos?: number;
  dup?: boolean;
  topic?: string;
}

/** Decodes exactly one framed packet with mqtt-packet; undefined when it is not valid MQTT 3.1.1. */
function decode(frame: Buffer): Decoded | undefined {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  let packet: Decoded | undefined;
  parser.on("packet", (p: mqttPacket.Packet) => {
    packet = p as Decoded;
  });
  parser.on("error", () => {
    packet = undefined;
  });
  parser.parse(frame);
  return packet;
}

export interface DeviceNetworkOptions {
  brokerUrl: URL;
  faults: DeviceFaults;
  counters: WireCounters;
  /** Human-readable network events (connects, cuts), for the device log. */
  log: (line: string) => void;
  /** Every PUBLISH the device sends (before any fault decision). */
  onPublish?: (publish: { topic: string; qos: number; dup: boolean; bytes: number }) => void;
  /** Accept self-signed broker certificates for mqtts:// (tests). Default true: it is a simulator. */
  tlsInsecure?: boolean;
}

/**
 * One device's network. `attach(vm)` points a fresh VM instance's socket hooks here; `detach()` drops the
 * connection silently (deep sleep or power cut: the VM is gone, nobody is told).
 */
export class DeviceNetwork {
  private vm: VmInstance | undefined;
  private socket: Socket | undefined;
  private outbound = new MqttFramer();
  private inbound = new MqttFramer();

  constructor(private readonly options: DeviceNetworkOptions) {}

  attach(vm: VmInstance): void {
    this.detach();
    this.vm = vm;
    vm.sockIsAvailable = () => true;
    vm.sockOpen = (hostPtr, port) => this.open(vm, readCString(vm, hostPtr), port);
    vm.sockWrite = (ptr, length) => this.write(vm, ptr, length);
    vm.sockClose = () => this.close(vm);
  }

  detach(): void {
    this.dropSocket();
    this.vm = undefined;
  }

  private open(vm: VmInstance, requestedHost: string, requestedPort: number): number {
    this.dropSocket();
    const { brokerUrl } = this.options;
    const tls = brokerUrl.protocol === "mqtts:";
    const host = brokerUrl.hostname.replace(/^\[|\]$/g, "");
    const port = Number(brokerUrl.port || (tls ? 8883 : 1883));
    const asked = `${requestedPort < 0 ? "tls" : "tcp"}://${requestedHost}:${Math.abs(requestedPort)}`;
    const socket = tls
      ? tlsConnect({ host, port, rejectUnauthorized: !(this.options.tlsInsecure ?? true) })
      : createConnection({ host, port });
    socket.setNoDelay(true);
    this.socket = socket;
    this.outbound = new MqttFramer();
    this.inbound = new MqttFramer();
    const current = () => this.socket === socket && this.vm === vm;
    socket.once(tls ? "secureConnect" : "connect", () => {
      if (!current()) return;
      this.options.counters.connections++;
      this.options.log(`net: ${asked} -> ${brokerUrl.host} connected`);
      this.emit(vm, SOCK_EVENT.open);
    });
    socket.on("data", (chunk: Buffer) => {
      if (current()) this.receive(vm, chunk);
    });
    socket.on("error", (err) => {
      if (!current()) return;
      this.options.counters.socketErrors++;
      this.socket = undefined;
      this.emit(vm, SOCK_EVENT.error, `${asked}: ${err.message}`);
    });
    socket.on("close", () => {
      if (!current()) return;
      this.socket = undefined;
      this.emit(vm, SOCK_EVENT.close);
    });
    return 0;
  }

  private write(vm: VmInstance, ptr: number, length: number): number {
    const socket = this.socket;
    if (!socket || this.vm !== vm) return -10; // same code as the stock glue: no open socket
    const bytes = Buffer.from(vm.HEAPU8.slice(ptr, ptr + length));
    this.options.counters.bytesOut += bytes.length;
    for (const frame of this.outbound.push(bytes)) {
      const packet = this.count(frame, "out");
      if (packet?.cmd === "publish") {
        const fault = this.options.faults.decide("cut-mid-publish");
        if (fault) {
          const sent = 1 + Math.floor(this.options.faults.detailUnit(fault) * (frame.length - 1));
          // end() after the partial write: the broker must really receive those bytes before the cut.
          this.socket = undefined;
          socket.end(frame.subarray(0, sent));
          this.cut(vm, { ...fault, detail: sent }, `after ${sent}/${frame.length} bytes of a PUBLISH`);
          return 0; // the write "succeeded" locally: the device learns of the cut from the socket error
        }
      }
      socket.write(frame);
    }
    return 0;
  }

  private receive(vm: VmInstance, chunk: Buffer): void {
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
        this.cut(vm, fault, `dropped ${packet!.cmd}`);
        return;
      }
      this.emit(vm, SOCK_EVENT.message, frame);
      if (this.vm !== vm || !this.socket) return; // the firmware closed the socket while handling it
    }
  }

  private close(vm: VmInstance): number {
    if (!this.socket || this.vm !== vm) return -10;
    const socket = this.socket;
    this.socket = undefined;
    socket.end();
    return 0;
  }

  /**
   * A fault: the connection dies like a reset by the peer; the device sees a socket error. Told on the next
   * turn: a cut during sockWrite happens inside the VM's own call, and the VM must not be re-entered.
   */
  private cut(vm: VmInstance, fault: FaultRecord, what: string): void {
    this.options.faults.inject(fault);
    this.options.log(`net: FAULT ${fault.kind}: ${what}, connection cut`);
    this.dropSocket();
    setImmediate(() => {
      if (!this.socket) this.emit(vm, SOCK_EVENT.error, `ECONNRESET (simulated ${fault.kind})`);
    });
  }

  private dropSocket(): void {
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
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
      });
    }
    return packet;
  }

  /** Delivers a socket event into the VM (the glue's own sockOpen does the same through its `cb`). */
  private emit(vm: VmInstance, kind: number, payload?: string | Buffer): void {
    if (this.vm !== vm) return;
    const bytes = typeof payload === "string" ? Buffer.from(`${payload}\u0000`, "utf8") : payload;
    let ptr = 0;
    if (bytes && bytes.length > 0) {
      ptr = vm._malloc(bytes.length);
      vm.HEAPU8.set(bytes, ptr);
    }
    const length = typeof payload === "string" ? bytes!.length - 1 : (bytes?.length ?? 0);
    try {
      vm._jd_em_tcpsock_on_event(kind, ptr, length);
    } finally {
      if (ptr) vm._free(ptr);
    }
  }
}
