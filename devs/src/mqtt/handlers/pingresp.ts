import type { Connection } from "../connection"
import type { Packet } from "../reader"

export function handlePingresp(conn: Connection, p: Packet) {
    conn.onPingresp()
}
