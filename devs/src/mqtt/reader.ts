// Turns a TCP byte stream into MQTT packets. A read may hold part of a packet, exactly one, or
// several: bytes are buffered until a whole packet (fixed header + remaining length) is there.

export interface Packet {
    type: number
    /** low nibble of byte 1 (PUBLISH: dup, qos, retain) */
    flags: number
    body: Buffer
    /** the packet was longer than MAX_PACKET: `body` holds only its first HEAD_BYTES, the rest was skipped */
    truncated?: boolean
}

/**
 * Longest packet kept whole: a command payload of 1 KB (the contract's cap) plus its topic and header. A
 * longer one is skipped as it streams in (see next()), so the inbox (connection.ts) holds at most
 * INBOX_MAX × this in the 64 KB heap.
 */
export const MAX_PACKET = 1536
/** Of a skipped packet, this much is kept: a PUBLISH's topic and packet id, so it can be acknowledged. */
const HEAD_BYTES = 300

export class PacketReader {
    private pending: Buffer = Buffer.alloc(0)
    /** bytes of a skipped packet still to discard */
    private skipping = 0

    push(data: Buffer) {
        if (this.skipping > 0) {
            const n = Math.min(this.skipping, data.length)
            this.skipping -= n
            data = data.slice(n)
            if (!data.length) return
        }
        this.pending = this.pending.length ? Buffer.concat(this.pending, data) : data
    }

    /**
     * The next complete packet, or undefined when more bytes are needed.
     * Throws on a malformed length (spec 2.2.3 allows at most 4 length bytes).
     */
    next(): Packet | undefined {
        const buf = this.pending
        if (buf.length < 2) return undefined
        let len = 0
        let mult = 1
        let pos = 1
        for (;;) {
            if (pos >= buf.length) return undefined
            if (pos > 4) throw new Error("mqtt: malformed remaining length")
            const b = buf[pos++]
            len += (b & 0x7f) * mult
            mult *= 128
            if ((b & 0x80) === 0) break
        }
        if (len > MAX_PACKET) {
            // Skipped, not fatal: closing the connection would make the broker redeliver it on every
            // wake, so the device would never get past it. Keep its head, drop the rest as it arrives.
            if (buf.length < pos + HEAD_BYTES) return undefined
            const head: Packet = { type: buf[0] >> 4, flags: buf[0] & 0x0f, body: buf.slice(pos, pos + HEAD_BYTES), truncated: true }
            const have = buf.length - pos
            if (have >= len) {
                this.pending = buf.slice(pos + len)
            } else {
                this.skipping = len - have
                this.pending = Buffer.alloc(0)
            }
            return head
        }
        if (buf.length < pos + len) return undefined
        const pkt: Packet = { type: buf[0] >> 4, flags: buf[0] & 0x0f, body: buf.slice(pos, pos + len) }
        this.pending = buf.slice(pos + len)
        return pkt
    }
}

/** A big-endian u16 (spec 1.5.2); DeviceScript's Buffer.getAt only reads little-endian. */
export function packetId(body: Buffer, offset: number): number {
    return (body[offset] << 8) | body[offset + 1]
}

export interface InboundPublish {
    topic: string
    payload: Buffer
    qos: number
    dup: boolean
    retain: boolean
    packetId: number
}

export function decodePublish(p: Packet): InboundPublish {
    const tlen = packetId(p.body, 0)
    const topic = p.body.slice(2, 2 + tlen).toString()
    const qos = (p.flags >> 1) & 3
    let pos = 2 + tlen
    let id = 0
    if (qos > 0) {
        id = packetId(p.body, pos)
        pos += 2
    }
    return {
        topic: topic,
        payload: p.body.slice(pos),
        qos: qos,
        dup: (p.flags & 0x08) !== 0,
        retain: (p.flags & 0x01) !== 0,
        packetId: id,
    }
}
