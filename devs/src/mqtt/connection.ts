import * as ds from "@devicescript/core"
import { connect, Socket } from "@devicescript/net"
import { ConnectOptions, encodeConnect, encodeDisconnect, encodePingreq, encodeSubscribe } from "./packets"
import { InboundPublish, PacketReader } from "./reader"
import { Session } from "./session"
import { connackCodeName, ErrConnectionRefused } from "./errors"
import { dispatch } from "./handlers/index"

export interface BrokerAddress {
    host: string
    port: number
    tls: boolean
}

export interface ConnectionHooks {
    /** an inbound application message; resolve only once its effects are durable (it is acked after) */
    onMessage(msg: InboundPublish): Promise<void>
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

    /** A fiber of its own that owns the socket's read side until the connection ends. */
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
                        await dispatch(self, p)
                    }
                }
            } catch (e) {
                await self.close(`${(e as Error).message}`)
            }
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

    /** Sends PINGREQ when half the keepalive passed; closes the connection when PINGRESP is overdue. */
    async keepalive() {
        const now = ds.millis()
        const period = this.keepaliveS * 1000
        if (period <= 0 || this.closed) return
        if (this.lastPingSent > this.lastPingresp && now - this.lastPingSent > period) {
            await this.close("keepalive: no PINGRESP")
            return
        }
        if (now - Math.max(this.lastPingSent, this.lastPingresp) > period / 2) {
            this.lastPingSent = now
            await this.send(encodePingreq())
        }
    }

    /** Clean end (spec 3.14): DISCONNECT, then close; the broker discards the Last Will. */
    async disconnect() {
        if (this.closed) return
        try {
            await this.send(encodeDisconnect())
        } catch (e) {
            // already gone: nothing to say goodbye to
        }
        await this.close("disconnected")
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
    }

    async onMessage(msg: InboundPublish) {
        await this.hooks.onMessage(msg)
    }

    async onInboundReleased(packetId: number) {
        await this.hooks.onInboundReleased(packetId)
    }
}
