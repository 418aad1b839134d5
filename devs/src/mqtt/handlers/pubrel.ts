import type { Connection } from "../connection"
import { packetId, type Packet } from "../reader"
import { encodeAck, PUBCOMP } from "../packets"

/** PUBREL for an inbound QoS 2 message: forget its id, answer PUBCOMP (spec 4.3.3, also for unknown ids). */
export async function handlePubrel(conn: Connection, p: Packet) {
    const id = packetId(p.body, 0)
    await conn.onInboundReleased(id)
    await conn.send(encodeAck(PUBCOMP, id))
}
