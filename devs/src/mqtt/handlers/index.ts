import type { Connection } from "../connection"
import type { Packet } from "../reader"
import { CONNACK, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK } from "../packets"
import { handleConnack } from "./connack"
import { handlePuback } from "./puback"
import { handlePubrec } from "./pubrec"
import { handlePubcomp } from "./pubcomp"
import { handlePublish } from "./publish"
import { handlePubrel } from "./pubrel"
import { handleSuback } from "./suback"
import { handlePingresp } from "./pingresp"

/** Routes one packet from the broker to its handler; anything a client must not receive is an error. */
export async function dispatch(conn: Connection, p: Packet) {
    if (p.type === CONNACK) handleConnack(conn, p)
    else if (p.type === PUBLISH) await handlePublish(conn, p)
    else if (p.type === PUBACK) handlePuback(conn, p)
    else if (p.type === PUBREC) await handlePubrec(conn, p)
    else if (p.type === PUBREL) await handlePubrel(conn, p)
    else if (p.type === PUBCOMP) handlePubcomp(conn, p)
    else if (p.type === SUBACK) handleSuback(conn, p)
    else if (p.type === PINGRESP) handlePingresp(conn, p)
    else throw new Error(`mqtt: unexpected packet type ${p.type}`)
}
