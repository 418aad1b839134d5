import { StoreDecorator, type ClientRef, type StoredPacket } from "./store.ts";

/**
 * Keeps the packet ids of a session's in-flight messages unique (MQTT 3.1.1 [MQTT-2.3.1-2]).
 *
 * aedes numbers a connection's outgoing packets from a random start (lib/client.js `_nextId`), but a resumed
 * persistent session still holds unacknowledged messages with the ids of an earlier connection or an earlier
 * run of the broker, which it re-sends with those ids [MQTT-4.4.0-1]. When a new message draws one of them,
 * the subscriber's PUBACK for it deletes the older message from the queue before that one was delivered: the
 * lost readings of test/gateway/resume.test.ts (kill -9), reproduced in test/brokers/durability.test.ts.
 *
 * aedes assigns the id, then calls persistence.outgoingUpdate and writes that same packet object, so the
 * id can still be moved here to the next free one. aedes-persistence's contract allows duplicate ids in the
 * store (its abstract suite tests it), so the rule lives in this decorator, not in the store.
 */
export class UniquePacketIds extends StoreDecorator {
  override async outgoingUpdate(client: ClientRef, packet: StoredPacket): Promise<void> {
    // PUBREL keeps the id of the PUBLISH it completes; only a PUBLISH being (re)sent is numbered here.
    if (packet.cmd === "publish" && typeof packet.messageId === "number") {
      const origin = { brokerId: packet.brokerId, brokerCounter: packet.brokerCounter };
      let id = packet.messageId;
      for (let tries = 0; await this.inner.outgoingMessageIdTaken(client.id, id, origin); tries++) {
        if (tries === MAX_PACKET_ID) throw new ErrNoFreePacketId(`no free packet id for ${client.id}`);
        id = id === MAX_PACKET_ID ? 1 : id + 1;
      }
      packet.messageId = id;
    }
    return this.inner.outgoingUpdate(client, packet);
  }
}

const MAX_PACKET_ID = 65_535;

export class ErrNoFreePacketId extends Error {
  override name = "ErrNoFreePacketId";
}
