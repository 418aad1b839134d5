import type { Connection } from "../connection"
import { packetId, type Packet } from "../reader"

/** SUBACK (spec 3.9): one return code per filter, 0x80 = failure. */
export function handleSuback(conn: Connection, p: Packet) {
    conn.onSuback(packetId(p.body, 0), p.body.length > 2 ? p.body[2] : 0x80)
}
