import * as ds from "@devicescript/core"
import { encodeAck, encodePublish, PUBREL, withDup } from "./packets"

// Client-side MQTT session state that outlives one TCP connection (spec 4.1): outbound QoS 1/2
// messages in flight, QoS 2 flows waiting for PUBREL, inbound QoS 2 ids awaiting PUBREL.

/** Telemetry packet ids come from the reading's seq so that a reading keeps its id across sleeps. */
export const TELEMETRY_ID_SPAN = 32768

/** Packet id of the telemetry message for `seq`: 1..32768, stable across reboots. */
export function telemetryPacketId(seq: number): number {
    return (seq % TELEMETRY_ID_SPAN) + 1
}

export interface Outgoing {
    packetId: number
    qos: number
    bytes: Buffer
    /** set once the PUBLISH went out on some connection: a resend carries DUP */
    sent: boolean
    /** QoS 2: PUBREC seen; the message is stored by the broker exactly once */
    received: boolean
    /** QoS 2: PUBREL may go out (see Session.release) */
    releasing: boolean
    /** called on PUBACK (QoS 1), PUBREC (QoS 2) */
    onDelivered?: () => void
    /** called on PUBACK or PUBCOMP: the flow is over */
    onComplete?: () => void
    /** QoS 2: called when the flow was dropped by restartQos2 and must be published again */
    onRestart?: () => void
}

export class Session {
    private inflight: Outgoing[] = []
    private nextOtherId = TELEMETRY_ID_SPAN + 1
    /** inbound QoS 2 packet ids between PUBREC and PUBREL (spec 4.3.3, method B) */
    inboundQos2: number[] = []
    /** fires on every state change; waiters use ds.wait with a timeout */
    readonly changed = ds.emitter<number>()

    /** A fresh id for non-telemetry packets (status, acks, SUBSCRIBE), never colliding with in-flight ones. */
    allocateId(): number {
        for (;;) {
            const id = this.nextOtherId
            this.nextOtherId = id >= 65535 ? TELEMETRY_ID_SPAN + 1 : id + 1
            if (!this.find(id)) return id
        }
    }

    find(packetId: number): Outgoing | undefined {
        for (const o of this.inflight) if (o.packetId === packetId) return o
        return undefined
    }

    size(): number {
        return this.inflight.length
    }

    /** Registers a PUBLISH; QoS 0 messages are not tracked. `resumed` marks a possible earlier send. */
    add(
        topic: string,
        payload: string,
        qos: number,
        retain: boolean,
        packetId: number,
        resumed: boolean
    ): Outgoing {
        const o: Outgoing = {
            packetId: packetId,
            qos: qos,
            bytes: encodePublish(topic, payload, qos, retain, packetId, false),
            sent: resumed,
            received: false,
            releasing: false,
        }
        if (qos > 0) this.inflight.push(o)
        return o
    }

    /** A QoS 2 flow found in flash whose PUBREC came in an earlier wake: only PUBREL is left. */
    addRelease(packetId: number, onComplete: () => void, onRestart: () => void) {
        const o: Outgoing = {
            packetId: packetId,
            qos: 2,
            bytes: null,
            sent: true,
            received: true,
            releasing: true,
            onComplete: onComplete,
            onRestart: onRestart,
        }
        this.inflight.push(o)
        return o
    }

    /** Bytes to (re)send for a message on the current connection. */
    wireBytes(o: Outgoing): Buffer {
        if (o.releasing) return encodeAck(PUBREL, o.packetId)
        if (o.received) return null // waits for release()
        const b = o.sent ? withDup(o.bytes) : o.bytes
        o.sent = true
        return b
    }

    /** Everything to send again after a reconnect, in the original order (spec 4.4). */
    resendList(): Outgoing[] {
        return this.inflight.filter(o => !o.received || o.releasing)
    }

    /** Marks PUBREC'd QoS 2 flows as allowed to send PUBREL; returns them. */
    release(): Outgoing[] {
        const r: Outgoing[] = []
        for (const o of this.inflight)
            if (o.received && !o.releasing) {
                o.releasing = true
                r.push(o)
            }
        return r
    }

    /**
     * CONNACK said sessionPresent=0: the broker holds no state for us, so a QoS 2 flow past PUBREC has no
     * message behind it there (another broker took it, or this one lost its store). PUBREL would only get
     * a PUBCOMP for an id the broker never saw: such flows leave the session (onRestart) to be published
     * again from PUBLISH. Flows still waiting for PUBREC are resent anyway. Returns how many.
     */
    restartQos2(): number {
        const dropped = this.inflight.filter(o => o.qos === 2 && o.received)
        for (const o of dropped) {
            this.remove(o)
            if (o.onRestart) o.onRestart()
        }
        return dropped.length
    }

    delivered(packetId: number, qos: number): Outgoing | undefined {
        const o = this.find(packetId)
        if (!o || o.qos !== qos || o.received) return undefined
        if (qos === 2) o.received = true
        else this.remove(o)
        if (o.onDelivered) o.onDelivered()
        if (qos === 1 && o.onComplete) o.onComplete()
        this.changed.emit(packetId)
        return o
    }

    completed(packetId: number): Outgoing | undefined {
        const o = this.find(packetId)
        if (!o || o.qos !== 2 || !o.releasing) return undefined
        this.remove(o)
        if (o.onComplete) o.onComplete()
        this.changed.emit(packetId)
        return o
    }

    private remove(o: Outgoing) {
        const i = this.inflight.indexOf(o)
        if (i >= 0) this.inflight.insert(i, -1)
    }
}
