import { Readable } from "node:stream";
import { join } from "node:path";
import Database from "better-sqlite3";
import aedesPacket from "aedes-packet";
import QlobberSub from "qlobber/aedes/qlobber-sub.js";
import { QlobberTrue } from "qlobber";
import type { BrokerStore, ClientRef, Origin, StoredPacket as AnyPacket, StoredSubscription as Sub } from "./store.ts";

/**
 * aedes persistence on SQLite (better-sqlite3): sessions, subscriptions, queued QoS 1/2 messages, inbound
 * QoS 2 state, retained messages and wills survive a restart of the gateway process, also kill -9 (WAL).
 *
 * It implements the async interface of aedes-persistence 11 (store.ts) and passes its abstract test suite
 * (contract.test.ts). Subscriptions and retained messages are also kept in memory (write-through), because
 * aedes matches them on every publish; the outgoing and incoming queues live only in the database.
 */

type SubRecord = Omit<Sub, "topic">;

// aedes-packet's typings declare a namespace; at run time the module is the Packet constructor itself.
const Packet = aedesPacket as unknown as new (original: AnyPacket) => AnyPacket;

const QLOBBER_OPTIONS = { wildcard_one: "+", wildcard_some: "#", separator: "/" };
export const BROKER_DB_FILE_NAME = "broker.sqlite";
const SCHEMA_VERSION = 2;

export interface SqlitePersistenceOptions {
  /** The database file is `<dataDir>/broker.sqlite`. */
  dataDir?: string;
  /** Or an explicit file (":memory:" for tests). */
  file?: string;
}

export class ErrPersistenceClosed extends Error {
  override name = "ErrPersistenceClosed";
}

export class SqlitePersistence implements BrokerStore {
  private readonly db: Database.Database;
  private readonly retained = new Map<string, AnyPacket>();
  private readonly subscriptions = new Map<string, Map<string, SubRecord>>();
  private readonly trie = new QlobberSub(QLOBBER_OPTIONS);
  private brokerRef: { id: string } | undefined;
  private destroyed = false;
  private readonly sql;

  constructor(opts: SqlitePersistenceOptions) {
    const file = opts.file ?? (opts.dataDir === undefined ? undefined : join(opts.dataDir, BROKER_DB_FILE_NAME));
    if (file === undefined) throw new Error("SqlitePersistence needs dataDir or file");
    this.db = new Database(file);
    // WAL + NORMAL: a committed write survives kill -9 of the process (the OS has it); only a power cut can
    // lose the last transactions. FULL would fsync every PUBACKed message, too slow for an SD card.
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    migrate(this.db);
    this.sql = prepare(this.db);
    this.load();
  }

  /** The broker: aedes passes itself; the abstract tests pass a stub. Wills are stamped with its id. */
  get broker(): { id: string } | undefined {
    return this.brokerRef;
  }

  async setup(broker: { id: string }): Promise<void> {
    this.brokerRef = broker;
  }

  // ---- retained ---------------------------------------------------------------------------------------
  async storeRetained(pkt: AnyPacket): Promise<void> {
    this.open();
    const packet = { ...pkt };
    if (packet.payload.length === 0) {
      this.retained.delete(packet.topic);
      this.sql.deleteRetained.run(packet.topic);
    } else {
      this.retained.set(packet.topic, packet);
      const { meta, payload } = encode(packet);
      this.sql.upsertRetained.run(packet.topic, meta, payload);
    }
  }

  createRetainedStream(pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern]);
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    const matched: AnyPacket[] = [];
    for (const pattern of patterns) {
      const matcher = new QlobberTrue(QLOBBER_OPTIONS).add(pattern);
      for (const [topic, packet] of this.retained) if (matcher.test(topic)) matched.push(packet);
    }
    return Readable.from(matched);
  }

  // ---- subscriptions ----------------------------------------------------------------------------------
  async addSubscriptions(client: ClientRef, subs: Sub[]): Promise<void> {
    this.open();
    let stored = this.subscriptions.get(client.id);
    if (stored === undefined) {
      stored = new Map();
      this.subscriptions.set(client.id, stored);
    }
    const write = this.db.transaction((records: [string, SubRecord][]) => {
      for (const [topic, record] of records) this.sql.upsertSubscription.run(client.id, topic, JSON.stringify(record));
    });
    const records: [string, SubRecord][] = [];
    for (const sub of subs) {
      const record: SubRecord = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl };
      if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier;
      const previous = stored.get(sub.topic);
      // Only QoS > 0 subscriptions get offline messages (same rule as aedes-persistence's memory store).
      if (sub.qos > 0) {
        this.trie.add(sub.topic, { clientId: client.id, topic: sub.topic, qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl });
      } else if (previous !== undefined && previous.qos > 0) {
        this.trie.remove(sub.topic, { clientId: client.id, topic: sub.topic });
      }
      stored.set(sub.topic, record);
      records.push([sub.topic, record]);
    }
    write(records);
  }

  async removeSubscriptions(client: ClientRef, topics: string[]): Promise<void> {
    this.open();
    const stored = this.subscriptions.get(client.id);
    if (stored === undefined) return;
    this.db.transaction(() => {
      for (const topic of topics) {
        const record = stored.get(topic);
        if (record === undefined) continue;
        if (record.qos > 0) this.trie.remove(topic, { clientId: client.id, topic });
        stored.delete(topic);
        this.sql.deleteSubscription.run(client.id, topic);
      }
    })();
    if (stored.size === 0) this.subscriptions.delete(client.id);
  }

  async subscriptionsByClient(client: ClientRef): Promise<Sub[]> {
    const stored = this.subscriptions.get(client.id);
    return stored === undefined ? [] : [...stored].map(([topic, record]) => ({ topic, ...record }));
  }

  async countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    return { subsCount: this.trie.subscriptionsCount, clientsCount: this.subscriptions.size };
  }

  async subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string; qos: number }>> {
    return this.trie.match(topic);
  }

  async cleanSubscriptions(client: ClientRef): Promise<void> {
    this.open();
    const stored = this.subscriptions.get(client.id);
    if (stored === undefined) return;
    for (const [topic, record] of stored) {
      if (record.qos > 0) this.trie.remove(topic, { clientId: client.id, topic });
    }
    this.subscriptions.delete(client.id);
    this.sql.deleteClientSubscriptions.run(client.id);
  }

  getClientList(topic: string): Readable {
    const clients: string[] = [];
    for (const [clientId, stored] of this.subscriptions) if (stored.has(topic)) clients.push(clientId);
    return Readable.from(clients);
  }

  // ---- outgoing queue (broker → subscriber, QoS 1/2) --------------------------------------------------
  async outgoingEnqueue(sub: { clientId: string }, packet: AnyPacket): Promise<void> {
    await this.outgoingEnqueueCombi([sub], packet);
  }

  async outgoingEnqueueCombi(subs: Array<{ clientId: string; qos?: number }>, packet: AnyPacket): Promise<void> {
    this.open();
    if (subs.length === 0) return;
    // Normalised exactly like the memory store (a fresh Packet: no message id until aedes sends it), but queued
    // at the QoS each subscriber was granted: aedes sends a queued packet as stored (see granted-qos.ts).
    const encoded = new Map<number, ReturnType<typeof encode>>();
    const encodedAt = (qos: number) => {
      let e = encoded.get(qos);
      if (e === undefined) {
        const copy = new Packet(packet);
        copy.qos = qos;
        encoded.set(qos, (e = encode(copy)));
      }
      return e;
    };
    this.db.transaction(() => {
      for (const sub of subs) {
        const qos = typeof sub.qos === "number" && sub.qos < packet.qos ? sub.qos : packet.qos;
        const { meta, payload } = encodedAt(qos);
        this.sql.insertOutgoing.run(sub.clientId, packet.brokerId ?? null, packet.brokerCounter ?? null, meta, payload);
      }
    })();
  }

  /**
   * Same matching as asyncPersistence.js: the packet that was enqueued (same broker id and counter) gets its
   * message id; otherwise a packet from another origin with the same message id is replaced (PUBLISH → PUBREL).
   */
  async outgoingUpdate(client: ClientRef, packet: AnyPacket): Promise<void> {
    this.open();
    const brokerId = packet.brokerId ?? null;
    const brokerCounter = packet.brokerCounter ?? null;
    const messageId = packet.messageId ?? null;
    if (brokerId === null) {
      // A PUBREL has no origin: it replaces the flow that holds its message id (the PUBLISH, or the PUBREL
      // stored before a reconnect). Matching on the NULL origin instead would renumber an older, unrelated
      // PUBREL row and leave this flow's PUBLISH queued, to be sent again after every restart (soak finding).
      const flow = this.sql.findOutgoingRowByMessageId.get(client.id, messageId) as OutgoingRow | undefined;
      if (flow === undefined) throw new Error("no such packet");
      const { meta, payload } = encode(packet);
      this.sql.replaceOutgoing.run(null, null, messageId, meta, payload, flow.seq);
      return;
    }
    const same = this.sql.findOutgoingByOrigin.get(client.id, brokerId, brokerCounter) as { seq: number } | undefined;
    if (same !== undefined) {
      this.sql.setOutgoingMessageId.run(messageId, same.seq);
      return;
    }
    const other = this.sql.findOutgoingByMessageId.get(client.id, messageId, brokerId) as { seq: number } | undefined;
    if (other === undefined) throw new Error("no such packet");
    const { meta, payload } = encode(packet);
    this.sql.replaceOutgoing.run(brokerId, brokerCounter, messageId, meta, payload, other.seq);
  }

  /**
   * Gives every queued copy of one message (all subscribers) a new origin; returns the client ids whose copy
   * it moved. Used by queue-before-ack.ts: the message is queued before aedes numbers it.
   */
  async outgoingAdoptOrigin(from: Origin, to: Origin): Promise<string[]> {
    this.open();
    const rows = this.sql.adoptOrigin.all(to.brokerId, to.brokerCounter, from.brokerId, from.brokerCounter) as Array<{ client_id: string }>;
    return rows.map((row) => row.client_id);
  }

  /** Whether a queued message of this client other than `origin`'s holds `messageId` (see unique-packet-ids.ts). */
  async outgoingMessageIdTaken(clientId: string, messageId: number, origin: Partial<Origin>): Promise<boolean> {
    this.open();
    return this.sql.messageIdTaken.get(clientId, messageId, origin.brokerId ?? null, origin.brokerCounter ?? null) !== undefined;
  }

  async outgoingClearMessageId(client: ClientRef, packet: AnyPacket): Promise<AnyPacket | undefined> {
    this.open();
    if (typeof packet?.messageId !== "number") return undefined;
    const row = this.sql.findOutgoingRowByMessageId.get(client.id, packet.messageId) as OutgoingRow | undefined;
    if (row === undefined) return undefined;
    this.sql.deleteOutgoing.run(row.seq);
    return decodeOutgoing(row);
  }

  outgoingStream(client: ClientRef): Readable {
    this.open();
    const rows = this.sql.outgoingByClient.all(client.id) as OutgoingRow[];
    return Readable.from(rows.map(decodeOutgoing));
  }

  // ---- incoming QoS 2 (publisher → broker, between PUBREC and PUBREL) ---------------------------------
  async incomingStorePacket(client: ClientRef, packet: AnyPacket): Promise<void> {
    this.open();
    const stored = new Packet(packet);
    stored.messageId = packet.messageId;
    const { meta, payload } = encode(stored);
    this.sql.upsertIncoming.run(client.id, packet.messageId, meta, payload);
  }

  async incomingGetPacket(client: ClientRef, packet: AnyPacket): Promise<AnyPacket> {
    this.open();
    const row = this.sql.getIncoming.get(client.id, packet.messageId) as PacketRow | undefined;
    if (row === undefined) throw new Error("no such packet");
    return decode(row.meta, row.payload);
  }

  async incomingDelPacket(client: ClientRef, packet: AnyPacket): Promise<void> {
    this.open();
    const result = this.sql.deleteIncoming.run(client.id, packet.messageId);
    if (result.changes === 0) throw new Error("no such packet");
  }

  async cleanIncoming(client: ClientRef): Promise<void> {
    this.open();
    this.sql.deleteClientIncoming.run(client.id);
  }

  // ---- wills ------------------------------------------------------------------------------------------
  async putWill(client: ClientRef, packet: AnyPacket): Promise<void> {
    this.open();
    packet.brokerId = this.brokerRef?.id;
    packet.clientId = client.id;
    const { meta, payload } = encode(packet);
    this.sql.upsertWill.run(client.id, packet.brokerId ?? null, meta, payload);
  }

  async getWill(client: ClientRef): Promise<AnyPacket | undefined> {
    this.open();
    const row = this.sql.getWill.get(client.id) as PacketRow | undefined;
    return row === undefined ? undefined : decode(row.meta, row.payload);
  }

  async delWill(client: ClientRef): Promise<AnyPacket | undefined> {
    const will = await this.getWill(client);
    this.sql.deleteWill.run(client.id);
    return will;
  }

  /** Wills of brokers not in `brokers` (after a restart: the previous run of this broker). */
  streamWill(brokers: Record<string, number> = {}): Readable {
    this.open();
    const rows = this.sql.allWills.all() as Array<PacketRow & { broker_id: string | null }>;
    const wills = rows.filter((row) => row.broker_id === null || !brokers[row.broker_id]);
    return Readable.from(wills.map((row) => decode(row.meta, row.payload)));
  }

  /** Closes the database. Safe to call twice; any later call fails with ErrPersistenceClosed. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    this.db.close();
  }

  private open(): void {
    if (this.destroyed) throw new ErrPersistenceClosed("broker persistence is closed");
  }

  private load(): void {
    for (const row of this.sql.allRetained.all() as Array<PacketRow & { topic: string }>) {
      this.retained.set(row.topic, decode(row.meta, row.payload));
    }
    for (const row of this.sql.allSubscriptions.all() as Array<{ client_id: string; topic: string; record: string }>) {
      const record = JSON.parse(row.record) as SubRecord;
      let stored = this.subscriptions.get(row.client_id);
      if (stored === undefined) this.subscriptions.set(row.client_id, (stored = new Map()));
      stored.set(row.topic, record);
      if (record.qos > 0) {
        this.trie.add(row.topic, { clientId: row.client_id, topic: row.topic, qos: record.qos, rh: record.rh, rap: record.rap, nl: record.nl });
      }
    }
  }
}

interface PacketRow {
  meta: string;
  payload: Buffer | null;
}
interface OutgoingRow extends PacketRow {
  seq: number;
  broker_id: string | null;
  broker_counter: number | null;
  message_id: number | null;
}

function migrate(db: Database.Database): void {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version === SCHEMA_VERSION) return;
  if (version > SCHEMA_VERSION) throw new Error(`broker database schema ${version} is newer than this gateway (${SCHEMA_VERSION})`);
  db.transaction(() => {
    if (version === 0) createSchemaV1(db);
    // v2: every PUBACK looks a message up by packet id and every send by origin; without these indexes both
    // scan the client's whole queue, which is long for a gateway that was down for a while.
    db.exec(`
      CREATE INDEX IF NOT EXISTS outgoing_by_message_id ON outgoing (client_id, message_id);
      CREATE INDEX IF NOT EXISTS outgoing_by_origin ON outgoing (broker_id, broker_counter);
      PRAGMA user_version = ${SCHEMA_VERSION};
    `);
  })();
}

function createSchemaV1(db: Database.Database): void {
  db.exec(`
    CREATE TABLE retained (topic TEXT PRIMARY KEY, meta TEXT NOT NULL, payload BLOB);
    CREATE TABLE subscriptions (client_id TEXT NOT NULL, topic TEXT NOT NULL, record TEXT NOT NULL,
      PRIMARY KEY (client_id, topic));
    CREATE TABLE outgoing (seq INTEGER PRIMARY KEY AUTOINCREMENT, client_id TEXT NOT NULL, broker_id TEXT,
      broker_counter INTEGER, message_id INTEGER, meta TEXT NOT NULL, payload BLOB);
    CREATE INDEX outgoing_by_client ON outgoing (client_id, seq);
    CREATE TABLE incoming (client_id TEXT NOT NULL, message_id INTEGER NOT NULL, meta TEXT NOT NULL, payload BLOB,
      PRIMARY KEY (client_id, message_id));
    CREATE TABLE wills (client_id TEXT PRIMARY KEY, broker_id TEXT, meta TEXT NOT NULL, payload BLOB);
  `);
}

function prepare(db: Database.Database) {
  return {
    allRetained: db.prepare("SELECT topic, meta, payload FROM retained"),
    upsertRetained: db.prepare("INSERT OR REPLACE INTO retained (topic, meta, payload) VALUES (?, ?, ?)"),
    deleteRetained: db.prepare("DELETE FROM retained WHERE topic = ?"),
    allSubscriptions: db.prepare("SELECT client_id, topic, record FROM subscriptions"),
    upsertSubscription: db.prepare("INSERT OR REPLACE INTO subscriptions (client_id, topic, record) VALUES (?, ?, ?)"),
    deleteSubscription: db.prepare("DELETE FROM subscriptions WHERE client_id = ? AND topic = ?"),
    deleteClientSubscriptions: db.prepare("DELETE FROM subscriptions WHERE client_id = ?"),
    insertOutgoing: db.prepare(
      "INSERT INTO outgoing (client_id, broker_id, broker_counter, message_id, meta, payload) VALUES (?, ?, ?, NULL, ?, ?)",
    ),
    findOutgoingByOrigin: db.prepare(
      "SELECT seq FROM outgoing WHERE client_id = ? AND broker_id IS ? AND broker_counter IS ? ORDER BY seq LIMIT 1",
    ),
    findOutgoingByMessageId: db.prepare(
      "SELECT seq FROM outgoing WHERE client_id = ? AND message_id = ? AND broker_id IS NOT ? ORDER BY seq LIMIT 1",
    ),
    messageIdTaken: db.prepare(
      "SELECT 1 FROM outgoing WHERE client_id = ? AND message_id = ? AND NOT (broker_id IS ? AND broker_counter IS ?) LIMIT 1",
    ),
    findOutgoingRowByMessageId: db.prepare(
      "SELECT seq, broker_id, broker_counter, message_id, meta, payload FROM outgoing WHERE client_id = ? AND message_id = ? ORDER BY seq LIMIT 1",
    ),
    adoptOrigin: db.prepare(
      "UPDATE outgoing SET broker_id = ?, broker_counter = ? WHERE broker_id = ? AND broker_counter = ? RETURNING client_id",
    ),
    setOutgoingMessageId: db.prepare("UPDATE outgoing SET message_id = ? WHERE seq = ?"),
    replaceOutgoing: db.prepare(
      "UPDATE outgoing SET broker_id = ?, broker_counter = ?, message_id = ?, meta = ?, payload = ? WHERE seq = ?",
    ),
    deleteOutgoing: db.prepare("DELETE FROM outgoing WHERE seq = ?"),
    outgoingByClient: db.prepare(
      "SELECT seq, broker_id, broker_counter, message_id, meta, payload FROM outgoing WHERE client_id = ? ORDER BY seq",
    ),
    upsertIncoming: db.prepare("INSERT OR REPLACE INTO incoming (client_id, message_id, meta, payload) VALUES (?, ?, ?, ?)"),
    getIncoming: db.prepare("SELECT meta, payload FROM incoming WHERE client_id = ? AND message_id = ?"),
    deleteIncoming: db.prepare("DELETE FROM incoming WHERE client_id = ? AND message_id = ?"),
    deleteClientIncoming: db.prepare("DELETE FROM incoming WHERE client_id = ?"),
    upsertWill: db.prepare("INSERT OR REPLACE INTO wills (client_id, broker_id, meta, payload) VALUES (?, ?, ?, ?)"),
    getWill: db.prepare("SELECT meta, payload FROM wills WHERE client_id = ?"),
    deleteWill: db.prepare("DELETE FROM wills WHERE client_id = ?"),
    allWills: db.prepare("SELECT broker_id, meta, payload FROM wills"),
  };
}

/** Packet → JSON of every field but a binary payload (kept as a BLOB). `writeCallback` and friends are dropped. */
function encode(packet: AnyPacket): { meta: string; payload: Buffer | null } {
  const { payload, ...rest } = packet;
  const fields: AnyPacket = {};
  for (const [key, value] of Object.entries(rest)) if (typeof value !== "function") fields[key] = value;
  // A string payload (aedes.publish from code) stays a string in the JSON, as the memory store keeps it.
  if (typeof payload === "string") fields.payload = payload;
  const body = payload === undefined || typeof payload === "string" ? null : Buffer.from(payload);
  return { meta: JSON.stringify(fields), payload: body };
}

function decode(meta: string, payload: Buffer | null): AnyPacket {
  const packet = JSON.parse(meta, reviveBuffers) as AnyPacket;
  if (payload !== null) packet.payload = payload;
  return packet;
}

function decodeOutgoing(row: OutgoingRow): AnyPacket {
  const packet = decode(row.meta, row.payload);
  // The columns, not the JSON, hold the origin: outgoingAdoptOrigin changes it after the row was written.
  if (row.broker_id !== null) packet.brokerId = row.broker_id;
  if (row.broker_counter !== null) packet.brokerCounter = row.broker_counter;
  // Like the memory store: a queued PUBLISH has a messageId key (undefined until sent).
  if (row.message_id !== null || packet.cmd !== "publish" || packet.qos > 0) packet.messageId = row.message_id ?? undefined;
  return packet;
}

// JSON.stringify turns a Buffer (e.g. MQTT 5 correlation data in `properties`) into {type:"Buffer",data:[…]}.
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
