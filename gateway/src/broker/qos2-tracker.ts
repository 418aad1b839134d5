import type { Client, PublishPacket, PubrelPacket } from "aedes";

/**
 * aedes reports a completed QoS 2 delivery (PUBCOMP) with the stored PUBREL, which has no topic or payload
 * (lib/handlers/pubrec.js replaces the PUBLISH by the PUBREL in the outgoing store). To tell the gateway
 * *which* message reached the device, remember the topic when aedes assigns the packet id
 * (persistence.outgoingUpdate) and look it up on the ack. In memory only: a QoS 2 flow that spans a broker
 * restart completes without a `delivered` event. QoS 1 acks carry the PUBLISH itself and need none of this.
 */
export interface AckedMessage {
  topic: string;
  payload: Buffer;
  qos: 1 | 2;
  messageId: number;
}

export interface OutgoingQos2Tracker {
  acked(clientId: string, packet: PublishPacket | PubrelPacket | undefined): AckedMessage | undefined;
}

// Bounds memory when subscribers never complete QoS 2 flows (payloads are ≤ 1 KB by contract).
const MAX_PENDING = 10_000;

interface Updatable {
  outgoingUpdate(client: Client, packet: PublishPacket): Promise<unknown>;
}

export function trackOutgoingQos2(persistence: Updatable): OutgoingQos2Tracker {
  const pending = new Map<string, { topic: string; payload: Buffer }>();
  const outgoingUpdate = persistence.outgoingUpdate.bind(persistence);
  persistence.outgoingUpdate = async (client, packet) => {
    const result = await outgoingUpdate(client, packet);
    // After the update: a wrapper (unique-packet-ids.ts) may have moved the packet id.
    if (packet.cmd === "publish" && packet.qos === 2 && typeof packet.messageId === "number") {
      const key = `${client.id}\0${packet.messageId}`;
      pending.delete(key); // re-insert at the end: Map order is the eviction order
      pending.set(key, { topic: packet.topic, payload: toBuffer(packet.payload) });
      if (pending.size > MAX_PENDING) pending.delete(pending.keys().next().value!);
    }
    return result;
  };

  return {
    acked(clientId, packet) {
      if (packet === undefined || packet === null || typeof packet.messageId !== "number") return undefined;
      if (packet.cmd === "publish") {
        if (packet.qos !== 1 && packet.qos !== 2) return undefined;
        return { topic: packet.topic, payload: toBuffer(packet.payload), qos: packet.qos, messageId: packet.messageId };
      }
      const key = `${clientId}\0${packet.messageId}`;
      const sent = pending.get(key);
      if (sent === undefined) return undefined;
      pending.delete(key);
      return { ...sent, qos: 2, messageId: packet.messageId };
    },
  };
}

function toBuffer(payload: string | Buffer): Buffer {
  return typeof payload === "string" ? Buffer.from(payload) : payload;
}
