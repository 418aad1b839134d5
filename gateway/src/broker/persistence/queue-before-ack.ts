import { randomUUID } from "node:crypto";
import type { PublishPacket } from "aedes";
import { StoreDecorator, type Origin, type StoredPacket } from "./store.ts";

/**
 * Makes a QoS 1 PUBACK from the embedded broker mean "on disk".
 *
 * aedes 1.2 writes the PUBACK first and queues the message for persistent subscribers afterwards
 * (lib/handlers/publish.js enqueuePublish: write(PubAck) → broker.publish → enqueueOffline). A kill -9 in
 * between lost messages the publisher had already forgotten: whole bursts of readings (e.g. seq 41–50) in
 * test/gateway/resume.test.ts, reproduced in test/brokers/embedded-broker.test.ts. authorizePublish is the
 * last hook before that PUBACK, so the broker calls {@link QueueBeforeAck.queue} from there: the copies for
 * persistent subscribers are written then, under an origin of their own. When aedes queues the same message
 * a moment later (outgoingEnqueueCombi), those rows are adopted (they take the origin aedes gave the message,
 * which its live delivery looks them up by) instead of being written twice. QoS 2 needs none of this: aedes
 * stores it before PUBREC.
 *
 * Still after the PUBACK, as in aedes: the retained copy (a crash there keeps the previous retained value;
 * the queued copies are safe). If the PUBACK cannot be written (the publisher's connection just closed),
 * aedes never publishes: the early rows stay queued and reach the subscriber on its next reconnect, next to
 * the publisher's re-sent copy; readings are de-duplicated by (device, seq) downstream.
 */
export class QueueBeforeAck extends StoreDecorator {
  // An origin namespace of its own, so early rows never share a counter with aedes' publishes (its per-client
  // de-duplication in lib/client.js drops a packet whose counter is lower than one already delivered).
  private readonly earlyBrokerId = `before-ack-${randomUUID()}`;
  private counter = 0;
  // Keyed by the payload Buffer: aedes' Packet copies it by reference from the PUBLISH it received to the
  // packet it queues, and nothing else of ours survives that copy. Weak, so an unadopted entry goes away.
  private readonly early = new WeakMap<object, Origin>();

  /** Queues a QoS 1 PUBLISH from a client for every persistent subscriber; other QoS pass through. */
  async queue(packet: PublishPacket): Promise<void> {
    if (packet.qos !== 1) return;
    const subs = await this.inner.subscriptionsByTopic(packet.topic);
    const origin: Origin = { brokerId: this.earlyBrokerId, brokerCounter: ++this.counter };
    await this.inner.outgoingEnqueueCombi(subs, { ...packet, ...origin });
    this.early.set(packet.payload as object, origin);
  }

  override async outgoingEnqueueCombi(subs: Array<{ clientId: string; qos?: number }>, packet: StoredPacket): Promise<void> {
    const { payload, brokerId, brokerCounter } = packet;
    const origin = typeof payload === "object" && payload !== null ? this.early.get(payload) : undefined;
    if (origin === undefined || brokerId === undefined || brokerCounter === undefined) {
      return this.inner.outgoingEnqueueCombi(subs, packet);
    }
    this.early.delete(payload);
    const adopted = new Set(await this.inner.outgoingAdoptOrigin(origin, { brokerId, brokerCounter }));
    // A persistent subscription made between the two steps still gets its copy.
    const late = subs.filter((sub) => !adopted.has(sub.clientId));
    if (late.length > 0) await this.inner.outgoingEnqueueCombi(late, packet);
  }
}
