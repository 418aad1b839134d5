import type { Readable } from "node:stream";

/** A packet as aedes hands it to the store (aedes-packet's Packet: cmd, topic, payload, qos, messageId, origin …). */
export type StoredPacket = Record<string, any> & { messageId?: number };
export interface ClientRef {
  id: string;
}
/** Where a message entered the broker: aedes stamps each publish with its broker id and a counter. */
export interface Origin {
  brokerId: string;
  brokerCounter: number;
}
export interface StoredSubscription {
  topic: string;
  qos: number;
  rh?: number;
  rap?: boolean;
  nl?: boolean;
  subscriptionIdentifier?: number;
}

/**
 * The persistence interface aedes 1.2 calls: the promise flavour of aedes-persistence 11 (asyncPersistence.js is
 * the reference; the package's types/index.d.ts still describe the callback flavour). aedes checks that `setup`
 * is an async function (aedes.js), so every implementation declares it `async`.
 */
export interface AedesStore {
  readonly broker: { id: string } | undefined;
  setup(broker: { id: string }): Promise<void>;
  storeRetained(packet: StoredPacket): Promise<void>;
  createRetainedStream(pattern: string): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
  addSubscriptions(client: ClientRef, subs: StoredSubscription[]): Promise<void>;
  removeSubscriptions(client: ClientRef, topics: string[]): Promise<void>;
  subscriptionsByClient(client: ClientRef): Promise<StoredSubscription[]>;
  countOffline(): Promise<{ subsCount: number; clientsCount: number }>;
  subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string; qos: number }>>;
  cleanSubscriptions(client: ClientRef): Promise<void>;
  getClientList(topic: string): Readable;
  outgoingEnqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void>;
  outgoingEnqueueCombi(subs: Array<{ clientId: string; qos?: number }>, packet: StoredPacket): Promise<void>;
  outgoingUpdate(client: ClientRef, packet: StoredPacket): Promise<void>;
  outgoingClearMessageId(client: ClientRef, packet: StoredPacket): Promise<StoredPacket | undefined>;
  outgoingStream(client: ClientRef): Readable;
  incomingStorePacket(client: ClientRef, packet: StoredPacket): Promise<void>;
  incomingGetPacket(client: ClientRef, packet: StoredPacket): Promise<StoredPacket>;
  incomingDelPacket(client: ClientRef, packet: StoredPacket): Promise<void>;
  cleanIncoming(client: ClientRef): Promise<void>;
  putWill(client: ClientRef, packet: StoredPacket): Promise<void>;
  getWill(client: ClientRef): Promise<StoredPacket | undefined>;
  delWill(client: ClientRef): Promise<StoredPacket | undefined>;
  streamWill(brokers?: Record<string, number>): Readable;
  destroy(): Promise<void>;
}

/** Lookups in the outgoing queue that the broker's rules (stack.ts) need beyond aedes' interface. */
export interface OutgoingIndex {
  /** Gives every queued copy of one message a new origin; returns the client ids whose copy moved. */
  outgoingAdoptOrigin(from: Origin, to: Origin): Promise<string[]>;
  /** Whether a queued message of this client other than `origin`'s holds `messageId`. */
  outgoingMessageIdTaken(clientId: string, messageId: number, origin: Partial<Origin>): Promise<boolean>;
}

/** What the embedded broker runs on: SqlitePersistence, RedisPersistence (broker nodes), or a test's own store. */
export interface BrokerStore extends AedesStore, OutgoingIndex {}

/**
 * Passes every call to `inner`, read at call time (a test may swap one method of the inner store to inject a
 * fault). A decorator extends it and overrides only the methods its rule changes.
 */
export class StoreDecorator implements BrokerStore {
  constructor(protected readonly inner: BrokerStore) {}

  get broker(): { id: string } | undefined {
    return this.inner.broker;
  }
  async setup(broker: { id: string }): Promise<void> {
    await this.inner.setup(broker);
  }
  storeRetained(packet: StoredPacket): Promise<void> {
    return this.inner.storeRetained(packet);
  }
  createRetainedStream(pattern: string): Readable {
    return this.inner.createRetainedStream(pattern);
  }
  createRetainedStreamCombi(patterns: string[]): Readable {
    return this.inner.createRetainedStreamCombi(patterns);
  }
  addSubscriptions(client: ClientRef, subs: StoredSubscription[]): Promise<void> {
    return this.inner.addSubscriptions(client, subs);
  }
  removeSubscriptions(client: ClientRef, topics: string[]): Promise<void> {
    return this.inner.removeSubscriptions(client, topics);
  }
  subscriptionsByClient(client: ClientRef): Promise<StoredSubscription[]> {
    return this.inner.subscriptionsByClient(client);
  }
  countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    return this.inner.countOffline();
  }
  subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string; qos: number }>> {
    return this.inner.subscriptionsByTopic(topic);
  }
  cleanSubscriptions(client: ClientRef): Promise<void> {
    return this.inner.cleanSubscriptions(client);
  }
  getClientList(topic: string): Readable {
    return this.inner.getClientList(topic);
  }
  outgoingEnqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    return this.inner.outgoingEnqueue(sub, packet);
  }
  outgoingEnqueueCombi(subs: Array<{ clientId: string; qos?: number }>, packet: StoredPacket): Promise<void> {
    return this.inner.outgoingEnqueueCombi(subs, packet);
  }
  outgoingUpdate(client: ClientRef, packet: StoredPacket): Promise<void> {
    return this.inner.outgoingUpdate(client, packet);
  }
  outgoingClearMessageId(client: ClientRef, packet: StoredPacket): Promise<StoredPacket | undefined> {
    return this.inner.outgoingClearMessageId(client, packet);
  }
  outgoingStream(client: ClientRef): Readable {
    return this.inner.outgoingStream(client);
  }
  incomingStorePacket(client: ClientRef, packet: StoredPacket): Promise<void> {
    return this.inner.incomingStorePacket(client, packet);
  }
  incomingGetPacket(client: ClientRef, packet: StoredPacket): Promise<StoredPacket> {
    return this.inner.incomingGetPacket(client, packet);
  }
  incomingDelPacket(client: ClientRef, packet: StoredPacket): Promise<void> {
    return this.inner.incomingDelPacket(client, packet);
  }
  cleanIncoming(client: ClientRef): Promise<void> {
    return this.inner.cleanIncoming(client);
  }
  putWill(client: ClientRef, packet: StoredPacket): Promise<void> {
    return this.inner.putWill(client, packet);
  }
  getWill(client: ClientRef): Promise<StoredPacket | undefined> {
    return this.inner.getWill(client);
  }
  delWill(client: ClientRef): Promise<StoredPacket | undefined> {
    return this.inner.delWill(client);
  }
  streamWill(brokers?: Record<string, number>): Readable {
    return this.inner.streamWill(brokers);
  }
  destroy(): Promise<void> {
    return this.inner.destroy();
  }
  outgoingAdoptOrigin(from: Origin, to: Origin): Promise<string[]> {
    return this.inner.outgoingAdoptOrigin(from, to);
  }
  outgoingMessageIdTaken(clientId: string, messageId: number, origin: Partial<Origin>): Promise<boolean> {
    return this.inner.outgoingMessageIdTaken(clientId, messageId, origin);
  }
}
