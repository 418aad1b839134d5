import * as ds from "@devicescript/core"
import { Command, commandAckPayload, parseCommand } from "./protocol/messages"
import { readRecord, writeRecord, ErrCorrupt } from "./flash"

// Commands from `sensors/{id}/cmd` (docs/protocol.md). State in flash (key "cmd"): the last
// command ids (each id is processed at most once), the interval set by `set-interval`, and the
// inbound QoS 2 packet ids between PUBREC and PUBREL. Written only when a command arrives, i.e.
// never on the normal path.

const CMD_KEY = "cmd"
/** how many command ids are remembered against redelivery */
const REMEMBERED_IDS = 16

interface CommandState {
    ids: string[]
    /** interval set by set-interval, or null: INTERVAL_S from settings applies */
    iv: number | null
    /** inbound QoS 2 ids awaiting PUBREL */
    q2: number[]
}

/** What the wake cycle must do after the commands of this wake. */
export interface CommandEffects {
    /** stay connected until this ds.millis() value */
    stayAwakeUntil: number
    reboot: boolean
}

export class Commands {
    private state: CommandState = { ids: [], iv: null, q2: [] }
    readonly effects: CommandEffects = { stayAwakeUntil: 0, reboot: false }
    /** commands that could not even be acknowledged (no valid id): counted, logged */
    rejected = 0

    static async load(): Promise<Commands> {
        const c = new Commands()
        try {
            const s = await readRecord(CMD_KEY)
            if (s) {
                if (!Array.isArray(s.ids) || !Array.isArray(s.q2)) throw new ErrCorrupt(CMD_KEY, "bad fields")
                c.state = { ids: s.ids, iv: typeof s.iv === "number" ? s.iv : null, q2: s.q2 }
            }
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
    async handle(payload: Buffer, qos2PacketId: number): Promise<string | null> {
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
        if (this.state.ids.indexOf(cmd.id) >= 0) {
            console.log(`command ${cmd.id} already processed: ack again`)
            if (qos2PacketId) await this.rememberQos2(qos2PacketId)
            return commandAckPayload(cmd.id, cmd.op)
        }
        this.apply(cmd)
        this.state.ids.push(cmd.id)
        while (this.state.ids.length > REMEMBERED_IDS) this.state.ids.shift()
        if (qos2PacketId && this.state.q2.indexOf(qos2PacketId) < 0) this.state.q2.push(qos2PacketId)
        await writeRecord(CMD_KEY, this.state)
        return commandAckPayload(cmd.id, cmd.op)
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
        this.state.q2.push(packetId)
        await writeRecord(CMD_KEY, this.state)
    }

    /** PUBREL for an inbound QoS 2 id: forget it (persisted, or a reused id would be ignored). */
    async released(packetId: number) {
        const i = this.state.q2.indexOf(packetId)
        if (i < 0) return
        this.state.q2.insert(i, -1)
        await writeRecord(CMD_KEY, this.state)
    }
}
