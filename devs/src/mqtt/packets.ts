// MQTT 3.1.1 packet encoding (OASIS spec section 2 and 3). Pure functions over Buffer.

export const CONNECT = 1
export const CONNACK = 2
export const PUBLISH = 3
export const PUBACK = 4
export const PUBREC = 5
export const PUBREL = 6
export const PUBCOMP = 7
export const SUBSCRIBE = 8
export const SUBACK = 9
export const PINGREQ = 12
export const PINGRESP = 13
export const DISCONNECT = 14

/** Byte 1 bit 3 of a PUBLISH: set when the packet is sent again (spec 3.3.1.1). */
export const DUP_FLAG = 0x08

/** Remaining length, 1..4 bytes of 7 bits each (spec 2.2.3). */
function encodeLength(len: number): Buffer {
    const bytes: number[] = []
    for (;;) {
        let b = len % 128
        len = Math.floor(len / 128)
        if (len > 0) b |= 0x80
        bytes.push(b)
        if (len === 0) break
    }
    return Buffer.from(bytes)
}

function u16(v: number): Buffer {
    return Buffer.from([(v >> 8) & 0xff, v & 0xff])
}

/** A UTF-8 string prefixed with its byte length (spec 1.5.3). */
function str(s: string): Buffer {
    const data = Buffer.from(s)
    return Buffer.concat(u16(data.length), data)
}

function packet(firstByte: number, body: Buffer): Buffer {
    const head = Buffer.alloc(1)
    head[0] = firstByte
    return Buffer.concat(head, encodeLength(body.length), body)
}

export interface ConnectOptions {
    clientId: string
    keepaliveS: number
    /** false keeps the broker session (queued messages, subscriptions) across connections */
    cleanSession: boolean
    username?: string
    password?: string
    will?: { topic: string; payload: string; qos: number; retain: boolean }
}

export function encodeConnect(o: ConnectOptions): Buffer {
    let flags = 0
    if (o.cleanSession) flags |= 0x02
    const parts: Buffer[] = [str("MQTT"), Buffer.from([4]), Buffer.alloc(1), u16(o.keepaliveS), str(o.clientId)]
    if (o.will) {
        flags |= 0x04 | (o.will.qos << 3)
        if (o.will.retain) flags |= 0x20
        parts.push(str(o.will.topic))
        parts.push(str(o.will.payload))
    }
    // spec 3.1.2.9: a password is only allowed together with a username
    if (o.username) {
        flags |= 0x80
        parts.push(str(o.username))
        if (o.password) {
            flags |= 0x40
            parts.push(str(o.password))
        }
    }
    parts[2][0] = flags
    return packet(CONNECT << 4, Buffer.concat(...parts))
}

export function encodePublish(
    topic: string,
    payload: string,
    qos: number,
    retain: boolean,
    packetId: number,
    dup: boolean
): Buffer {
    let first = (PUBLISH << 4) | (qos << 1)
    if (retain) first |= 0x01
    if (dup && qos > 0) first |= DUP_FLAG
    const body =
        qos > 0
            ? Buffer.concat(str(topic), u16(packetId), Buffer.from(payload))
            : Buffer.concat(str(topic), Buffer.from(payload))
    return packet(first, body)
}

/** PUBACK, PUBREC, PUBREL (flags 0b0010, spec 3.6.1) and PUBCOMP: a packet id only. */
export function encodeAck(type: number, packetId: number): Buffer {
    const flags = type === PUBREL ? 0x02 : 0
    return packet((type << 4) | flags, u16(packetId))
}

export function encodeSubscribe(packetId: number, topic: string, qos: number): Buffer {
    return packet((SUBSCRIBE << 4) | 0x02, Buffer.concat(u16(packetId), str(topic), Buffer.from([qos])))
}

export function encodePingreq(): Buffer {
    return Buffer.from([PINGREQ << 4, 0])
}

export function encodeDisconnect(): Buffer {
    return Buffer.from([DISCONNECT << 4, 0])
}

/** Marks an already encoded PUBLISH as a resend (same packet id, spec 4.4). */
export function withDup(publish: Buffer): Buffer {
    const copy = publish.slice(0)
    if ((copy[0] & 0x06) !== 0) copy[0] = copy[0] | DUP_FLAG
    return copy
}
