/**
 * MQTT on the simulated wire: the per-device byte/packet counters, the framer that splits a byte stream into
 * whole MQTT control packets, and the decoder (mqtt-packet) the network uses to count packets and to find the
 * packet boundaries where faults are injected. network.ts re-exports the public names.
 */
import mqttPacket from "mqtt-packet";

/** Bytes and packets seen on the wire, per device (also summed per fleet). */
export interface WireCounters {
  connections: number;
  /** Socket errors the firmware was told about: refused connects, resets (not the injected cuts). */
  socketErrors: number;
  /** Bytes that left the device's network (esp32 profile: when the socket worker wrote them). */
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
  /**
   * esp32 profile: bytes the firmware wrote that never left the board: still in the socket worker's queue
   * when the socket was closed (by the firmware, the broker or a cut) or the device slept / lost power
   * (devicescript-esp32 main/sock.c: close() does not flush the queue; process_write drops writes once
   * sock_fd is 0). Not in bytesOut.
   */
  discardedBytes: number;
  /** MQTT packets (whole or partial) among discardedBytes. */
  discardedPackets: number;
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
    discardedBytes: 0,
    discardedPackets: 0,
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
    // `?? 0`: counters objects made before these fields existed (a caller's own literal) still sum.
    sum.discardedBytes += c.discardedBytes ?? 0;
    sum.discardedPackets += c.discardedPackets ?? 0;
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

  /** Takes the bytes of the incomplete packet held back so far (e.g. to deliver them when the peer closes). */
  takePending(): Buffer {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    return rest;
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

export interface Decoded {
  cmd: string;
  qos?: number;
  dup?: boolean;
  topic?: string;
  /** PUBLISH: the application message (mqtt-packet gives a Buffer, or a string for an empty one). */
  payload?: Buffer | string;
}

/** Decodes exactly one framed packet with mqtt-packet; undefined when it is not valid MQTT 3.1.1. */
export function decode(frame: Buffer): Decoded | undefined {
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

/** MQTT 3.1.1 §3.14: DISCONNECT is the fixed header 0xE0 0x00. */
export const DISCONNECT_BYTE = 0xe0;

/** What a run of never-sent writes held: packets (a trailing partial one counts) and whether DISCONNECT was one. */
export function describeDiscarded(writes: readonly Buffer[]): { bytes: number; packets: number; disconnect: boolean } {
  const framer = new MqttFramer();
  let bytes = 0;
  let packets = 0;
  let disconnect = false;
  for (const w of writes) {
    bytes += w.length;
    for (const frame of framer.push(w)) {
      packets++;
      if (frame[0] === DISCONNECT_BYTE) disconnect = true;
    }
  }
  if (framer.buffered > 0) packets++;
  return { bytes, packets, disconnect };
}
