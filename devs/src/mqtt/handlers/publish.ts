import type { Connection } from "../connection"
import { decodePublish, type Packet } from "../reader"
import { encodeAck, PUBACK, PUBREC } from "../packets"

/**
 * Inbound PUBLISH (spec 4.3). The application handler runs first and its promise settles only
 * once the message's effects are durable; only then is it acknowledged, so a power cut before the
 * ack makes the broker deliver it again rather than lose it. QoS 2 (method B): an id already
 * between PUBREC and PUBREL is a resend and is not handed to the application again. Messages over
 * the wake's budget never get here (Connection.enqueue): unacknowledged, the broker delivers them again.
 */
export async function handlePublish(conn: Connection, p: Packet) {
    const msg = decodePublish(p)
    if (msg.qos === 2 && conn.session.inboundQos2.indexOf(msg.packetId) >= 0) {
        await conn.send(encodeAck(PUBREC, msg.packetId))
        return
    }
    // a skipped oversized message is acknowledged unread (and counted): redelivering it helps nobody
    if (p.truncated) conn.onOversized(msg)
    else await conn.onMessage(msg)
    if (msg.qos === 1) await conn.send(encodeAck(PUBACK, msg.packetId))
    else if (msg.qos === 2) await conn.send(encodeAck(PUBREC, msg.packetId))
}
