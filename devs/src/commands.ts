import * as ds from "@devicescript/core"
import { Command, commandAckPayload, parseCommand } from "./protocol/messages"
import { checksum, readRecord, writeRecord, ErrCorrupt } from "./flash"

// Commands from `sensors/{id}/cmd` (docs/protocol.md). State in flash (key "cmd"): hashes of the last
// command ids (each id is processed at most once), the interval set by `set-interval`, and the inbound
// QoS 2 packet ids between PUBREC and PUBREL. Written only when a command arrives, i.e. never on the
// normal path.
//
// The record is bounded by construction: the ESP32 runtime panics reading a setting whose key + NUL +
// value exceeds 232 bytes (jacdac-c jd_util.c; simulator/src/profile.ts settingsReadLimitBytes), and a record that grows past it boot-loops the device
// forever. Ids are remembered as 32-bit FNV-1a hashes (≤ 10 digits, whatever the id's length), at most
// REMEMBERED_IDS of them, and at most MAX_INBOUND_QOS2 QoS 2 ids:
//   [86400,[65535,65535,65535,65535],[4294967295 × 14]] = 189 bytes, + envelope [v,4294967295] = 201,
//   + "cmd" + NUL = 205 ≤ 232 (devs/README.md, "Flash records and their bounds").

const CMD_KEY = "cmd"
/** how many command ids are remembered against redelivery */
export const REMEMBERED_IDS = 14
/** inbound QoS 2 flows kept open at once (we subscribe QoS 1: brokers never send QoS 2 to us) */
export const MAX_INBOUND_QOS2 = 4
/** payloads larger than this are not parsed (the contract caps payloads at 1 KB) */
export const MAX_COMMAND_BYTES = 1024

/** [interval override or null, inbound QoS 2 ids, id hashes oldest first] */
interface CommandState {
    iv: number | null
    q2: number[]
    ids: number[]
}

function isU16(v: any) {
    return typeof v === "number" && Math.round(v) === v && v >= 1 && v <= 65535
}

function isU32(v: any) {
    return typeof v === "number" && Math.round(v) === v && v >= 0 && v <= 0xffffffff
}

/** Reads the record; the object form of earlier firmware ({ids: string[], iv, q2}) is converted. */
function decodeState(s: any): CommandState {
    if (Array.isArray(s)) {
        if (s.length !== 3 || !Array.isArray(s[1]) || !Array.isArray(s[2])) throw new ErrCorrupt(CMD_KEY, "bad fields")
        return {
            iv: typeof s[0] === "number" ? s[0] : null,
            q2: s[1].filter((v: any) => isU16(v)).slice(-MAX_INBOUND_QOS2),
            ids: s[2].filter((v: any) => isU32(v)).slice(-REMEMBERED_IDS),
        }
    }
    if (!s || !Array.isArray(s.ids) || !Array.isArray(s.q2)) throw new ErrCorrupt(CMD_KEY, "bad fields")
    return {
        iv: typeof s.iv === "number" ? s.iv : null,
        q2: s.q2.filter((v: any) => isU16(v)).slice(-MAX_INBOUND_QOS2),
        ids: s.ids.map((id: any) => checksum("" + id)).slice(-REMEMBERED_IDS),
    }
}

/** What the wake cycle must do after the commands of this wake. */
export interface CommandEffects {
    /** stay connected until this ds.millis() value */
    stayAwakeUntil: number
    reboot: boolean
}

export class Commands {
    private state: CommandState = { iv: null, q2: [], ids: [] }
    readonly effects: CommandEffects = { stayAwakeUntil: 0, reboot: false }
    /** commands that could not even be acknowledged (no valid id, oversized): counted, logged */
    rejected = 0
    /** commands left unacknowledged for the next wake because the budget was spent */
    deferred = 0
    /** commands handled (executed, repeated or refused with an ack) this wake */
    handled = 0
    /** no more commands this wake: its decisions (sleep, reboot, schedule) are being made */
    private intakeClosed = false

    /** @param budget commands this wake may handle (CMD_BUDGET; 0 at low battery: no flash writes) */
    constructor(private budget: number) {}

    static async load(budget: number): Promise<Commands> {
        const c = new Commands(budget)
        try {
            const s = await readRecord(CMD_KEY)
            if (s) c.state = decodeState(s)
        } catch (e) {
            console.error(`commands: ${(e as Error).message}; starting with no command history`)
        }
        return c
    }

    /** Interval override from a set-interval command, or null. */
    intervalOverride(): number | null {
        return this.state.iv
    }

    inboundQos2(): number[] {
        return this.state.q2.slice(0)
    }

    /**
     * Handles one command payload; returns the ack payload to publish (or null when the command
     * carries no usable id). State changes are in flash before this returns, so the caller may then
     * acknowledge the MQTT message: a power cut before that means a redelivery, which the id list
     * turns into a repeated ack without a second execution.
     */
    /** True once this wake handled as many commands as its budget allows, or took its last one. */
    budgetSpent(): boolean {
        return this.intakeClosed || this.handled >= this.budget
    }

    /**
     * May one more inbound message wait for handle(), with `waiting` admitted ones not handled yet? false
     * (counted as deferred: unacknowledged, the broker delivers it again next wake) once the budget is spent.
     */
    admit(waiting: number): boolean {
        if (this.intakeClosed || this.handled + waiting >= this.budget) {
            this.deferred++
            return false
        }
        return true
    }

    /**
     * The wake is about to decide its sleep, reboot and schedule: a command handled after this would be acked
     * and its effect lost, so later ones wait in the broker for the next wake.
     */
    closeIntake() {
        this.intakeClosed = true
    }

    private take() {
        this.handled++
    }

    /**
     * Handles one admitted command payload; returns the ack payload to publish (null when the command
     * carries no usable id). State changes are in flash before this returns, so the caller may then
     * acknowledge: a power cut before that means a redelivery, which the id list turns into a repeated
     * ack without a second execution.
     */
    async handle(payload: Buffer, qos2PacketId: number): Promise<string | null> {
        this.take()
        if (payload.length > MAX_COMMAND_BYTES) {
            console.warn(`command rejected: ${payload.length} bytes > ${MAX_COMMAND_BYTES}`)
            this.rejected++
            return null
        }
        let obj: any
        try {
            obj = JSON.parse(payload.toString())
        } catch (e) {
            obj = null
        }
        const parsed = parseCommand(obj)
        if (!parsed.command) {
            console.warn(`command rejected: ${parsed.error}`)
            if (!parsed.id) {
                this.rejected++
                return null
            }
            if (qos2PacketId) await this.rememberQos2(qos2PacketId)
            return commandAckPayload(parsed.id, parsed.op || "", parsed.error)
        }
        const cmd = parsed.command
        const hash = checksum(cmd.id)
        if (this.state.ids.indexOf(hash) >= 0) {
            console.log(`command ${cmd.id} already processed: ack again`)
            if (qos2PacketId) await this.rememberQos2(qos2PacketId)
            return commandAckPayload(cmd.id, cmd.op)
        }
        this.apply(cmd)
        this.state.ids.push(hash)
        while (this.state.ids.length > REMEMBERED_IDS) this.state.ids.shift()
        if (qos2PacketId) this.addQos2(qos2PacketId)
        await this.save()
        return commandAckPayload(cmd.id, cmd.op)
    }

    /** A message too long to read (mqtt/reader.ts skipped it): counted, acknowledged unread. */
    rejectOversized(bytes: number) {
        this.take()
        this.rejected++
        console.warn(`command rejected: ${bytes}+ bytes, too long to read`)
    }

    private async save() {
        await writeRecord(CMD_KEY, [this.state.iv, this.state.q2, this.state.ids])
    }

    private addQos2(packetId: number) {
        if (this.state.q2.indexOf(packetId) >= 0) return
        this.state.q2.push(packetId)
        while (this.state.q2.length > MAX_INBOUND_QOS2) {
            console.warn(`commands: more than ${MAX_INBOUND_QOS2} inbound QoS 2 flows open; forgetting the oldest`)
            this.state.q2.shift()
        }
    }

    private apply(cmd: Command) {
        console.log(`command ${cmd.id}: ${cmd.op}${cmd.seconds ? " " + cmd.seconds + " s" : ""}`)
        if (cmd.op === "set-interval") this.state.iv = cmd.seconds
        else if (cmd.op === "stay-awake")
            this.effects.stayAwakeUntil = Math.max(this.effects.stayAwakeUntil, ds.millis() + cmd.seconds * 1000)
        else if (cmd.op === "reboot") this.effects.reboot = true
    }

    private async rememberQos2(packetId: number) {
        if (this.state.q2.indexOf(packetId) >= 0) return
        this.addQos2(packetId)
        await this.save()
    }

    /** PUBREL for an inbound QoS 2 id: forget it (persisted, or a reused id would be ignored). */
    async released(packetId: number) {
        const i = this.state.q2.indexOf(packetId)
        if (i < 0) return
        this.state.q2.insert(i, -1)
        await this.save()
    }
}
