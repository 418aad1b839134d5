/**
 * Hostile MQTT 3.1.1 input for the embedded broker: raw TCP sockets and bytes built here (mqtt-packet only
 * builds valid packets that the "mutated" category then corrupts). Each case is drawn from its own seed
 * (see run.ts), carries the bytes it sends, and reports one outcome:
 *
 *   closed       the broker closed the connection after the hostile bytes
 *   refused:N    CONNACK with return code N (then closed)
 *   answered     the broker answered the hostile packet (CONNACK 0, SUBACK, PUBACK, PUBREC, PUBCOMP...)
 *                and the connection still answers PINGREQ
 *   ignored      no answer to the hostile packet, but the connection still answers PINGREQ
 *   closed-idle  an incomplete packet (or silence): the broker closed the connection after its
 *                keepalive (1.5 x) or connect timeout, as it should
 *   pending      incomplete input, still open when this side gave up (short runs do not wait 30 s)
 *   client-closed  this side closed or reset the socket on purpose (RST, FIN)
 *
 * A case "hangs" (a failure) when the broker neither answers nor closes a complete packet within
 * the answer timeout, or keeps a connection with an incomplete packet open past its keepalive.
 * `must` lists the outcomes MQTT 3.1.1 requires (with its rule id); others are counted as
 * non-conformant, printed, not failed (they are broker behaviour to decide on, not crashes).
 */
import { connect as tcpConnect, type Socket } from "node:net";
import mqttPacket, { type Packet } from "mqtt-packet";
import type { Rng } from "./prng.ts";

export interface MqttTarget {
  host: string;
  port: number;
}

export interface CaseContext {
  target: MqttTarget;
  /** Long runs wait for the broker's 30 s connect timeout and send the biggest payloads. */
  long: boolean;
  /** Answer timeout for a complete packet. */
  answerMs: number;
}

export interface MqttCaseResult {
  outcome: string;
  /** Hostile packets this case sent (a storm or a flood sends many). */
  packets: number;
  /** Set when the broker hung (failure). */
  hang?: string;
  detail?: string;
}

export interface MqttCase {
  index: number;
  seed: number;
  category: string;
  label: string;
  /** What the case sends after its setup (for the replay line; may be a prefix). */
  wire: Buffer;
  /** Outcomes MQTT 3.1.1 requires, and the rule. */
  must?: { outcomes: string[]; rule: string };
  /** Ignore this case when counting conformance (known broker issue owned elsewhere). */
  known?: string;
  run(ctx: CaseContext): Promise<MqttCaseResult>;
}

// ---------------------------------------------------------------------------------------------
// Wire encoding, by hand: lengths and flags are whatever the case says, valid or not.

export const T = { CONNECT: 1, CONNACK: 2, PUBLISH: 3, PUBACK: 4, PUBREC: 5, PUBREL: 6, PUBCOMP: 7, SUBSCRIBE: 8, SUBACK: 9, UNSUBSCRIBE: 10, UNSUBACK: 11, PINGREQ: 12, PINGRESP: 13, DISCONNECT: 14 } as const;

export const MAX_REMAINING_LENGTH = 268_435_455; // 4-byte variable byte integer, MQTT 3.1.1 §2.2.3

export function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

const bytesOf = (s: string | Buffer): Buffer => (typeof s === "string" ? Buffer.from(s, "utf8") : s);
const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
/** A length-prefixed MQTT string (the prefix is the real byte length, mod 2^16). */
const mstr = (s: string | Buffer): Buffer => {
  const b = bytesOf(s);
  return Buffer.concat([u16(b.length & 0xffff), b]);
};

/** Fixed header + body; `length` overrides the remaining-length bytes. */
export const packet = (first: number, body: Buffer, length?: Buffer): Buffer =>
  Buffer.concat([Buffer.from([first & 0xff]), length ?? varint(body.length), body]);

export interface ConnectFields {
  clientId: string | Buffer;
  clean?: boolean;
  keepalive?: number;
  username?: string | Buffer;
  password?: string | Buffer;
  will?: { topic: string | Buffer; payload: Buffer | string; qos?: number; retain?: boolean };
  level?: number;
  name?: string | Buffer;
  /** Replaces the computed connect flags byte. */
  flags?: number;
  first?: number;
}

export function connectPacket(f: ConnectFields): Buffer {
  let flags = 0;
  if (f.clean ?? true) flags |= 0x02;
  if (f.will) flags |= 0x04 | ((f.will.qos ?? 0) & 3) << 3 | (f.will.retain ? 0x20 : 0);
  if (f.password !== undefined) flags |= 0x40;
  if (f.username !== undefined) flags |= 0x80;
  const parts = [mstr(f.name ?? "MQTT"), Buffer.from([f.level ?? 4, f.flags ?? flags]), u16(f.keepalive ?? 30), mstr(f.clientId)];
  if (f.will) parts.push(mstr(f.will.topic), mstr(f.will.payload));
  if (f.username !== undefined) parts.push(mstr(f.username));
  if (f.password !== undefined) parts.push(mstr(f.password));
  return packet(f.first ?? 0x10, Buffer.concat(parts));
}

export interface PublishFields {
  topic: string | Buffer;
  payload?: Buffer | string;
  qos?: number;
  retain?: boolean;
  dup?: boolean;
  id?: number;
  first?: number;
}

export function publishPacket(f: PublishFields): Buffer {
  const qos = f.qos ?? 0;
  const first = f.first ?? (0x30 | ((qos & 3) << 1) | (f.retain ? 1 : 0) | (f.dup ? 8 : 0));
  const parts = [mstr(f.topic)];
  if (qos > 0) parts.push(u16(f.id ?? 1));
  parts.push(bytesOf(f.payload ?? ""));
  return packet(first, Buffer.concat(parts));
}

export const subscribePacket = (id: number, filters: Array<[string | Buffer, number]>, first = 0x82): Buffer =>
  packet(first, Buffer.concat([u16(id), ...filters.flatMap(([t, q]) => [mstr(t), Buffer.from([q & 0xff])])]));

export const unsubscribePacket = (id: number, filters: Array<string | Buffer>, first = 0xa2): Buffer =>
  packet(first, Buffer.concat([u16(id), ...filters.map(mstr)]));

export const ackPacket = (type: number, id: number, flags = type === T.PUBREL ? 2 : 0): Buffer =>
  packet((type << 4) | flags, u16(id));

export const PINGREQ = Buffer.from([0xc0, 0x00]);
export const DISCONNECT = Buffer.from([0xe0, 0x00]);

// ---------------------------------------------------------------------------------------------
// A raw connection: collects what the broker sends, knows who closed.

export interface Incoming {
  type: number;
  flags: number;
  body: Buffer;
}

export class MqttConn {
  readonly received: Incoming[] = [];
  /** The broker closed (or reset) the connection. */
  serverClosed = false;
  closed = false;
  private buf: Buffer = Buffer.alloc(0);
  private readonly listeners = new Set<() => void>();
  private destroyedByUs = false;

  private constructor(readonly socket: Socket) {
    socket.on("data", (d: Buffer) => this.feed(d));
    socket.on("error", () => undefined); // resets are part of the game
    socket.on("close", () => {
      this.closed = true;
      if (!this.destroyedByUs) this.serverClosed = true;
      this.notify();
    });
    socket.on("end", () => {
      // The broker sent FIN; close our side too (the server does not allow half-open).
      if (!this.destroyedByUs) this.serverClosed = true;
      socket.destroy();
    });
  }

  static open(target: MqttTarget, timeoutMs = 10_000): Promise<MqttConn> {
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ host: target.host, port: target.port });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`TCP connect to the broker took over ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve(new MqttConn(socket));
      });
      socket.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  send(bytes: Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes);
  }

  /** Writes and resolves once the socket took the bytes (true) or failed or closed (false). */
  sendAll(bytes: Buffer): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.socket.destroyed || !this.socket.writable) return resolve(false);
      const onClose = () => resolve(false);
      this.socket.once("close", onClose);
      this.socket.write(bytes, (err) => {
        this.socket.off("close", onClose);
        resolve(!err);
      });
    });
  }

  /** Resolves true once `check()` holds, false after `timeoutMs` (re-checked on every packet and on close). */
  until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const listener = () => {
        if (check()) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (v: boolean) => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(v);
      };
      this.listeners.add(listener);
    });
  }

  count(type: number): number {
    let n = 0;
    for (const p of this.received) if (p.type === type) n++;
    return n;
  }

  /** Waits for `n` packets of `type` (in total), or the close, or the timeout. */
  async waitFor(type: number, timeoutMs: number, n = 1): Promise<"packet" | "closed" | "timeout"> {
    await this.until(() => this.count(type) >= n || this.closed, timeoutMs);
    if (this.count(type) >= n) return "packet";
    return this.closed ? "closed" : "timeout";
  }

  /** A valid CONNECT; resolves with the CONNACK return code, "closed" or "timeout". */
  async handshake(fields: ConnectFields, timeoutMs: number): Promise<number | "closed" | "timeout"> {
    this.send(connectPacket(fields));
    const r = await this.waitFor(T.CONNACK, timeoutMs);
    if (r !== "packet") return r;
    return this.received.find((p) => p.type === T.CONNACK)!.body[1] ?? -1;
  }

  /** PINGREQ twice, one after the other: the second is surely parsed after whatever came before. */
  async alive(timeoutMs: number): Promise<"alive" | "closed" | "timeout"> {
    for (let i = 1; i <= 2; i++) {
      const before = this.count(T.PINGRESP);
      this.send(PINGREQ);
      const r = await this.waitFor(T.PINGRESP, timeoutMs, before + 1);
      if (r !== "packet") return r;
    }
    return "alive";
  }

  /** Closed by the broker within `timeoutMs`? */
  async closesWithin(timeoutMs: number): Promise<boolean> {
    await this.until(() => this.closed, timeoutMs);
    return this.closed;
  }

  pause(): void {
    this.socket.pause();
  }

  destroy(): void {
    if (!this.closed) this.destroyedByUs = true;
    this.socket.destroy();
  }

  reset(): void {
    if (!this.closed) this.destroyedByUs = true;
    if (typeof this.socket.resetAndDestroy === "function") this.socket.resetAndDestroy();
    else this.socket.destroy();
  }

  /** FIN from our side, still reading. */
  end(): void {
    this.socket.end();
  }

  private feed(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (this.buf.length < 2) break;
      let len = 0;
      let mul = 1;
      let i = 1;
      let complete = false;
      for (; i < Math.min(this.buf.length, 5); i++) {
        len += (this.buf[i] & 0x7f) * mul;
        mul *= 128;
        if ((this.buf[i] & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || this.buf.length < i + 1 + len) break;
      const first = this.buf[0];
      // Keep only the start of big bodies (PUBLISHes to a flooding subscriber): this side only counts them.
      const keep = first >> 4 === T.PUBLISH ? Math.min(len, 4096) : len;
      this.received.push({ type: first >> 4, flags: first & 0xf, body: Buffer.from(this.buf.subarray(i + 1, i + 1 + keep)) });
      this.buf = this.buf.subarray(i + 1 + len);
    }
    this.notify();
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}

// ---------------------------------------------------------------------------------------------
// Case shapes shared by the categories.

const must = (rule: string, outcomes: string[] = ["closed"]) => ({ outcomes, rule });

interface AfterConnect {
  /** The broker's answer that counts as "answered" (type, and how many). */
  answer?: { type: number; n?: number; check?: (got: Incoming[]) => string | undefined };
  /** The bytes end mid-packet: expect a close after the keepalive, no PINGREQ sentinel. */
  incomplete?: boolean;
  keepalive?: number;
  clean?: boolean;
  /** Close this way instead of plain destroy. */
  finish?: "reset" | "fin";
  packets?: number;
}

const clientIdFor = (c: { seed: number; index: number }) => `hx${c.seed.toString(36)}-${c.index}`;

/** First byte and body of an encoded packet (whatever its length bytes). */
function split(p: Buffer): { first: number; body: Buffer } {
  let i = 1;
  while (p[i] & 0x80) i++;
  return { first: p[0], body: p.subarray(i + 1) };
}

/** CONNECT (valid), then the hostile bytes, then PINGREQ twice to see whether the connection survived. */
async function afterConnect(ctx: CaseContext, c: { seed: number; index: number }, bytes: Buffer, o: AfterConnect = {}): Promise<MqttCaseResult> {
  const packets = o.packets ?? 1;
  const keepalive = o.keepalive ?? (o.incomplete ? 1 : 30);
  const conn = await MqttConn.open(ctx.target);
  try {
    const rc = await conn.handshake({ clientId: clientIdFor(c), clean: o.clean ?? true, keepalive }, ctx.answerMs);
    if (rc !== 0) return { outcome: `setup:${rc}`, packets: 0, hang: `a valid CONNECT got ${rc === "timeout" ? "no CONNACK" : rc === "closed" ? "closed" : `CONNACK ${rc}`}` };
    const connacks = conn.count(T.CONNACK);
    await conn.sendAll(bytes);
    if (o.incomplete) {
      // MQTT-3.1.2-24: no complete packet within 1.5 x keepalive -> the server closes the connection.
      if (await conn.closesWithin(keepalive * 1500 + ctx.answerMs)) return { outcome: "closed-idle", packets };
      return { outcome: "pending", packets, hang: `an incomplete packet kept the connection open past 1.5 x keepalive (${keepalive} s)` };
    }
    let answered = false;
    let detail: string | undefined;
    if (o.answer) {
      const r = await conn.waitFor(o.answer.type, ctx.answerMs, (o.answer.type === T.CONNACK ? connacks : 0) + (o.answer.n ?? 1));
      if (r === "closed") return finishWith(conn, o, { outcome: "closed", packets });
      answered = r === "packet";
      if (answered && o.answer.check) detail = o.answer.check(conn.received);
    }
    const alive = await conn.alive(ctx.answerMs);
    if (alive === "closed") return finishWith(conn, o, { outcome: "closed", packets, detail });
    if (alive === "timeout") return { outcome: "no-answer", packets, hang: "neither answered nor closed after a complete packet and PINGREQ" };
    return finishWith(conn, o, { outcome: answered ? "answered" : "ignored", packets, detail });
  } finally {
    conn.destroy();
  }
}

function finishWith(conn: MqttConn, o: AfterConnect, r: MqttCaseResult): MqttCaseResult {
  if (o.finish === "reset") conn.reset();
  else if (o.finish === "fin") conn.end();
  return r;
}

/** Hostile bytes as the first thing on the connection. */
async function beforeConnect(ctx: CaseContext, bytes: Buffer, o: { complete: boolean; waitIdle?: boolean }): Promise<MqttCaseResult> {
  const conn = await MqttConn.open(ctx.target);
  try {
    await conn.sendAll(bytes);
    if (o.complete) {
      // A complete packet other than CONNECT must close the connection; a complete CONNECT must get a CONNACK.
      await conn.until(() => conn.closed || conn.count(T.CONNACK) > 0, ctx.answerMs);
      if (conn.count(T.CONNACK)) {
        const outcome = refusedOrAnswered(conn);
        if (outcome !== "answered") return { outcome, packets: 1 };
        const alive = await conn.alive(ctx.answerMs);
        if (alive === "timeout") return { outcome: "no-answer", packets: 1, hang: "CONNACK 0, then PINGREQ neither answered nor closed" };
        return { outcome: alive === "alive" ? "answered" : "closed", packets: 1 };
      }
      if (conn.closed) return { outcome: "closed", packets: 1 };
      return { outcome: "no-answer", packets: 1, hang: "a complete first packet was neither answered nor closed" };
    }
    if (o.waitIdle) {
      // aedes' connectTimeout: 30 s without a CONNECT closes the socket.
      if (await conn.closesWithin(30_000 + ctx.answerMs)) return { outcome: conn.count(T.CONNACK) ? refusedOrAnswered(conn) : "closed-idle", packets: 1 };
      return { outcome: "pending", packets: 1, hang: "a connection without a complete CONNECT outlived the 30 s connect timeout" };
    }
    // Short runs: look briefly, then give up.
    if (await conn.closesWithin(200)) return { outcome: conn.count(T.CONNACK) ? refusedOrAnswered(conn) : "closed", packets: 1 };
    return { outcome: conn.count(T.CONNACK) ? refusedOrAnswered(conn) : "pending", packets: 1 };
  } finally {
    conn.destroy();
  }
}

function refusedOrAnswered(conn: MqttConn): string {
  const rc = conn.received.find((p) => p.type === T.CONNACK)!.body[1];
  return rc === 0 ? "answered" : `refused:${rc}`;
}

// ---------------------------------------------------------------------------------------------
// Building blocks for hostile fields.

const INVALID_UTF8: Buffer[] = [
  Buffer.from([0xc3, 0x28]), // bad continuation
  Buffer.from([0xff]),
  Buffer.from([0xfe, 0xfe]),
  Buffer.from([0x80]), // lone continuation byte
  Buffer.from([0xed, 0xa0, 0x80]), // UTF-16 surrogate D800 encoded
  Buffer.from([0xc0, 0xaf]), // overlong "/"
  Buffer.from([0xe0, 0x80, 0xaf]), // overlong "/"
  Buffer.from([0xf4, 0x90, 0x80, 0x80]), // above U+10FFFF
  Buffer.from([0xe2, 0x82]), // truncated
];

const word = (r: Rng, min = 1, max = 8) => r.word("abcdefghijklmnopqrstuvwxyz0123456789-_", min, max);

function topicWith(r: Rng, middle: Buffer): Buffer {
  const prefix = r.pick(["sensors/", "hostile/", "", "sensors/hx-1/"]);
  const suffix = r.pick(["", "/telemetry", "/x", "/status"]);
  return Buffer.concat([Buffer.from(prefix), Buffer.from(word(r, 0, 4)), middle, Buffer.from(word(r, 0, 4) + suffix)]);
}

/** Device payloads: near-valid telemetry with one field broken, random JSON, junk (docs/protocol.md shapes). */
export function hostilePayload(r: Rng): Buffer {
  const base = { v: 1, seq: r.int(1000), boot: 1, t: null as unknown, readings: { temperature: 21.5 } as unknown, battery: 3.7 as unknown };
  const variant = r.int(12);
  switch (variant) {
    case 0: {
      const field = r.pick(["v", "seq", "boot", "t", "age", "battery", "dropped", "corrupt"]);
      const value = r.pick<unknown>([-1, 1.5, 2 ** 32, 2 ** 53, "1", null, true, [], {}, 1e308, -0, 34_560_000_001]);
      return Buffer.from(JSON.stringify({ ...base, [field]: value }));
    }
    case 1: {
      const n = r.pick([0, 16, 17, 40]);
      const readings = Object.fromEntries(Array.from({ length: n }, (_, i) => [r.chance(0.8) ? `k${i}` : r.pick(["Temp", "1a", "__proto__", "constructor", "", "a".repeat(33), "ü"]), r.pick<unknown>([i, "x", null, 1e308])]));
      return Buffer.from(JSON.stringify({ ...base, readings }));
    }
    case 2:
      return Buffer.from(`{"v":1,"seq":1,"boot":1,"t":null,"readings":{"temperature":1e999},"battery":null}`); // Infinity
    case 3:
      return Buffer.from(r.pick(["", " ", "null", "0", "[]", "{}", '"x"', "{", '{"v":1', "\u0000", "true"]));
    case 4: {
      const depth = r.range(10, 500);
      return Buffer.from("[".repeat(depth) + "]".repeat(r.chance(0.5) ? depth : depth - 1));
    }
    case 5:
      return Buffer.from('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"v":1}');
    case 6:
      return Buffer.concat([Buffer.from('{"v":1,"seq":1,"boot":1,"t":null,"readings":{"t":1},"battery":null,"x":"'), r.pick(INVALID_UTF8), Buffer.from('"}')]);
    case 7:
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(base))]); // BOM
    case 8:
      return r.bytes(r.range(1, 1100));
    case 9:
      return Buffer.from(JSON.stringify({ v: 1, state: r.pick(["online", "sleeping", "offline", "dreaming", ""]), sleepMs: r.pick<unknown>([-1, 1.5, "5", 2 ** 32, undefined]) }));
    case 10:
      return Buffer.from(JSON.stringify({ v: 1, id: r.pick(["", "c-1", "x".repeat(41), "../../x", "c\u0000"]), op: r.pick(["ping", "x".repeat(50), 1]), ok: r.pick<unknown>([true, "yes", null]) }));
    default:
      // valid (stored): a small fixed pool of ids keeps the device table bounded
      return Buffer.from(JSON.stringify({ ...base, seq: r.int(2 ** 32), readings: { temperature: r.float() * 40 } }));
  }
}

/** A valid packet from mqtt-packet (the corruption base for "mutated"). */
function validPacket(r: Rng): Buffer {
  const id = r.range(1, 65535);
  const p: Packet = r.pick<Packet>([
    { cmd: "publish", topic: `hostile/${word(r)}`, payload: Buffer.from(word(r, 0, 40)), qos: 0, retain: false, dup: false } as Packet,
    { cmd: "publish", topic: `sensors/hx-${r.int(8)}/telemetry`, payload: hostilePayload(r), qos: 1, messageId: id, retain: false, dup: false } as Packet,
    { cmd: "publish", topic: `hostile/${word(r)}`, payload: Buffer.from("x"), qos: 2, messageId: id, retain: false, dup: false } as Packet,
    { cmd: "subscribe", messageId: id, subscriptions: [{ topic: `hostile/${word(r)}/+`, qos: r.int(3) as 0 | 1 | 2 }] } as Packet,
    { cmd: "unsubscribe", messageId: id, unsubscriptions: [`hostile/${word(r)}`] } as Packet,
    { cmd: "puback", messageId: id } as Packet,
    { cmd: "pubrel", messageId: id } as Packet,
    { cmd: "pingreq" } as Packet,
  ]);
  return mqttPacket.generate(p);
}

function mutate(r: Rng, b: Buffer): Buffer {
  let out = Buffer.from(b);
  for (let n = r.range(1, 4); n > 0; n--) {
    const at = r.int(Math.max(out.length, 1));
    switch (r.int(5)) {
      case 0:
        if (out.length) out[at] ^= 1 << r.int(8);
        break;
      case 1:
        if (out.length) out[at] = r.int(256);
        break;
      case 2:
        out = Buffer.concat([out.subarray(0, at), Buffer.from([r.int(256)]), out.subarray(at)]);
        break;
      case 3:
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
        break;
      default:
        out = out.subarray(0, at);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The categories. Each draws its parameters from `r` (the case's own seed) and returns a case.

type Make = (r: Rng, c: { seed: number; index: number }, long: boolean) => Omit<MqttCase, "index" | "seed" | "category">;

const cat = {
  "remaining length: 5-byte varint": ((r, c) => {
    const first = r.pick([0x30, 0x32, 0x82, 0xc0, 0xa2, 0x62]);
    const wire = Buffer.concat([Buffer.from([first, 0xff, 0xff, 0xff, 0xff, r.range(0x01, 0x7f)]), r.bytes(r.range(0, 32))]);
    const pre = r.chance(0.3);
    return {
      label: `${pre ? "before CONNECT" : "after CONNECT"}, first byte 0x${first.toString(16)}`,
      wire,
      must: must("MQTT-2.2.3 (at most 4 length bytes)"),
      run: (ctx) => (pre ? beforeConnect(ctx, wire, { complete: true }) : afterConnect(ctx, c, wire)),
    };
  }) as Make,

  "remaining length: too long": ((r, c) => {
    const { first, body } = split(publishPacket({ topic: `hostile/${word(r)}`, payload: word(r, 0, 20), qos: r.int(2), id: r.range(1, 65535) }));
    const declared = r.chance(0.2) ? MAX_REMAINING_LENGTH : body.length + r.range(1, 2000);
    const wire = packet(first, body, varint(declared));
    return {
      label: `PUBLISH declares ${declared} bytes, sends ${body.length}, then idles (keepalive 1 s)`,
      wire,
      must: must("MQTT-3.1.2-24 (keepalive)", ["closed-idle"]),
      run: (ctx) => afterConnect(ctx, c, wire, { incomplete: true }),
    };
  }) as Make,

  "remaining length: too short": ((r, c) => {
    const full = r.chance(0.5)
      ? publishPacket({ topic: `hostile/${word(r)}`, payload: word(r, 4, 40), qos: r.int(3), id: r.range(1, 65535) })
      : subscribePacket(r.range(1, 65535), [[`hostile/${word(r)}/#`, 1]]);
    const { body } = split(full);
    const bodyLen = body.length;
    const declared = r.int(bodyLen);
    const wire = Buffer.concat([Buffer.from([full[0]]), varint(declared), body]);
    return {
      label: `0x${full[0].toString(16)} declares ${declared} of ${bodyLen} bytes; the rest follows as junk`,
      wire,
      // The junk after the short packet may itself start a long packet: then the keepalive (1 s) must close it.
      run: (ctx) => afterConnect(ctx, c, wire, { keepalive: 1 }),
    };
  }) as Make,

  "QoS 3 PUBLISH": ((r, c) => {
    const wire = publishPacket({ topic: `hostile/${word(r)}`, payload: word(r, 0, 20), qos: 3, id: r.range(1, 65535), retain: r.chance(0.3), dup: r.chance(0.3) });
    const pre = r.chance(0.2);
    return {
      label: `${pre ? "before" : "after"} CONNECT, first byte 0x${wire[0].toString(16)}`,
      wire,
      must: must("MQTT-3.3.1-4"),
      run: (ctx) => (pre ? beforeConnect(ctx, wire, { complete: true }) : afterConnect(ctx, c, wire)),
    };
  }) as Make,

  "wildcard in PUBLISH topic": ((r, c) => {
    const topic = r.pick(["sensors/+/telemetry", "sensors/#", "#", "+", "hostile/a+b", "hostile/a#", "+/+", "sensors/hx-1/telemetry/#", "hostile/#/x", `hostile/${word(r)}/+`]);
    const qos = r.int(3);
    const wire = publishPacket({ topic, payload: '{"v":1}', qos, id: r.range(1, 65535) });
    return {
      label: `topic ${JSON.stringify(topic)} QoS ${qos}`,
      wire,
      must: must("MQTT-3.3.2-2"),
      run: (ctx) => afterConnect(ctx, c, wire, qos ? { answer: { type: qos === 1 ? T.PUBACK : T.PUBREC } } : {}),
    };
  }) as Make,

  "invalid UTF-8 in topic": ((r, c) => {
    const bad = r.pick(INVALID_UTF8);
    const topic = topicWith(r, bad);
    const subscribe = r.chance(0.3);
    const qos = r.int(2);
    const wire = subscribe ? subscribePacket(r.range(1, 65535), [[topic, 0]]) : publishPacket({ topic, payload: "{}", qos, id: r.range(1, 65535) });
    return {
      label: `${subscribe ? "SUBSCRIBE filter" : `PUBLISH QoS ${qos} topic`} with bytes ${bad.toString("hex")}`,
      wire,
      must: must("MQTT-1.5.3-1"),
      run: (ctx) => afterConnect(ctx, c, wire, subscribe ? { answer: { type: T.SUBACK } } : qos ? { answer: { type: T.PUBACK } } : {}),
    };
  }) as Make,

  "U+0000 in topic": ((r, c) => {
    const topic = topicWith(r, Buffer.from([0]));
    const subscribe = r.chance(0.3);
    const qos = r.int(2);
    const wire = subscribe ? subscribePacket(r.range(1, 65535), [[topic, 0]]) : publishPacket({ topic, payload: "{}", qos, id: r.range(1, 65535) });
    return {
      label: `${subscribe ? "SUBSCRIBE filter" : `PUBLISH QoS ${qos} topic`} ${JSON.stringify(topic.toString("latin1"))}`,
      wire,
      must: must("MQTT-1.5.3-2"),
      run: (ctx) => afterConnect(ctx, c, wire, subscribe ? { answer: { type: T.SUBACK } } : qos ? { answer: { type: T.PUBACK } } : {}),
    };
  }) as Make,

  "hostile client id": ((r, c) => {
    const kind = r.pick(["invalid-utf8", "nul", "long", "wildcards", "empty-clean", "empty-persistent", "dollar"] as const);
    const base = clientIdFor(c);
    const clientId =
      kind === "invalid-utf8" ? Buffer.concat([Buffer.from(base), r.pick(INVALID_UTF8)])
      : kind === "nul" ? Buffer.from(`${base}\u0000x`)
      : kind === "long" ? Buffer.from(base + "x".repeat(r.pick([65, 1000, 65535 - base.length])))
      : kind === "wildcards" ? Buffer.from(`${base}/+/#`)
      : kind === "dollar" ? Buffer.from(`$${base}`)
      : Buffer.alloc(0);
    const wire = connectPacket({ clientId, clean: kind !== "empty-persistent", keepalive: 30 });
    return {
      label: `CONNECT with ${kind} client id (${clientId.length} bytes)`,
      wire,
      must:
        kind === "invalid-utf8" ? must("MQTT-1.5.3-1", ["closed", "refused:2"])
        : kind === "nul" ? must("MQTT-1.5.3-2", ["closed", "refused:2"])
        : kind === "empty-clean" ? must("MQTT-3.1.3-6", ["answered"])
        : undefined,
      known: kind === "empty-persistent" ? "aedes accepts an empty client id with clean=0 (MQTT-3.1.3-8); fixed elsewhere" : undefined,
      run: (ctx) => beforeConnect(ctx, wire, { complete: true }),
    };
  }) as Make,

  "reserved flag bits": ((r, c) => {
    const kind = r.pick(["subscribe", "unsubscribe", "pubrel", "pingreq", "disconnect", "puback", "connect-first-byte", "connect-reserved-flag", "subscribe-options"] as const);
    const id = r.range(1, 65535);
    const wire =
      kind === "subscribe" ? subscribePacket(id, [["hostile/x", 0]], r.pick([0x80, 0x81, 0x83, 0x8f]))
      : kind === "unsubscribe" ? unsubscribePacket(id, ["hostile/x"], r.pick([0xa0, 0xa1, 0xa3]))
      : kind === "pubrel" ? packet(r.pick([0x60, 0x61, 0x63, 0x6f]), u16(id))
      : kind === "pingreq" ? Buffer.from([0xc0 | r.range(1, 15), 0])
      : kind === "disconnect" ? Buffer.from([0xe0 | r.range(1, 15), 0])
      : kind === "puback" ? packet(0x40 | r.range(1, 15), u16(id))
      : kind === "connect-first-byte" ? connectPacket({ clientId: clientIdFor(c), first: 0x10 | r.range(1, 15) })
      : kind === "connect-reserved-flag" ? connectPacket({ clientId: clientIdFor(c), flags: 0x02 | 0x01 })
      : subscribePacket(id, [["hostile/x", r.pick([3, 4, 0x40, 0x80, 0xff])]]);
    const first = kind.startsWith("connect");
    return {
      label: `${kind}, first byte 0x${wire[0].toString(16)}`,
      wire,
      must: must(kind === "connect-reserved-flag" ? "MQTT-3.1.2-3" : kind === "subscribe-options" ? "MQTT-3-8.3-4" : "MQTT-2.2.2-2", kind === "connect-reserved-flag" ? ["closed", "refused:1", "refused:2"] : ["closed"]),
      run: (ctx) => (first ? beforeConnect(ctx, wire, { complete: true }) : afterConnect(ctx, c, wire)),
    };
  }) as Make,

  "packet before CONNECT": ((r) => {
    const id = r.range(1, 65535);
    const wire = r.pick([
      publishPacket({ topic: "sensors/hx-1/telemetry", payload: "{}", qos: r.int(3), id }),
      subscribePacket(id, [["#", 0]]),
      unsubscribePacket(id, ["#"]),
      PINGREQ,
      DISCONNECT,
      ackPacket(T.PUBREL, id),
      ackPacket(T.PUBACK, id),
    ]);
    return { label: `first byte 0x${wire[0].toString(16)}`, wire, must: must("MQTT-3.1.0-1"), run: (ctx) => beforeConnect(ctx, wire, { complete: true }) };
  }) as Make,

  "second CONNECT": ((r, c) => {
    const wire = connectPacket({ clientId: r.chance(0.5) ? clientIdFor(c) : `other-${word(r)}`, clean: r.chance(0.5), keepalive: r.int(100) });
    return { label: "a second CONNECT on a connected session", wire, must: must("MQTT-3.1.0-2"), run: (ctx) => afterConnect(ctx, c, wire, { answer: { type: T.CONNACK } }) };
  }) as Make,

  "unknown or server-only packet type": ((r, c) => {
    const type = r.pick([0, 15, T.CONNACK, T.SUBACK, T.UNSUBACK, T.PINGRESP]);
    const wire = packet((type << 4) | r.int(16), r.bytes(r.pick([0, 2, 3, 10])));
    const pre = r.chance(0.3);
    return {
      label: `type ${type} ${pre ? "before" : "after"} CONNECT (0x${wire[0].toString(16)}, ${wire.length} bytes)`,
      wire,
      must: must("MQTT-2.2.1 / 4.8 (protocol violation)"),
      run: (ctx) => (pre ? beforeConnect(ctx, wire, { complete: true }) : afterConnect(ctx, c, wire)),
    };
  }) as Make,

  "huge topic (64 KB)": ((r, c) => {
    const prefix = r.pick(["sensors/hx-1/", "hostile/", "sensors/"]);
    const fill = r.pick(["a", "é", "/", "ab/"]);
    let topic = prefix;
    while (Buffer.byteLength(topic + fill) <= 65535) topic += fill;
    const levels = topic.split("/").length;
    const subscribe = r.chance(0.3);
    const qos = r.int(2);
    const wire = subscribe ? subscribePacket(r.range(1, 65535), [[topic, 1]]) : publishPacket({ topic, payload: "{}", qos, id: r.range(1, 65535) });
    return {
      label: `${subscribe ? "SUBSCRIBE" : `PUBLISH QoS ${qos}`} ${Buffer.byteLength(topic)}-byte topic, ${levels} levels`,
      wire: wire.subarray(0, 64),
      // aedes refuses topics with more than 100 levels by closing (not an MQTT rule).
      run: (ctx) => afterConnect(ctx, c, wire, subscribe ? { answer: { type: T.SUBACK } } : qos ? { answer: { type: T.PUBACK } } : {}),
    };
  }) as Make,

  "large payload": ((r, c, long) => {
    const size = r.pick(long ? [1025, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216] : [1025, 4096, 65_536, 262_144, 1_048_576]);
    const topic = r.chance(0.6) ? `sensors/hx-${r.int(8)}/${r.pick(["telemetry", "status", "cmd/ack"])}` : `hostile/${word(r)}`;
    const qos = r.int(2);
    const payload = Buffer.alloc(size, r.pick(["x", "{", "\u0000"]));
    const wire = publishPacket({ topic, payload, qos, id: r.range(1, 65535) });
    return {
      label: `PUBLISH QoS ${qos} ${size}-byte payload on ${topic}`,
      wire: wire.subarray(0, 64),
      run: (ctx) => afterConnect(ctx, c, wire, qos ? { answer: { type: T.PUBACK } } : {}),
    };
  }) as Make,

  "declared maximum length, then gone": ((r, c) => {
    const sent = r.pick([1024, 65_536, 1_048_576]);
    const head = Buffer.concat([Buffer.from([0x30]), varint(MAX_REMAINING_LENGTH), mstr(`hostile/${word(r)}`)]);
    const wire = Buffer.concat([head, Buffer.alloc(sent, 0x61)]);
    const pre = r.chance(0.5);
    return {
      label: `PUBLISH declaring ${MAX_REMAINING_LENGTH} bytes ${pre ? "before" : "after"} CONNECT; ${sent} sent, then RST`,
      wire: wire.subarray(0, 64),
      run: async (ctx) => {
        const conn = await MqttConn.open(ctx.target);
        try {
          if (!pre) {
            const rc = await conn.handshake({ clientId: clientIdFor(c), keepalive: 30 }, ctx.answerMs);
            if (rc !== 0) return { outcome: `setup:${rc}`, packets: 0, hang: `a valid CONNECT got ${rc}` };
          }
          await conn.sendAll(wire);
          const closedEarly = conn.closed;
          conn.reset();
          return { outcome: closedEarly ? "closed" : "client-closed", packets: 1 };
        } finally {
          conn.destroy();
        }
      },
    };
  }) as Make,

  "subscription flood: one SUBSCRIBE": ((r, c, long) => {
    const n = r.range(500, long ? 8000 : 3000);
    const invalid = r.chance(0.3);
    const filters: Array<[string | Buffer, number]> = [];
    for (let i = 0; i < n; i++) {
      const f = invalid && r.chance(0.02) ? r.pick<string | Buffer>(["a/#/b", "+x", "", "a\u0000b", "##", Buffer.from([0xff])]) : `hostile/${c.index}/${word(r, 1, 6)}/${r.pick(["+", "#", "x"])}`;
      filters.push([f, r.int(3)]);
    }
    const wire = subscribePacket(r.range(1, 65535), filters);
    return {
      label: `${n} filters in one SUBSCRIBE${invalid ? ", a few invalid" : ""} (${wire.length} bytes)`,
      wire: wire.subarray(0, 64),
      must: invalid ? undefined : must("MQTT-3.8.4-5 (one return code per filter)", ["answered"]),
      run: (ctx) =>
        afterConnect(ctx, c, wire, {
          answer: {
            type: T.SUBACK,
            check: (got) => {
              const suback = got.find((p) => p.type === T.SUBACK)!;
              const codes = suback.body.length - 2;
              const failures = [...suback.body.subarray(2)].filter((b) => b === 0x80).length;
              return `${codes} return codes for ${n} filters${failures ? `, ${failures} x 0x80` : ""}`;
            },
          },
        }),
    };
  }) as Make,

  "subscription flood: many SUBSCRIBEs": ((r, c, long) => {
    const n = r.range(50, long ? 1000 : 300);
    const parts: Buffer[] = [];
    for (let i = 0; i < n; i++) parts.push(subscribePacket((i % 65535) + 1, Array.from({ length: r.range(1, 5) }, () => [`hostile/${c.index}/${word(r)}/+`, r.int(3)] as [string, number])));
    if (r.chance(0.5)) for (let i = 0; i < n; i++) parts.push(unsubscribePacket((i % 65535) + 1, [`hostile/${c.index}/${word(r)}/+`]));
    const wire = Buffer.concat(parts);
    return {
      label: `${n} SUBSCRIBEs back to back${parts.length > n ? `, then ${n} UNSUBSCRIBEs` : ""}`,
      wire: wire.subarray(0, 64),
      run: (ctx) => afterConnect(ctx, c, wire, { answer: { type: T.SUBACK, n }, packets: parts.length }),
    };
  }) as Make,

  "acks for unknown packet ids": ((r, c) => {
    const type = r.pick([T.PUBREL, T.PUBACK, T.PUBREC, T.PUBCOMP]);
    const id = r.pick([0, 1, 65535, r.range(1, 65535)]);
    const n = r.pick([1, 1, 10, 100]);
    const wire = Buffer.concat(Array.from({ length: n }, (_, i) => ackPacket(type, (id + i) % 65536)));
    return {
      label: `${n} x ${["", "", "", "", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP"][type]} from id ${id}`,
      wire: wire.subarray(0, 64),
      must: type === T.PUBREL && id !== 0 && id + n <= 65536 ? must("MQTT-4.3.3-11 (PUBREL is answered with PUBCOMP)", ["answered"]) : undefined,
      run: (ctx) => afterConnect(ctx, c, wire, type === T.PUBREL ? { answer: { type: T.PUBCOMP, n }, packets: n } : { packets: n }),
    };
  }) as Make,

  "QoS 2 never released": ((r, c, long) => {
    const n = long && r.chance(0.1) ? 1001 : r.range(1, 50);
    const wire = Buffer.concat(Array.from({ length: n }, (_, i) => publishPacket({ topic: `hostile/${word(r)}`, payload: "x", qos: 2, id: i + 1 })));
    return {
      label: `${n} QoS 2 PUBLISHes, no PUBREL, then ${n > 1000 ? "more than the broker's 1000 in flight" : "RST"}`,
      wire: wire.subarray(0, 64),
      run: (ctx) => afterConnect(ctx, c, wire, { answer: { type: T.PUBREC, n: Math.min(n, 1000) }, finish: "reset", packets: n }),
    };
  }) as Make,

  "truncated packet, then idle": ((r, c, long) => {
    const full = r.pick([
      () => publishPacket({ topic: `hostile/${word(r)}`, payload: word(r, 1, 60), qos: r.int(3), id: r.range(1, 65535) }),
      () => subscribePacket(r.range(1, 65535), [[`hostile/${word(r)}`, 1]]),
      () => connectPacket({ clientId: clientIdFor(c), keepalive: 1 }),
    ])();
    const wire = full.subarray(0, r.range(1, full.length - 1));
    const pre = full[0] >> 4 === T.CONNECT;
    return {
      label: `${pre ? "CONNECT" : `0x${full[0].toString(16)}`} cut at ${wire.length} of ${full.length} bytes`,
      wire,
      must: pre ? (long ? must("connect timeout (aedes 30 s)", ["closed-idle"]) : undefined) : must("MQTT-3.1.2-24 (keepalive)", ["closed-idle"]),
      run: (ctx) => (pre ? beforeConnect(ctx, wire, { complete: false, waitIdle: long }) : afterConnect(ctx, c, wire, { incomplete: true })),
    };
  }) as Make,

  "half-open socket": ((r, c) => {
    const kind = r.pick(["fin-after-connect", "silent-keepalive", "rst-after-connect", "rst-mid-packet", "rst-with-will", "fin-before-connect"] as const);
    return {
      label: kind,
      wire: Buffer.alloc(0),
      must: kind === "silent-keepalive" ? must("MQTT-3.1.2-24 (keepalive)", ["closed-idle"]) : kind.startsWith("fin") ? must("TCP FIN", ["closed"]) : undefined,
      run: async (ctx) => {
        const conn = await MqttConn.open(ctx.target);
        try {
          if (kind === "fin-before-connect") {
            conn.end();
            return { outcome: (await conn.closesWithin(ctx.answerMs)) ? "closed" : "pending", packets: 1, hang: conn.closed ? undefined : "FIN before CONNECT left the socket open" };
          }
          const will = kind === "rst-with-will" ? { topic: `sensors/hx-${r.int(8)}/status`, payload: '{"v":1,"state":"offline"}', qos: 1, retain: false } : undefined;
          const keepalive = kind === "silent-keepalive" ? 1 : 30;
          const rc = await conn.handshake({ clientId: clientIdFor(c), keepalive, will }, ctx.answerMs);
          if (rc !== 0) return { outcome: `setup:${rc}`, packets: 0, hang: `a valid CONNECT got ${rc}` };
          if (kind === "fin-after-connect") {
            conn.end();
            return (await conn.closesWithin(ctx.answerMs)) ? { outcome: "closed", packets: 1 } : { outcome: "pending", packets: 1, hang: "FIN after CONNECT left the socket open" };
          }
          if (kind === "silent-keepalive") {
            return (await conn.closesWithin(keepalive * 1500 + ctx.answerMs)) ? { outcome: "closed-idle", packets: 1 } : { outcome: "pending", packets: 1, hang: "a silent client outlived 1.5 x keepalive" };
          }
          if (kind === "rst-mid-packet") await conn.sendAll(publishPacket({ topic: "hostile/x", payload: "y".repeat(100), qos: 1, id: 7 }).subarray(0, 20));
          conn.reset();
          return { outcome: "client-closed", packets: 1 };
        } finally {
          conn.destroy();
        }
      },
    };
  }) as Make,

  "connect storm": ((r, c, long) => {
    const n = r.range(10, long ? 200 : 60);
    const same = r.chance(0.4);
    const clean = r.chance(0.7);
    const id = clientIdFor(c);
    return {
      label: `${n} CONNECTs at once, ${same ? "one client id (takeovers)" : "distinct ids"}, clean=${clean}`,
      wire: connectPacket({ clientId: id, clean }),
      run: async (ctx) => {
        const conns = await Promise.all(Array.from({ length: n }, () => MqttConn.open(ctx.target).catch(() => undefined)));
        try {
          conns.forEach((k, i) => k?.send(connectPacket({ clientId: same ? id : `${id}-${i}`, clean, keepalive: 30 })));
          // Each gets its CONNACK or (a session taken over by the next) a close.
          const settled = await Promise.all(conns.map((k) => (k ? k.until(() => k.count(T.CONNACK) > 0 || k.closed, ctx.answerMs * 2) : Promise.resolve(false))));
          const unsettled = settled.filter((s) => !s).length;
          const refused = conns.filter((k) => k?.received.some((p) => p.type === T.CONNACK && p.body[1] !== 0)).length;
          const failedTcp = conns.filter((k) => k === undefined).length;
          const detail = `${conns.filter((k) => k?.count(T.CONNACK)).length} CONNACKs, ${conns.filter((k) => k?.closed).length} closed, ${failedTcp} TCP failures`;
          if (unsettled) return { outcome: "no-answer", packets: n, hang: `${unsettled} of ${n} CONNECTs got neither CONNACK nor close`, detail };
          if (failedTcp) return { outcome: "tcp-refused", packets: n, detail };
          // Clean up politely; the broker must take the DISCONNECTs too.
          for (const k of conns) k?.send(DISCONNECT);
          return { outcome: refused ? `refused:${refused}` : "answered", packets: n, detail };
        } finally {
          for (const k of conns) k?.destroy();
        }
      },
    };
  }) as Make,

  "mutated valid packet": ((r, c) => {
    const base = validPacket(r);
    const wire = mutate(r, base);
    return {
      label: `${base.toString("hex").slice(0, 40)} -> ${wire.toString("hex").slice(0, 40)}`,
      wire,
      // Anything goes but a hang; a mutation may leave a packet incomplete (keepalive 1 s then closes it).
      run: (ctx) => afterConnect(ctx, c, wire, { keepalive: 1 }),
    };
  }) as Make,

  "garbage before CONNECT": ((r) => {
    const wire = r.pick([
      () => r.bytes(r.range(1, 200)),
      () => Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
      () => Buffer.from("16030100a5010000a103030000", "hex"), // TLS ClientHello start
      () => Buffer.from("\r\n\r\n\r\n"),
      () => mutate(r, connectPacket({ clientId: `g-${word(r)}`, keepalive: 1 })),
    ])();
    return { label: `${wire.length} bytes ${wire.toString("hex").slice(0, 32)}`, wire, run: (ctx) => beforeConnect(ctx, wire, { complete: false }) };
  }) as Make,

  "hostile payload on device topics": ((r, c) => {
    const n = r.range(1, 20);
    const parts: Buffer[] = [];
    let qos1 = 0;
    for (let i = 0; i < n; i++) {
      const id = r.chance(0.9) ? `hx-${r.int(8)}` : r.pick(["..", "a".repeat(65), "a b", "$x", "é"]);
      const kind = r.pick(["telemetry", "status", "cmd/ack", "cmd", "telemetry/extra"]);
      const qos = r.int(2);
      if (qos) qos1++;
      parts.push(publishPacket({ topic: `sensors/${id}/${kind}`, payload: hostilePayload(r), qos, id: i + 1, dup: r.chance(0.1) }));
    }
    const wire = Buffer.concat(parts);
    return {
      label: `${n} PUBLISHes with hostile JSON on sensors/+/…`,
      wire: wire.subarray(0, 64),
      run: (ctx) => afterConnect(ctx, c, wire, qos1 ? { answer: { type: T.PUBACK, n: qos1 }, packets: n } : { packets: n }),
    };
  }) as Make,

  "bad CONNECT fields": ((r, c) => {
    const id = clientIdFor(c);
    const kind = r.pick(["protocol-name", "level", "password-without-username", "will-qos-3", "will-flags-without-will", "will-wildcard-topic", "huge-credentials", "keepalive-extremes", "v5"] as const);
    const level = r.pick([0, 2, 5, 6, 255]);
    const wire =
      kind === "protocol-name" ? connectPacket({ clientId: id, name: r.pick(["MQTX", "MQIsdp", "", "mqtt", "MQTT\u0000"]) })
      : kind === "level" ? connectPacket({ clientId: id, level })
      : kind === "password-without-username" ? connectPacket({ clientId: id, password: "secret", flags: 0x42 })
      : kind === "will-qos-3" ? connectPacket({ clientId: id, will: { topic: "hostile/w", payload: "x", qos: 3 } })
      : kind === "will-flags-without-will" ? connectPacket({ clientId: id, flags: 0x02 | r.pick([0x08, 0x10, 0x20]) })
      : kind === "will-wildcard-topic" ? connectPacket({ clientId: id, will: { topic: r.pick(["sensors/+/status", "#", "a\u0000b"]), payload: "x", qos: 1 } })
      : kind === "huge-credentials" ? connectPacket({ clientId: id, username: "u".repeat(65535), password: r.bytes(65535) })
      : kind === "keepalive-extremes" ? connectPacket({ clientId: id, keepalive: r.pick([0, 65535]) })
      : mqttPacket.generate({ cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clientId: id, clean: true, keepalive: 30, properties: { sessionExpiryInterval: 4294967295, receiveMaximum: 1, maximumPacketSize: 1 } } as Packet);
    const rule =
      kind === "protocol-name" ? must("MQTT-3.1.2-1", ["closed"])
      : kind === "level" ? must("MQTT-3.1.2-2", ["refused:1"])
      : kind === "v5" ? must("MQTT-3.1.2-2", ["refused:1", "answered"])
      : kind === "password-without-username" ? must("MQTT-3.1.2-22", ["closed", "refused:4", "refused:5"])
      : kind === "will-qos-3" ? must("MQTT-3.1.2-14", ["closed"])
      : kind === "will-flags-without-will" ? must("MQTT-3.1.2-11/13/15", ["closed"])
      : kind === "will-wildcard-topic" ? must("MQTT-3.1.3-10 / 4.7.3 (will topic is a topic name)", ["closed", "refused:5"])
      : must("valid CONNECT", ["answered"]);
    return { label: kind === "level" ? `protocol level ${level}` : kind, wire: wire.subarray(0, 64), must: rule, run: (ctx) => beforeConnect(ctx, wire, { complete: true }) };
  }) as Make,

} satisfies Record<string, Make>;

export type MqttCategory = keyof typeof cat;

/** Relative weights: cheap protocol violations often, slow (idle, storm) and heavy (flood, large) cases rarely. */
const WEIGHTS: Array<readonly [MqttCategory, number]> = [
  ["remaining length: 5-byte varint", 6],
  ["remaining length: too long", 2],
  ["remaining length: too short", 5],
  ["QoS 3 PUBLISH", 6],
  ["wildcard in PUBLISH topic", 6],
  ["invalid UTF-8 in topic", 6],
  ["U+0000 in topic", 5],
  ["hostile client id", 6],
  ["reserved flag bits", 7],
  ["packet before CONNECT", 6],
  ["second CONNECT", 4],
  ["unknown or server-only packet type", 5],
  ["huge topic (64 KB)", 2],
  ["large payload", 2],
  ["declared maximum length, then gone", 1],
  ["subscription flood: one SUBSCRIBE", 1],
  ["subscription flood: many SUBSCRIBEs", 1],
  ["acks for unknown packet ids", 5],
  ["QoS 2 never released", 2],
  ["truncated packet, then idle", 2],
  ["half-open socket", 3],
  ["connect storm", 0.5],
  ["mutated valid packet", 10],
  ["garbage before CONNECT", 4],
  ["hostile payload on device topics", 8],
  ["bad CONNECT fields", 6],
];

export const MQTT_CATEGORIES = WEIGHTS.map(([c]) => c);

/** Case `index` of a run, drawn from its own `seed` (run.ts derives both from the run's seed). */
export function mqttCase(r: Rng, index: number, seed: number, long: boolean): MqttCase {
  const category = r.weighted(WEIGHTS);
  const made = cat[category](r, { seed, index }, long);
  return { index, seed, category, ...made };
}

// ---------------------------------------------------------------------------------------------
// Two findings of this generator, as scenarios of their own (tests and bench measure them directly).

/**
 * A first packet (before CONNECT) that declares the maximum remaining length (268,435,455 bytes), then
 * up to `maxMb` MB of it. Returns how many MB the broker took before it closed the connection (maxMb = it
 * never did). mqtt-packet's parser, as aedes uses it, has no maximum packet size: it buffers the whole
 * packet, and only then does aedes see that it is not a CONNECT.
 */
export async function oversizedBeforeConnect(
  target: MqttTarget,
  maxMb: number,
  /** Called while the connection is still open, after the last MB (e.g. to measure the broker's memory). */
  whileOpen?: () => Promise<void>,
  /** How long to wait for the broker's close after the last byte (parsing a whole maximum packet takes a while). */
  closeWaitMs = 200,
): Promise<{ acceptedMb: number; closed: boolean; ms: number }> {
  const t0 = performance.now();
  const conn = await MqttConn.open(target);
  try {
    await conn.sendAll(Buffer.concat([Buffer.from([0x30]), varint(MAX_REMAINING_LENGTH), mstr("a")]));
    const chunk = Buffer.alloc(1 << 20, 0x61);
    let mb = 0;
    while (mb < maxMb && !conn.closed) {
      // A write the kernel took before the broker's reset arrived still counts; a failed one does not.
      if (!(await conn.sendAll(chunk)) || conn.closed) break;
      mb++;
    }
    // Bytes in flight may still be read: give the broker a moment to say no.
    conn.send(PINGREQ);
    const ms = performance.now() - t0;
    await conn.closesWithin(closeWaitMs);
    if (!conn.closed) await whileOpen?.();
    return { acceptedMb: mb, closed: conn.closed, ms };
  } finally {
    conn.destroy();
  }
}

/**
 * A subscriber to `sensors/#` that stops reading (a dashboard on a frozen laptop, a client on a dead link);
 * `fillMb` MB of status messages (QoS 1, 1, 0, 0 ... from separate clients) fill its socket; then a device
 * sends two QoS 1 readings in one TCP write, as a waking device does, and a PINGREQ after their PUBACKs.
 * Returns how long that PINGREQ waited for its PINGRESP (or "closed" when the broker dropped the device).
 * aedes finishes a read batch only when every delivery in it was written, and a delivery to a full
 * socket waits for 'drain' (drainTimeout 60 s): the device's connection is not read meanwhile, and its
 * keepalive (1.5 x) expires although it kept sending.
 */
export async function stalledBySlowSubscriber(
  target: MqttTarget,
  o: { fillMb: number; keepalive: number; waitMs: number },
): Promise<{ pubacks: number; pingMs: number | "closed" | "timeout"; waitedMs: number; subscriberStillOpen: boolean }> {
  const slow = await MqttConn.open(target);
  const conns: MqttConn[] = [slow];
  try {
    if ((await slow.handshake({ clientId: "hx-slow-reader", keepalive: 0 }, 5000)) !== 0) throw new Error("slow subscriber refused");
    slow.send(subscribePacket(1, [["sensors/#", 1]]));
    if ((await slow.waitFor(T.SUBACK, 5000)) !== "packet") throw new Error("no SUBACK for the slow subscriber");
    slow.pause();
    // Quarter-megabyte messages: the broker's packet limit is 256 KiB (gateway/src/broker/packet-size-limit.ts).
    for (let i = 0; i < o.fillMb * 4; i++) {
      const p = await MqttConn.open(target);
      conns.push(p);
      await p.handshake({ clientId: `hx-filler-${i}`, keepalive: 30 }, 5000);
      const qos = i % 4 < 2 ? 1 : 0;
      p.send(publishPacket({ topic: `sensors/hx-fill-${i}/status`, payload: Buffer.alloc((1 << 18) - 1024, 0x78), qos, id: 1 }));
      if (qos) await p.waitFor(T.PUBACK, 5000);
      p.send(PINGREQ);
      await p.waitFor(T.PINGRESP, 5000);
      p.destroy();
    }
    const dev = await MqttConn.open(target);
    conns.push(dev);
    if ((await dev.handshake({ clientId: "hx-dev-stalled", keepalive: o.keepalive }, 5000)) !== 0) throw new Error("device refused");
    const reading = (seq: number) =>
      publishPacket({ topic: "sensors/hx-dev-stalled/telemetry", payload: JSON.stringify({ v: 1, seq, boot: 1, t: null, readings: { temperature: 21.5 }, battery: 3.7 }), qos: 1, id: seq });
    dev.send(Buffer.concat([reading(1), reading(2)]));
    await dev.waitFor(T.PUBACK, 5000, 2);
    const pubacks = dev.count(T.PUBACK);
    const t = performance.now();
    dev.send(PINGREQ);
    const r = await dev.waitFor(T.PINGRESP, o.waitMs);
    const waitedMs = performance.now() - t;
    return { pubacks, pingMs: r === "packet" ? waitedMs : r, waitedMs, subscriberStillOpen: !slow.closed };
  } finally {
    for (const c of conns) c.destroy();
  }
}
