import * as ds from "@devicescript/core"
import { Connection } from "./mqtt/connection"
import { Outgoing, Session, telemetryPacketId } from "./mqtt/session"
import { InboundPublish } from "./mqtt/reader"
import { commandAckTopic, commandTopic, statusTopic, telemetryTopic } from "./protocol/topics"
import { offlinePayload, onlinePayload, Reading, sleepingPayload, telemetryPayload } from "./protocol/messages"
import { Config } from "./settings"
import { Outbox } from "./outbox"
import { Commands } from "./commands"
import { WakeReport } from "./protocol/messages"
import { BrokerAddress } from "./protocol/brokers"

// Everything this wake does with the broker: wait for Wi-Fi, connect (again after drops, failing over
// between the brokers of MQTT_HOSTS, with bounded backoff), restore the subscription, flush the outbox
// through an in-flight window, take queued commands, stay awake on request, say goodbye. Reading and
// flash writes belong to the caller.

/** PUBLISHes in flight at once (in-flight window). */
const WINDOW = 8
const CONNECT_TIMEOUT_MS = 5000
const BACKOFF_FIRST_MS = 250
const BACKOFF_MAX_MS = 4000
/**
 * Until Wi-Fi has an address, connect() throws "network not available" at once (runtime
 * impl_socket.c); the ESP32 runtime scans from ~2 s after boot and does DHCP on every wake. Poll.
 */
const WIFI_POLL_MS = 100
/** How long to wait for PUBCOMPs; an open QoS 2 flow is safely finished on the next wake. */
export const PUBCOMP_WAIT_MS = 1500
/** How long the broker may take to close the connection after our DISCONNECT (see Connection.disconnect). */
export const DISCONNECT_WAIT_MS = 1000

/** The error the runtime throws from connect() while the network is not up. */
function isNetworkDown(e: any) {
    const m = e && e.message ? "" + e.message : ""
    return m.indexOf("network not available") >= 0
}

/** Milliseconds of this wake by phase (reported in the `sleeping` status and the wake log line). */
export interface WakeTimes {
    /** waiting for Wi-Fi (connect() said "network not available") */
    wifi: number
    /** connecting and flushing the outbox, Wi-Fi excluded */
    mqtt: number
    /** after the flush, until the commands the broker queued were taken */
    commands: number
    /** stay-awake on command */
    stay: number
}

/**
 * Ties a telemetry PUBLISH's acks to its outbox entry (PUBACK, or PUBREC then PUBCOMP); a restarted
 * QoS 2 flow (Session.restartQos2) goes to `restarted`.
 */
function trackDelivery(o: Outgoing, outbox: Outbox, seq: number, restarted: number[]) {
    if (o.qos === 1) o.onDelivered = () => outbox.markDelivered(seq)
    if (o.qos === 2) {
        o.onDelivered = () => outbox.markReceived(seq)
        o.onComplete = () => outbox.markCompleted(seq)
        o.onRestart = () => restarted.push(seq)
    }
}

export class Uplink {
    readonly session = new Session()
    private conn: Connection | null = null
    private queue: Reading[] = []
    /** seqs of QoS 2 flows that Session.restartQos2 took out, until they are queued again */
    private restarted: number[] = []
    /** the PINGRESP count that ends the current command-drain round (0: no round running) */
    private markerAt = 0
    /** application messages seen on the connection when that round started */
    private markerMessages = 0
    /** the commands queued for this session were all taken (or the budget is spent) */
    private drained = false
    /** connection attempts that failed this wake (Wi-Fi not up yet does not count) */
    failures = 0
    /** index in cfg.brokers of the broker connected to, or tried next */
    private brokerIndex: number
    readonly times: WakeTimes = { wifi: 0, mqtt: 0, commands: 0, stay: 0 }

    constructor(
        private cfg: Config,
        private outbox: Outbox,
        private commands: Commands,
        private boot: number,
        /** device clock now (clock.ts): readings are published with their age */
        private clockNow: () => number,
        /** index in cfg.brokers to try first (protocol/brokers.ts firstBroker) */
        firstBroker: number
    ) {
        this.brokerIndex = firstBroker
        this.session.inboundQos2 = commands.inboundQos2()
        this.queue = outbox.pending()
        const session = this.session
        const restarted = this.restarted
        outbox.releasing().forEach(seq => {
            session.addRelease(
                telemetryPacketId(seq),
                () => outbox.markCompleted(seq),
                () => restarted.push(seq)
            )
        })
    }

    /**
     * Connected, with the subscription in place and everything in flight sent again. A failed attempt moves
     * on to the next broker at once; only when every broker failed in a row does it back off. The outbox
     * and the session's in-flight messages are not tied to a broker: the next one gets them all (DUP).
     */
    private async ensureConnected(deadline: number) {
        if (this.conn && !this.conn.closed) return this.conn
        const brokers = this.cfg.brokers
        let backoff = BACKOFF_FIRST_MS
        let failedInRound = 0
        for (;;) {
            const left = deadline - ds.millis()
            if (left <= 0) throw new Error("awake budget spent without a connection")
            const broker = brokers[this.brokerIndex]
            try {
                return await this.connect(broker, Math.min(CONNECT_TIMEOUT_MS, left))
            } catch (e) {
                if (isNetworkDown(e)) {
                    const t0 = ds.millis()
                    await ds.sleep(Math.min(WIFI_POLL_MS, Math.max(1, deadline - t0)))
                    this.times.wifi += ds.millis() - t0
                    continue
                }
                this.failures++
                failedInRound++
                const message = (e as Error).message
                this.brokerIndex = (this.brokerIndex + 1) % brokers.length
                if (failedInRound < brokers.length) {
                    const next = brokers[this.brokerIndex]
                    console.warn(`mqtt: ${broker.host}:${broker.port}: ${message}; failing over to ${next.host}:${next.port}`)
                    continue
                }
                failedInRound = 0
                if (brokers.length > 1)
                    console.warn(`mqtt: ${broker.host}:${broker.port}: ${message}; all ${brokers.length} brokers failed, retry in ${backoff} ms`)
                else console.warn(`mqtt: ${message}; retry in ${backoff} ms`)
                await ds.sleep(Math.min(backoff, Math.max(0, deadline - ds.millis())))
                backoff = Math.min(backoff * 2, BACKOFF_MAX_MS)
            }
        }
    }

    private async connect(broker: BrokerAddress, timeoutMs: number) {
        const cfg = this.cfg
        const self = this
        const conn = new Connection(
            this.session,
            {
                onMessage: async msg => await self.onMessage(msg),
                onOversized: msg => self.onOversized(msg),
                admit: waiting => self.commands.admit(waiting),
                onInboundReleased: async id => await self.onInboundReleased(id),
            },
            cfg.keepaliveS
        )
        const sessionPresent = await conn.open(
            { host: broker.host, port: broker.port, tls: cfg.tls },
            {
                clientId: cfg.deviceId,
                keepaliveS: cfg.keepaliveS,
                cleanSession: false,
                username: cfg.username,
                password: cfg.password,
                will: { topic: statusTopic(cfg.deviceId), payload: offlinePayload(), qos: 1, retain: true },
            },
            timeoutMs
        )
        // only now: a failed open leaves no half-made connection for goodbye() to use. What is in flight
        // (from the previous connection, or published while this one opened, e.g. an ack of a command
        // that arrived right after CONNACK) is taken in the same step: later publishes go out by themselves
        this.conn = conn
        // a single broker keeps the delivery record as it was (no index in it)
        if (cfg.brokers.length > 1) this.outbox.noteBroker(this.brokerIndex)
        const where = cfg.brokers.length > 1 ? ` to ${broker.host}:${broker.port} (broker ${this.brokerIndex + 1}/${cfg.brokers.length})` : ""
        console.log(`mqtt: connected${where} at ${ds.millis()} ms, sessionPresent=${sessionPresent ? 1 : 0}`)
        // only sessionPresent=1 lets a QoS 2 flow past PUBREC resume at PUBREL (devs/README.md, "QoS 2 and lost sessions")
        if (!sessionPresent) await this.restartQos2()
        const resend = this.session.resendList()
        // spec 4.4: unacknowledged PUBLISH (DUP, same id) and PUBREL go out again first, in order
        for (const o of resend) {
            const bytes = this.session.wireBytes(o)
            if (bytes) await conn.send(bytes)
        }
        if (!sessionPresent) {
            // the broker lost (or never had) our session: the cmd subscription is gone with it
            const granted = await conn.subscribe(commandTopic(cfg.deviceId), 1, timeoutMs)
            if (granted === 0x80) console.error("mqtt: subscription to cmd refused")
        }
        // what the broker queued for this session follows CONNACK (and SUBACK); a marker tells its end
        await this.startDrainRound(conn)
        await this.publish(statusTopic(cfg.deviceId), onlinePayload(this.boot), 1, true)
        return conn
    }

    /**
     * The broker has no session for us (another broker took our earlier flows, or it lost its store):
     * QoS 2 readings past PUBREC are published again (the gateway de-duplicates on (device, seq)).
     */
    private async restartQos2() {
        const n = this.session.restartQos2()
        if (!n) return
        const seqs = this.restarted.slice(0)
        this.restarted.insert(0, -seqs.length)
        const again = await this.outbox.restart(seqs)
        console.warn(`mqtt: sessionPresent=0: ${again.length} QoS 2 reading(s) past PUBREC published again (seq ${seqs.join(",")})`)
        // readings still queued are newer than any flow already sent: the restarted ones go first
        for (const r of this.queue) again.push(r)
        this.queue = again
    }

    /** Queues and sends a QoS 1 message that is not a reading (status, command acks). */
    private async publish(topic: string, payload: string, qos: number, retain: boolean) {
        const o = this.session.add(topic, payload, qos, retain, this.session.allocateId(), false)
        if (this.conn && !this.conn.closed) await this.conn.send(this.session.wireBytes(o))
    }

    private async startDrainRound(conn: Connection) {
        this.markerMessages = conn.messages
        try {
            this.markerAt = await conn.sendMarker()
        } catch (e) {
            // the connection is closed by now; the next one starts its own round
        }
    }

    /**
     * True once the commands the broker queued were all taken: a marker round ended with no message
     * inside it (a round with messages is followed by another: brokers with an in-flight window, e.g.
     * Mosquitto's 20, release more as our PUBACKs go out), or the wake's command budget is spent.
     */
    private async commandsDrained(conn: Connection): Promise<boolean> {
        if (this.drained) return true
        if (conn.inboundPending() > 0) return false
        if (this.commands.budgetSpent()) this.drained = true
        else if (this.markerAt > 0 && conn.pingresps >= this.markerAt) {
            if (conn.messages === this.markerMessages) this.drained = true
            else await this.startDrainRound(conn)
        }
        return this.drained
    }

    private async onMessage(msg: InboundPublish) {
        if (msg.topic !== commandTopic(this.cfg.deviceId)) {
            console.warn(`mqtt: ignoring message on ${msg.topic}`)
            return
        }
        const ack = await this.commands.handle(msg.payload, msg.qos === 2 ? msg.packetId : 0)
        if (msg.qos === 2 && this.session.inboundQos2.indexOf(msg.packetId) < 0)
            this.session.inboundQos2.push(msg.packetId)
        if (ack) await this.publish(commandAckTopic(this.cfg.deviceId), ack, 1, false)
    }

    private onOversized(msg: InboundPublish) {
        this.commands.rejectOversized(msg.payload.length)
    }

    private async onInboundReleased(packetId: number) {
        const i = this.session.inboundQos2.indexOf(packetId)
        if (i >= 0) this.session.inboundQos2.insert(i, -1)
        await this.commands.released(packetId)
    }

    /** Sends queued readings while the window has room. */
    private async fillWindow(conn: Connection) {
        const qos = this.cfg.qos
        while (this.queue.length && (qos === 0 || this.session.size() < WINDOW)) {
            const r = this.queue.shift()
            const resumed = r.boot < this.boot // may have been sent in an earlier wake
            const o = this.session.add(
                telemetryTopic(this.cfg.deviceId),
                telemetryPayload(r, this.clockNow()),
                qos,
                false,
                telemetryPacketId(r.seq),
                resumed
            )
            const seq = r.seq
            trackDelivery(o, this.outbox, seq, this.restarted)
            try {
                await conn.send(this.session.wireBytes(o))
            } catch (e) {
                return // in the session: resent after the reconnect
            }
            // QoS 0 has no ack: written to the socket is as delivered as it gets
            if (qos === 0) this.outbox.markDelivered(seq)
        }
    }

    /** True when no reading and no QoS 1/2 message waits for the broker (QoS 2: PUBREC seen). */
    private flushed() {
        if (this.queue.length) return false
        return this.session.resendList().filter(o => !o.releasing).length === 0
    }

    /** Waits for one session change, sending PINGREQ when due. */
    private async tick(conn: Connection, deadline: number) {
        try {
            await conn.keepalive()
        } catch (e) {
            // a failed PINGREQ closed the connection: the caller reconnects or gives up
        }
        await ds.wait(this.session.changed, Math.max(1, Math.min(1000, deadline - ds.millis())))
    }

    /**
     * Connects and flushes the outbox, then takes queued commands; false when the awake budget ran
     * out first. Connection drops are retried within the budget.
     */
    async deliver(deadline: number): Promise<boolean> {
        const started = ds.millis()
        let flushedAt = 0
        const self = this
        const account = () => {
            const end = ds.millis()
            const f = flushedAt || end
            self.times.mqtt = Math.max(0, f - started - self.times.wifi)
            self.times.commands = end - f
        }
        for (;;) {
            if (ds.millis() >= deadline) {
                account()
                return false
            }
            let conn: Connection
            try {
                conn = await this.ensureConnected(deadline)
            } catch (e) {
                console.warn(`mqtt: ${(e as Error).message}`)
                account()
                return false
            }
            await this.fillWindow(conn)
            const flushed = this.flushed() && !conn.closed
            if (flushed && !flushedAt) flushedAt = ds.millis()
            if (flushed && (await this.commandsDrained(conn)) && !conn.closed) {
                account()
                return true
            }
            await this.tick(conn, deadline)
        }
    }

    /**
     * QoS 2: PUBREL for flows whose PUBREC is committed to flash, then waits (bounded) for PUBCOMP.
     * A flow left open is finished on the next wake (PUBREL again; brokers answer PUBCOMP).
     */
    async releaseQos2(deadline: number) {
        deadline = Math.min(deadline, ds.millis() + PUBCOMP_WAIT_MS)
        const released = this.session.release()
        const conn = this.conn
        if (!conn || conn.closed) return
        try {
            for (const o of released) await conn.send(this.session.wireBytes(o))
            while (this.session.resendList().filter(o => o.releasing).length && !conn.closed && ds.millis() < deadline)
                await this.tick(conn, deadline)
        } catch (e) {
            console.warn(`mqtt: PUBREL: ${(e as Error).message}`)
        }
    }

    /**
     * Ends this wake's command intake: later commands wait in the broker, and those already admitted are
     * handled (bounded by `deadline`) before the wake decides its sleep, reboot and schedule.
     */
    async finishCommands(deadline: number) {
        this.commands.closeIntake()
        const conn = this.conn
        while (conn && !conn.closed && conn.inboundPending() > 0 && ds.millis() < deadline)
            await ds.wait(this.session.changed, Math.max(1, deadline - ds.millis()))
    }

    /** Stays connected (reconnecting if needed) until `until`, handling commands as they come. */
    async stayAwake(until: () => number) {
        const started = ds.millis()
        while (ds.millis() < until()) {
            let conn: Connection
            try {
                conn = await this.ensureConnected(until())
            } catch (e) {
                return
            }
            await this.fillWindow(conn)
            await this.tick(conn, until())
        }
        this.times.stay = ds.millis() - started
    }

    /**
     * Retained `sleeping` status (waits for its PUBACK, bounded), DISCONNECT and the broker's close
     * (bounded), socket closed. False when the broker may not have seen the DISCONNECT.
     */
    async goodbye(sleepMs: number, deadline: number, report: WakeReport): Promise<boolean> {
        const conn = this.conn
        if (!conn || conn.closed) return false
        try {
            await this.publish(statusTopic(this.cfg.deviceId), sleepingPayload(this.boot, sleepMs, report), 1, true)
            while (this.session.resendList().filter(o => !o.releasing).length && !conn.closed && ds.millis() < deadline)
                await this.tick(conn, deadline)
        } catch (e) {
            console.warn(`mqtt: goodbye: ${(e as Error).message}`)
        }
        const confirmed = await conn.disconnect(Math.max(1, Math.min(DISCONNECT_WAIT_MS, deadline - ds.millis())))
        if (!confirmed) console.warn("mqtt: the broker did not close the connection after DISCONNECT; it may publish the Last Will")
        return confirmed
    }
}
