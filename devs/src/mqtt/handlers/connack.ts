import type { Connection } from "../connection"
import type { Packet } from "../reader"

/** CONNACK (spec 3.2): byte 0 bit 0 = session present, byte 1 = return code. */
export function handleConnack(conn: Connection, p: Packet) {
    if (p.body.length < 2) throw new Error("mqtt: short CONNACK")
    conn.onConnack((p.body[0] & 1) === 1, p.body[1])
}
