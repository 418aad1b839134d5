import type { PublishPacket, PubrelPacket } from "aedes";
import { StoreDecorator, type ClientRef, type StoredPacket } from "./store.ts";

/**
 * aedes reports a completed QoS 2 delivery (PUBCOMP) with the stored PUBREL, which has no topic or payload
 * (lib/handlers/pubrec.js replaces the PUBLISH by the PUBREL in the outgoing store). To tell the gateway
 * *which* message reached the device, remember the topic when aedes assigns the packet id (outgoingUpdate)
 * and look it up on the ack. In memory only: a QoS 2 flow that spans a broker restart completes without a
 * `delivered` event. QoS 1 acks carry the PUBLISH itself and need none of this.
 */
export interface AckedMessage {
  topic: string;
  payload: Buffer;
  qos: 1 | 2;
  messageId: number;
}

// Bounds memory when subscribers never complete QoS 2 flows (payloads are ≤ 1 KB by contract).
const MAX_PENDING = 10_000;

export class Qos2Tracker extends StoreDecorator {
  private readonly pending = new Map<string, { topic: string; payload: Buffer }>();

  override async outgoingUpdate(client: ClientRef, packet: StoredPacket): Promise<void> {
    await this.inner.outgoingUpdate(client, packet);
    // After the update, so only a stored flow is remembered, under the id the layers below settled on.
    if (packet.cmd === "publish" && packet.qos === 2 && typeof packet.messageId === "number") {
      const key = `${client.id}\0${packet.messageId}`;
      this.pending.delete(key); // re-insert at the end: Map order is the eviction order
      this.pending.set(key, { topic: packet.topic, payload: toBuffer(packet.payload) });
      if (this.pending.size > MAX_PENDING) this.pending.delete(this.pending.keys().next().value!);
    }
  }

  /** The message an aedes `ack` event completed, or undefined when it is unknown (e.g. from before a restart). */
  acked(clientId: string, packet: PublishPacket | PubrelPacket | undefined): AckedMessage | undefined {
    if (packet === undefined || packet === null || typeof packet.messageId !== "number") return undefined;
    if (packet.cmd === "publish") {
      if (packet.qos !== 1 && packet.qos !== 2) return undefined;
      return { topic: packet.topic, payload: toBuffer(packet.payload), qos: packet.qos, messageId: packet.messageId };
    }
    const key = `${clientId}\0${packet.messageId}`;
    const sent = this.pending.get(key);
    if (sent === undefined) return undefined;
    this.pending.delete(key);
    return { ...sent, qos: 2, messageId: packet.messageId };
  }
}

function toBuffer(payload: string | Buffer): Buffer {
  return typeof payload === "string" ? Buffer.from(payload) : payload;
}
