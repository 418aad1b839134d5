import { randomUUID } from "node:crypto";
import type { PublishPacket } from "aedes";
import type { Origin } from "./sqlite-persistence.ts";

/**
 * Makes a QoS 1 PUBACK from the embedded broker mean "on disk".
 *
 * aedes 1.2 writes the PUBACK first and queues the message for persistent subscribers afterwards
 * (lib/handlers/publish.js enqueuePublish: write(PubAck) → broker.publish → enqueueOffline). A kill -9 in
 * between lost messages the publisher had already forgotten: whole bursts of readings (e.g. seq 41–50) in
 * test/gateway/resume.test.ts, reproduced in test/brokers/embedded-broker.test.ts. authorizePublish is the
 * last hook before that PUBACK, so the broker calls {@link QueueBeforeAck.queue} from there: the copies for
 * persistent subscribers are written then, under an origin of their own. When aedes queues the same message
 * a moment later, those rows are adopted (they take the origin aedes gave the message, which its live
 * delivery looks them up by) instead of being written twice. QoS 2 needs none of this: aedes stores it
 * before PUBREC.
 *
 * Still after the PUBACK, as in aedes: the retained copy (a crash there keeps the previous retained value;
 * the queued copies are safe). If the PUBACK cannot be written (the publisher's connection just closed),
 * aedes never publishes: the early rows stay queued and reach the subscriber on its next reconnect, next to
 * the publisher's re-sent copy; readings are de-duplicated by (device, seq) downstream.
 */
export interface EarlyQueueStore {
  subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string }>>;
  outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: object): Promise<void>;
  outgoingAdoptOrigin(from: Origin, to: Origin): string[];
}

export interface QueueBeforeAck {
  /** Queues a QoS 1 PUBLISH from a client for every persistent subscriber; other QoS pass through. */
  queue(packet: PublishPacket): Promise<void>;
}

/** Installs the adopt step in `store.outgoingEnqueueCombi` and returns the early-queue step. */
export function queueBeforeAck(store: EarlyQueueStore): QueueBeforeAck {
  // An origin namespace of its own, so early rows never share a counter with aedes' publishes (its per-client
  // de-duplication in lib/client.js drops a packet whose counter is lower than one already delivered).
  const earlyBrokerId = `before-ack-${randomUUID()}`;
  let counter = 0;
  // Keyed by the payload Buffer: aedes' Packet copies it by reference from the PUBLISH it received to the
  // packet it queues, and nothing else of ours survives that copy. Weak, so an unadopted entry goes away.
  const early = new WeakMap<object, Origin>();
  const enqueue = store.outgoingEnqueueCombi.bind(store);

  store.outgoingEnqueueCombi = async (subs, packet) => {
    const { payload, brokerId, brokerCounter } = packet as { payload?: unknown; brokerId?: string; brokerCounter?: number };
    const origin = typeof payload === "object" && payload !== null ? early.get(payload) : undefined;
    if (origin === undefined || brokerId === undefined || brokerCounter === undefined) return enqueue(subs, packet);
    early.delete(payload as object);
    const adopted = new Set(store.outgoingAdoptOrigin(origin, { brokerId, brokerCounter }));
    // A persistent subscription made between the two steps still gets its copy.
    const late = subs.filter((sub) => !adopted.has(sub.clientId));
    if (late.length > 0) await enqueue(late, packet);
  };

  return {
    async queue(packet) {
      if (packet.qos !== 1) return;
      const subs = await store.subscriptionsByTopic(packet.topic);
      const origin: Origin = { brokerId: earlyBrokerId, brokerCounter: ++counter };
      await enqueue(subs, { ...packet, ...origin });
      early.set(packet.payload as object, origin);
    },
  };
}
