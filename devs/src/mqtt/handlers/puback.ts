import type { Connection } from "../connection"
import { packetId, type Packet } from "../reader"

/** PUBACK ends a QoS 1 flow (spec 4.3.2). An unknown id is ignored (a late ack after a resend). */
export function handlePuback(conn: Connection, p: Packet) {
    conn.session.delivered(packetId(p.body, 0), 1)
}
