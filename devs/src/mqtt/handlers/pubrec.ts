import type { Connection } from "../connection"
import { packetId, type Packet } from "../reader"
import { encodeAck, PUBREL } from "../packets"

/**
 * PUBREC: the broker holds our QoS 2 message (spec 4.3.3). PUBREL waits until the firmware has
 * committed the delivery to flash (Session.release): before PUBREL the broker still knows the id,
 * so a resend after a power cut cannot duplicate the message.
 */
export async function handlePubrec(conn: Connection, p: Packet) {
    const id = packetId(p.body, 0)
    const o = conn.session.find(id)
    if (!o) {
        // not ours any more (flow already finished): release it so the broker can forget it
        await conn.send(encodeAck(PUBREL, id))
        return
    }
    if (o.releasing) await conn.send(encodeAck(PUBREL, id))
    else conn.session.delivered(id, 2)
}
