import * as ds from "@devicescript/core"
import { connect, Socket } from "@devicescript/net"
import { ConnectOptions, encodeConnect, encodeDisconnect, encodePingreq, encodeSubscribe } from "./packets"
import { InboundPublish, Packet, PacketReader } from "./reader"
import { Session } from "./session"
import { connackCodeName, ErrConnectionRefused } from "./errors"
import { dispatch } from "./handlers/index"
import { PUBLISH } from "./packets"

/** Inbound PUBLISHes held at once; each is at most MAX_PACKET bytes (reader.ts): bounded heap. */
const INBOX_MAX = 8

export interface BrokerAddress {
    host: string
    port: number
    tls: boolean
}

export interface ConnectionHooks {
    /** an inbound application message; resolve only once its effects are durable (it is acked after) */
    onMessage(msg: InboundPublish): Promise<void>
    /** a message longer than the reader keeps (skipped unread, acknowledged) */
    onOversized(msg: InboundPublish): void
    /**
     * May one more inbound message be queued for onMessage, with `waiting` queued already? false: it is
     * dropped unread and not acknowledged, so the broker delivers it again on a later connection.
     */
    admit(waiting: number): boolean
    /** an inbound QoS 2 id got its PUBREL */
    onInboundReleased(packetId: number): Promise<void>
}

/**
 * One TCP (or TLS) connection to the broker. The Session it works on outlives it: after a drop, a
 * new Connection on the same Session resends what is still in flight.
 * Returns/throws like @devicescript/net sockets: calls on a closed connection throw.
 */
export class Connection {
    private socket: Socket
    private reader = new PacketReader()
    private connack: number = -1
    private sessionPresentFlag = false
    private subacks: number[] = []
    private lastPingSent = 0
    private lastPingresp = 0
    /** PINGRESPs received on this connection (markers and keepalive alike) */
    pingresps = 0
    /** PINGREQs sent on this connection */
    pingreqs = 0
    /** application messages received on this connection */
    messages = 0
    /** inbound PUBLISHes waiting for the application, oldest first (bounded by hooks.admit) */
    private inbox: Packet[] = []
    private handling = false
    closed = false
    closeReason = ""

    constructor(readonly session: Session, private hooks: ConnectionHooks, private keepaliveS: number) {}

    /** Opens the socket, sends CONNECT and waits for CONNACK. Throws ErrConnectionRefused on a refusal. */
    async open(addr: BrokerAddress, options: ConnectOptions, timeoutMs: number): Promise<boolean> {
        this.socket = await connect({
            host: addr.host,
            port: addr.port,
            proto: addr.tls ? "tls" : "tcp",
            timeout: timeoutMs,
        })
        this.startReading()
        await this.send(encodeConnect(options))
        const deadline = ds.millis() + timeoutMs
        while (this.connack < 0) {
            if (this.closed) throw new Error(`mqtt: closed before CONNACK: ${this.closeReason}`)
            const left = deadline - ds.millis()
            if (left <= 0) {
                await this.close("CONNACK timeout")
                throw new Error("mqtt: CONNACK timeout")
            }
            await ds.wait(this.session.changed, left)
        }
        if (this.connack !== 0) {
            await this.close(`refused: ${connackCodeName(this.connack)}`)
            throw new ErrConnectionRefused(this.connack)
        }
        this.lastPingresp = ds.millis()
        return this.sessionPresentFlag
    }

    /**
     * A fiber of its own that owns the socket's read side until the connection ends. It only parses:
     * the runtime hands over received data as fast as the broker sends it and keeps what the program has
     * not read in the 64 KB heap, so a reader that waited for flash writes while a broker pushed a
     * queue of commands ran the device out of memory (DEVS_PANIC_OOM, found by the command-flood test).
     * Inbound PUBLISHes go to a bounded inbox that a second fiber works off.
     */
    private startReading() {
        const self = this
        setTimeout(async () => {
            try {
                for (;;) {
                    const data = await self.socket.recv()
                    if (data == null) {
                        await self.close("closed by broker")
                        return
                    }
                    self.reader.push(data)
                    for (;;) {
                        const p = self.reader.next()
                        if (!p) break
                        if (p.type === PUBLISH) self.enqueue(p)
                        else await dispatch(self, p)
                    }
                }
            } catch (e) {
                await self.close(`${(e as Error).message}`)
            }
        }, 0)
    }

    /** Inbound PUBLISHes received but not yet handled and acknowledged. */
    inboundPending(): number {
        return this.inbox.length + (this.handling ? 1 : 0)
    }

    private enqueue(p: Packet) {
        this.messages++
        // unacknowledged: the broker keeps it for a later connection
        if (this.inbox.length >= INBOX_MAX || !this.hooks.admit(this.inboundPending())) return
        this.inbox.push(p)
        if (this.handling) return
        this.handling = true
        const self = this
        setTimeout(async () => {
            try {
                while (self.inbox.length && !self.closed) await dispatch(self, self.inbox.shift())
            } catch (e) {
                await self.close(`${(e as Error).message}`)
            }
            self.inbox = []
            self.handling = false
            self.session.changed.emit(0)
        }, 0)
    }

    async send(bytes: Buffer) {
        if (this.closed) throw new Error(`mqtt: connection closed: ${this.closeReason}`)
        try {
            await this.socket.send(bytes)
        } catch (e) {
            await this.close(`send failed: ${(e as Error).message}`)
            throw e
        }
    }

    /** Subscribes and waits for SUBACK; returns the granted QoS (0x80 = refused). */
    async subscribe(topic: string, qos: number, timeoutMs: number): Promise<number> {
        const id = this.session.allocateId()
        await this.send(encodeSubscribe(id, topic, qos))
        const deadline = ds.millis() + timeoutMs
        for (;;) {
            const i = this.subacks.indexOf(id)
            if (i >= 0) return this.subacks[i + 1]
            if (this.closed) throw new Error(`mqtt: closed before SUBACK: ${this.closeReason}`)
            const left = deadline - ds.millis()
            if (left <= 0) throw new Error("mqtt: SUBACK timeout")
            await ds.wait(this.session.changed, left)
        }
    }

    /**
     * A PINGREQ as a marker: the broker answers packets in order, so once its PINGRESP (the returned
     * count of PINGRESPs) arrives, everything the broker had sent before it, e.g. the commands it
     * queued for this session right after CONNACK, has been received and handled.
     */
    async sendMarker(): Promise<number> {
        this.lastPingSent = ds.millis()
        this.pingreqs++
        await this.send(encodePingreq())
        return this.pingreqs
    }

    /** Sends PINGREQ when half the keepalive passed; closes the connection when PINGRESP is overdue. */
    async keepalive() {
        const now = ds.millis()
        const period = this.keepaliveS * 1000
        if (period <= 0 || this.closed) return
        if (this.lastPingSent > this.lastPingresp && now - this.lastPingSent > period) {
            await this.close("keepalive: no PINGRESP")
            return
        }
        if (now - Math.max(this.lastPingSent, this.lastPingresp) > period / 2) await this.sendMarker()
    }

    /**
     * Clean end (spec 3.14): DISCONNECT, then wait (bounded) until the broker closes the connection,
     * then close. Why wait: on ESP32 socket writes sit in a worker task's queue and close() discards
     * what is still queued (devicescript-esp32 main/sock.c), and standby() stops the radio, so a
     * DISCONNECT followed at once by close and sleep never leaves the board and the broker publishes
     * the Last Will. Brokers close the connection on DISCONNECT (aedes, Mosquitto), which proves it
     * arrived. True when the broker closed it; false when we gave up waiting.
     */
    async disconnect(timeoutMs: number): Promise<boolean> {
        if (this.closed) return false
        try {
            await this.send(encodeDisconnect())
        } catch (e) {
            return false // already gone: nothing to say goodbye to
        }
        const deadline = ds.millis() + timeoutMs
        while (!this.closed && ds.millis() < deadline) await ds.wait(this.session.changed, deadline - ds.millis())
        const confirmed = this.closed
        await this.close("disconnected")
        return confirmed
    }

    async close(reason: string) {
        if (this.closed) return
        this.closed = true
        this.closeReason = reason
        if (this.socket) await this.socket.close()
        this.session.changed.emit(0)
    }

    // --- called by the packet handlers ---

    onConnack(sessionPresent: boolean, code: number) {
        this.sessionPresentFlag = sessionPresent
        this.connack = code
        this.session.changed.emit(0)
    }

    onSuback(packetId: number, granted: number) {
        this.subacks.push(packetId, granted)
        this.session.changed.emit(packetId)
    }

    onPingresp() {
        this.lastPingresp = ds.millis()
        this.pingresps++
        this.session.changed.emit(0)
    }

    async onMessage(msg: InboundPublish) {
        await this.hooks.onMessage(msg)
    }

    onOversized(msg: InboundPublish) {
        this.hooks.onOversized(msg)
    }

    async onInboundReleased(packetId: number) {
        await this.hooks.onInboundReleased(packetId)
    }
}
