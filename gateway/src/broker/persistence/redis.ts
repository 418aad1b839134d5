import { Readable } from "node:stream";
import { Redis } from "ioredis";
import aedesPacket from "aedes-packet";
import QlobberSub from "qlobber/aedes/qlobber-sub.js";
import { QlobberTrue } from "qlobber";
import { silentLogger, type BrokerLogger } from "../logger.ts";
import { ErrPersistenceClosed } from "./sqlite.ts";
import type { BrokerStore, ClientRef, Origin, StoredPacket as AnyPacket, StoredSubscription as Sub } from "./store.ts";

/**
 * aedes persistence on Redis, shared by every broker node of one deployment (several aedes processes on one
 * Redis, their publishes carried by mqemitter-redis): a persistent session subscribed on one node gets its
 * queued messages from whichever node it reconnects to, and a dead node's wills are published by a survivor.
 *
 * Same contract as sqlite.ts (aedes-persistence 11's promise interface plus the OutgoingIndex lookups that the
 * broker's rules in stack.ts need) and the same abstract suite (redis.test.ts). Not aedes-persistence-redis
 * (read in its asyncPersistence.js): it has no OutgoingIndex (adopting the copies queued before the PUBACK,
 * packet ids held by other messages of a session), so this project's fixes cannot sit on it; it finds the
 * queued message a PUBACK clears through an in-process LRU of packet ids, so a session resumed on another
 * node (or after a restart) cannot clear what the previous node sent; and it queues for each subscriber with
 * separate commands (a kill in between leaves some copies). Here every lookup is in Redis.
 *
 * Layout, every key under `prefix`:
 *   subs        hash  JSON [clientId, topic] → subscription record; `subs:v` counts changes, so a node
 *               re-reads the table only when another node changed it (aedes matches on every publish)
 *   retained    hash  topic → packet
 *   seq         counter for outgoing rows (their order)
 *   oz:<client> zset of the client's outgoing row seqs; oo: / om: / op:<client> hashes seq → origin
 *               ("brokerId\0brokerCounter", "\0" for none), packet id, packet
 *   og:<origin> set of clients holding a row of that origin (outgoingAdoptOrigin without a scan of all queues)
 *   in:<client> hash  packet id → inbound QoS 2 packet (between PUBREC and PUBREL)
 *   wills       hash  clientId → will packet, stamped with the id of the broker the client is connected to
 * Every multi-key change runs as one Lua script (atomic in Redis): a node killed mid-call leaves no half row.
 * Lookups by packet id or origin scan the one client's queue inside Redis, oldest first: an in-order drain
 * finds each acked message at the front, but every call still reads the queue's seqs (ZRANGE), and an ack
 * out of order walks further. An index by packet id is the next step if queues of many thousands matter.
 */

type SubRecord = Omit<Sub, "topic">;

const Packet = aedesPacket as unknown as new (original: AnyPacket) => AnyPacket;
const QLOBBER_OPTIONS = { wildcard_one: "+", wildcard_some: "#", separator: "/" };
const NO_ORIGIN = "\0";

export interface RedisPersistenceOptions {
  /** redis://[user:password@]host:port[/db] */
  url: string;
  /** Key prefix shared by the nodes of one broker; default "broker:". */
  prefix?: string;
  logger?: BrokerLogger;
}

// Shared Lua: a client's rows in queue order; delete or re-origin one row keeping the og: index right.
const LUA_HELPERS = `
local p = ARGV[1]
local function rows(client) return redis.call('ZRANGE', p .. 'oz:' .. client, 0, -1) end
local function origin(client, seq) return redis.call('HGET', p .. 'oo:' .. client, seq) end
local function mid(client, seq) return redis.call('HGET', p .. 'om:' .. client, seq) end
local function set_origin(client, seq, o)
  local old = origin(client, seq)
  if old and old ~= '\\0' then redis.call('SREM', p .. 'og:' .. old, client) end
  redis.call('HSET', p .. 'oo:' .. client, seq, o)
  if o ~= '\\0' then redis.call('SADD', p .. 'og:' .. o, client) end
end
local function del_row(client, seq)
  local old = origin(client, seq)
  if old and old ~= '\\0' then redis.call('SREM', p .. 'og:' .. old, client) end
  redis.call('ZREM', p .. 'oz:' .. client, seq)
  redis.call('HDEL', p .. 'oo:' .. client, seq)
  redis.call('HDEL', p .. 'om:' .. client, seq)
  redis.call('HDEL', p .. 'op:' .. client, seq)
end
local function first_by_mid(client, m)
  for _, seq in ipairs(rows(client)) do if mid(client, seq) == m then return seq end end
  return nil
end
`;

const SCRIPTS = {
  // ARGV: prefix, origin, then client, packet pairs
  enqueue: `${LUA_HELPERS}
for i = 3, #ARGV, 2 do
  local client = ARGV[i]
  local seq = redis.call('INCR', p .. 'seq')
  redis.call('ZADD', p .. 'oz:' .. client, seq, seq)
  redis.call('HSET', p .. 'op:' .. client, seq, ARGV[i + 1])
  set_origin(client, seq, ARGV[2])
end
return 1`,
  // The row of this origin gets the packet id; else another origin's row holding the id is replaced.
  // ARGV: prefix, client, origin, brokerId .. '\\0', messageId, packet
  updateByOrigin: `${LUA_HELPERS}
local client, o, bprefix, m = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ids = rows(client)
for _, seq in ipairs(ids) do
  if origin(client, seq) == o then redis.call('HSET', p .. 'om:' .. client, seq, m) return 1 end
end
for _, seq in ipairs(ids) do
  if mid(client, seq) == m and string.sub(origin(client, seq), 1, #bprefix) ~= bprefix then
    set_origin(client, seq, o)
    redis.call('HSET', p .. 'om:' .. client, seq, m)
    redis.call('HSET', p .. 'op:' .. client, seq, ARGV[6])
    return 1
  end
end
return 0`,
  // A PUBREL replaces the flow holding its packet id. ARGV: prefix, client, messageId, packet
  updateByMessageId: `${LUA_HELPERS}
local client, m = ARGV[2], ARGV[3]
local seq = first_by_mid(client, m)
if not seq then return 0 end
set_origin(client, seq, '\\0')
redis.call('HSET', p .. 'op:' .. client, seq, ARGV[4])
return 1`,
  // ARGV: prefix, client, messageId → {origin, packet} of the deleted row, or nil
  clearMessageId: `${LUA_HELPERS}
local client, m = ARGV[2], ARGV[3]
local seq = first_by_mid(client, m)
if not seq then return nil end
local found = { origin(client, seq), redis.call('HGET', p .. 'op:' .. client, seq) }
del_row(client, seq)
return found`,
  // ARGV: prefix, client, messageId, origin
  messageIdTaken: `${LUA_HELPERS}
local client, m, o = ARGV[2], ARGV[3], ARGV[4]
for _, seq in ipairs(rows(client)) do
  if mid(client, seq) == m and origin(client, seq) ~= o then return 1 end
end
return 0`,
  // ARGV: prefix, from, to → clients whose row moved
  adoptOrigin: `${LUA_HELPERS}
local from, to = ARGV[2], ARGV[3]
local moved = {}
for _, client in ipairs(redis.call('SMEMBERS', p .. 'og:' .. from)) do
  for _, seq in ipairs(rows(client)) do
    if origin(client, seq) == from then set_origin(client, seq, to) table.insert(moved, client) end
  end
end
return moved`,
  // ARGV: prefix, client → {origin, messageId or false, packet} per row, in order
  outgoingRows: `${LUA_HELPERS}
local client = ARGV[2]
local out = {}
for _, seq in ipairs(rows(client)) do
  table.insert(out, origin(client, seq))
  table.insert(out, mid(client, seq) or '')
  table.insert(out, redis.call('HGET', p .. 'op:' .. client, seq))
end
return out`,
  // ARGV: prefix, client, brokerId or '' → the deleted will, or nil
  delWill: `
local key = ARGV[1] .. 'wills'
local json = redis.call('HGET', key, ARGV[2])
if not json then return nil end
if ARGV[3] ~= '' and cjson.decode(json).brokerId ~= ARGV[3] then return nil end
redis.call('HDEL', key, ARGV[2])
return json`,
} as const;

type ScriptName = keyof typeof SCRIPTS;
type ScriptedRedis = Redis & Record<ScriptName, (...args: Array<string | number>) => Promise<unknown>>;

export class RedisPersistence implements BrokerStore {
  private readonly redis: ScriptedRedis;
  private readonly prefix: string;
  private brokerRef: { id: string } | undefined;
  private destroyed = false;
  // The subscription table as last read, and the change count it was read at.
  private subs = new Map<string, Map<string, SubRecord>>();
  private trie = new QlobberSub(QLOBBER_OPTIONS);
  private subsVersion: string | null | undefined;

  constructor(opts: RedisPersistenceOptions) {
    this.prefix = opts.prefix ?? "broker:";
    // A Redis restart is ridden out (a command waits for the reconnect); a longer outage fails the command,
    // so aedes sends no PUBACK and drops the connection, and the publisher sends the message again later.
    this.redis = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: 20 }) as ScriptedRedis;
    for (const [name, lua] of Object.entries(SCRIPTS)) this.redis.defineCommand(name, { numberOfKeys: 0, lua });
    // ioredis reconnects by itself; without a listener an 'error' event would end the process.
    const logger = opts.logger ?? silentLogger;
    this.redis.on("error", (err: Error) => logger.warn({ err: err.message }, "broker store (redis) error"));
  }

  get broker(): { id: string } | undefined {
    return this.brokerRef;
  }

  async setup(broker: { id: string }): Promise<void> {
    this.brokerRef = broker;
    if (this.redis.status === "wait") await this.redis.connect();
  }

  // ---- retained ---------------------------------------------------------------------------------------
  async storeRetained(pkt: AnyPacket): Promise<void> {
    this.open();
    if (pkt.payload.length === 0) await this.redis.hdel(this.key("retained"), pkt.topic);
    else await this.redis.hset(this.key("retained"), pkt.topic, encode(pkt));
  }

  createRetainedStream(pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern]);
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    const matchers = patterns.map((pattern) => new QlobberTrue(QLOBBER_OPTIONS).add(pattern));
    const all = this.redis.hgetall(this.key("retained"));
    return Readable.from(
      (async function* () {
        const retained = await all;
        for (const matcher of matchers) {
          for (const [topic, packet] of Object.entries(retained)) if (matcher.test(topic)) yield decode(packet);
        }
      })(),
    );
  }

  // ---- subscriptions ----------------------------------------------------------------------------------
  async addSubscriptions(client: ClientRef, subs: Sub[]): Promise<void> {
    this.open();
    if (subs.length === 0) return;
    const fields: string[] = [];
    for (const sub of subs) {
      const record: SubRecord = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl };
      if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier;
      fields.push(JSON.stringify([client.id, sub.topic]), JSON.stringify(record));
    }
    await this.redis.multi().hset(this.key("subs"), ...fields).incr(this.key("subs:v")).exec();
  }

  async removeSubscriptions(client: ClientRef, topics: string[]): Promise<void> {
    this.open();
    if (topics.length === 0) return;
    const fields = topics.map((topic) => JSON.stringify([client.id, topic]));
    await this.redis.multi().hdel(this.key("subs"), ...fields).incr(this.key("subs:v")).exec();
  }

  async subscriptionsByClient(client: ClientRef): Promise<Sub[]> {
    const stored = (await this.subscriptionTable()).get(client.id);
    return stored === undefined ? [] : [...stored].map(([topic, record]) => ({ topic, ...record }));
  }

  async countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    const table = await this.subscriptionTable();
    return { subsCount: this.trie.subscriptionsCount, clientsCount: table.size };
  }

  async subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string; qos: number }>> {
    await this.subscriptionTable();
    return this.trie.match(topic);
  }

  async cleanSubscriptions(client: ClientRef): Promise<void> {
    this.open();
    const stored = (await this.subscriptionTable()).get(client.id);
    if (stored === undefined) return;
    await this.removeSubscriptions(client, [...stored.keys()]);
  }

  getClientList(topic: string): Readable {
    const table = this.subscriptionTable();
    return Readable.from(
      (async function* () {
        for (const [clientId, stored] of await table) if (stored.has(topic)) yield clientId;
      })(),
    );
  }

  /** The shared subscription table: one GET per call, the whole table only after a change by any node. */
  private async subscriptionTable(): Promise<Map<string, Map<string, SubRecord>>> {
    this.open();
    const version = await this.redis.get(this.key("subs:v"));
    if (version === this.subsVersion) return this.subs;
    // Read after the version: a change in between only makes the next call read again.
    const rows = await this.redis.hgetall(this.key("subs"));
    const subs = new Map<string, Map<string, SubRecord>>();
    const trie = new QlobberSub(QLOBBER_OPTIONS);
    for (const [field, json] of Object.entries(rows)) {
      const [clientId, topic] = JSON.parse(field) as [string, string];
      const record = JSON.parse(json) as SubRecord;
      let stored = subs.get(clientId);
      if (stored === undefined) subs.set(clientId, (stored = new Map()));
      stored.set(topic, record);
      // Only QoS > 0 subscriptions get offline messages (same rule as aedes-persistence's memory store).
      if (record.qos > 0) trie.add(topic, { clientId, topic, qos: record.qos, rh: record.rh, rap: record.rap, nl: record.nl });
    }
    this.subs = subs;
    this.trie = trie;
    this.subsVersion = version;
    return subs;
  }

  // ---- outgoing queue (broker → subscriber, QoS 1/2) --------------------------------------------------
  async outgoingEnqueue(sub: { clientId: string }, packet: AnyPacket): Promise<void> {
    await this.outgoingEnqueueCombi([sub], packet);
  }

  async outgoingEnqueueCombi(subs: Array<{ clientId: string; qos?: number }>, packet: AnyPacket): Promise<void> {
    this.open();
    if (subs.length === 0) return;
    // As sqlite.ts: a fresh Packet (no message id until sent), at the QoS each subscriber was granted.
    const encoded = new Map<number, string>();
    const args: string[] = [];
    for (const sub of subs) {
      const qos = typeof sub.qos === "number" && sub.qos < packet.qos ? sub.qos : packet.qos;
      let e = encoded.get(qos);
      if (e === undefined) {
        const copy = new Packet(packet);
        copy.qos = qos;
        encoded.set(qos, (e = encode(copy)));
      }
      args.push(sub.clientId, e);
    }
    // One script: every subscriber's copy or none.
    await this.redis.enqueue(this.prefix, originKey(packet), ...args);
  }

  /** Same matching as sqlite.ts (and asyncPersistence.js); a PUBREL replaces the flow holding its packet id. */
  async outgoingUpdate(client: ClientRef, packet: AnyPacket): Promise<void> {
    this.open();
    const messageId = String(packet.messageId ?? "");
    const done =
      packet.brokerId === undefined || packet.brokerId === null
        ? await this.redis.updateByMessageId(this.prefix, client.id, messageId, encode(packet))
        : await this.redis.updateByOrigin(this.prefix, client.id, originKey(packet), `${packet.brokerId}\0`, messageId, encode(packet));
    if (done !== 1) throw new Error("no such packet");
  }

  async outgoingAdoptOrigin(from: Origin, to: Origin): Promise<string[]> {
    this.open();
    return (await this.redis.adoptOrigin(this.prefix, originKey(from), originKey(to))) as string[];
  }

  async outgoingMessageIdTaken(clientId: string, messageId: number, origin: Partial<Origin>): Promise<boolean> {
    this.open();
    return (await this.redis.messageIdTaken(this.prefix, clientId, String(messageId), originKey(origin))) === 1;
  }

  async outgoingClearMessageId(client: ClientRef, packet: AnyPacket): Promise<AnyPacket | undefined> {
    this.open();
    if (typeof packet?.messageId !== "number") return undefined;
    const row = (await this.redis.clearMessageId(this.prefix, client.id, String(packet.messageId))) as [string, string] | null;
    return row === null ? undefined : decodeOutgoing(row[0], String(packet.messageId), row[1]);
  }

  outgoingStream(client: ClientRef): Readable {
    this.open();
    const flat = this.redis.outgoingRows(this.prefix, client.id) as Promise<string[]>;
    return Readable.from(
      (async function* () {
        const rows = await flat;
        for (let i = 0; i < rows.length; i += 3) yield decodeOutgoing(rows[i]!, rows[i + 1]!, rows[i + 2]!);
      })(),
    );
  }

  // ---- incoming QoS 2 (publisher → broker, between PUBREC and PUBREL) ---------------------------------
  async incomingStorePacket(client: ClientRef, packet: AnyPacket): Promise<void> {
    this.open();
    const stored = new Packet(packet);
    stored.messageId = packet.messageId;
    await this.redis.hset(this.key(`in:${client.id}`), String(packet.messageId), encode(stored));
  }

  async incomingGetPacket(client: ClientRef, packet: AnyPacket): Promise<AnyPacket> {
    this.open();
    const json = await this.redis.hget(this.key(`in:${client.id}`), String(packet.messageId));
    if (json === null) throw new Error("no such packet");
    return decode(json);
  }

  async incomingDelPacket(client: ClientRef, packet: AnyPacket): Promise<void> {
    this.open();
    if ((await this.redis.hdel(this.key(`in:${client.id}`), String(packet.messageId))) === 0) throw new Error("no such packet");
  }

  async cleanIncoming(client: ClientRef): Promise<void> {
    this.open();
    await this.redis.del(this.key(`in:${client.id}`));
  }

  // ---- wills ------------------------------------------------------------------------------------------
  async putWill(client: ClientRef, packet: AnyPacket): Promise<void> {
    this.open();
    packet.brokerId = this.brokerRef?.id;
    packet.clientId = client.id;
    await this.redis.hset(this.key("wills"), client.id, encode(packet));
  }

  async getWill(client: ClientRef): Promise<AnyPacket | undefined> {
    this.open();
    const json = await this.redis.hget(this.key("wills"), client.id);
    return json === null ? undefined : decode(json);
  }

  /**
   * With `client.brokerId` (aedes passes its own id), only that broker's will goes: a node closing a client that
   * has meanwhile reconnected to another node must not delete the will the other node stored.
   */
  async delWill(client: ClientRef & { brokerId?: string }): Promise<AnyPacket | undefined> {
    this.open();
    const json = (await this.redis.delWill(this.prefix, client.id, client.brokerId ?? "")) as string | null;
    return json === null ? undefined : decode(json);
  }

  /**
   * Wills of brokers not in `brokers`: aedes passes the nodes it heard a heartbeat from, so a survivor
   * publishes the wills of a node that died (and of this node's previous run).
   */
  streamWill(brokers: Record<string, number> = {}): Readable {
    this.open();
    const all = this.redis.hvals(this.key("wills"));
    return Readable.from(
      (async function* () {
        for (const json of await all) {
          const will = decode(json);
          if (will.brokerId === undefined || will.brokerId === null || !brokers[will.brokerId]) yield will;
        }
      })(),
    );
  }

  /** Closes the connection. Safe to call twice; any later call fails with ErrPersistenceClosed. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.redis.status === "wait") this.redis.disconnect();
    else await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private key(name: string): string {
    return this.prefix + name;
  }

  private open(): void {
    if (this.destroyed) throw new ErrPersistenceClosed("broker persistence is closed");
  }
}

function originKey(origin: Partial<Origin> | AnyPacket): string {
  if (origin.brokerId === undefined || origin.brokerId === null) return NO_ORIGIN;
  return `${origin.brokerId}\0${origin.brokerCounter ?? ""}`;
}

/** Packet → JSON without functions; a Buffer (payload, MQTT 5 properties) as {type:"Buffer",data:[…]}. */
function encode(packet: AnyPacket): string {
  return JSON.stringify(packet, (_key, value: unknown) => (typeof value === "function" ? undefined : value));
}

function decode(json: string): AnyPacket {
  return JSON.parse(json, reviveBuffers) as AnyPacket;
}

function decodeOutgoing(origin: string, messageId: string, json: string): AnyPacket {
  const packet = decode(json);
  // The origin and id fields, not the JSON, are current: outgoingAdoptOrigin and outgoingUpdate change them.
  delete packet.brokerId;
  delete packet.brokerCounter;
  if (origin !== NO_ORIGIN) {
    const cut = origin.lastIndexOf("\0");
    packet.brokerId = origin.slice(0, cut);
    const counter = origin.slice(cut + 1);
    if (counter !== "") packet.brokerCounter = Number(counter);
  }
  const id = messageId === "" ? undefined : Number(messageId);
  // Like the memory store: a queued PUBLISH has a messageId key (undefined until sent).
  if (id !== undefined || packet.cmd !== "publish" || packet.qos > 0) packet.messageId = id;
  return packet;
}

function reviveBuffers(_key: string, value: unknown): unknown {
  if (
    typeof value === "object" &&
    value !== null &&
    (value as { type?: unknown }).type === "Buffer" &&
    Array.isArray((value as { data?: unknown }).data)
  ) {
    return Buffer.from((value as { data: number[] }).data);
  }
  return value;
}
