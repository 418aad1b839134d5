import type { Connection } from "../connection"
import { packetId, type Packet } from "../reader"

/** PUBCOMP ends a QoS 2 flow (spec 4.3.3). */
export function handlePubcomp(conn: Connection, p: Packet) {
    conn.session.completed(packetId(p.body, 0))
}
