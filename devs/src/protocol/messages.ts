// Payload builders and the command parser from docs/protocol.md. Plain TypeScript (DeviceScript-safe):
// Node code may import it too. Every payload is a JSON object with `v: 1`.

export const PROTOCOL_VERSION = 1

/** Readings as the firmware stores them in the outbox and publishes them. */
export interface Reading {
    seq: number
    boot: number
    /**
     * When it was taken, on the device clock (devs/src/clock.ts: ms on a timeline that spans deep
     * sleeps); null for a reading stored without one. Published as `age`, never as wall time.
     */
    takenAt: number | null
    readings: Record<string, number>
    battery: number | null
    dropped: number
    corrupt: number
}

/**
 * `t` stays null (no wall clock on the device); `age` = ms from taking the reading to building this
 * PUBLISH, on the device clock, so the gateway dates it receivedAt - age (docs/protocol.md).
 */
export function telemetryPayload(r: Reading, clockNow: number): string {
    const o: any = {
        v: PROTOCOL_VERSION,
        seq: r.seq,
        boot: r.boot,
        t: null,
        readings: r.readings,
        battery: r.battery,
        dropped: r.dropped,
        corrupt: r.corrupt,
    }
    if (r.takenAt !== null) o.age = Math.max(0, Math.round(clockNow - r.takenAt))
    return JSON.stringify(o)
}

export function onlinePayload(boot: number): string {
    return JSON.stringify({ v: PROTOCOL_VERSION, state: "online", boot: boot })
}

/** What a wake reports about itself in its `sleeping` status (docs/protocol.md). */
export interface WakeReport {
    /** ms of the wake spent on each phase (see uplink.ts WakeTimes) */
    times: Record<string, number>
    /** commands this wake could not even acknowledge (no usable id, oversized) */
    rejected: number
    /** commands left in the broker for the next wake (the per-wake budget was spent) */
    deferred: number
    battery: number | null
    lowBattery: boolean
}

export function sleepingPayload(boot: number, sleepMs: number, report?: WakeReport): string {
    const o: any = { v: PROTOCOL_VERSION, state: "sleeping", sleepMs: sleepMs, boot: boot }
    if (report) {
        o.wake = report.times
        o.rejected = report.rejected
        o.deferred = report.deferred
        o.battery = report.battery
        o.lowBattery = report.lowBattery
    }
    return JSON.stringify(o)
}

/** The Last Will, retained by the broker when the device vanishes. */
export function offlinePayload(): string {
    return JSON.stringify({ v: PROTOCOL_VERSION, state: "offline" })
}

export type CommandOp = "set-interval" | "stay-awake" | "ping" | "reboot"

export interface Command {
    id: string
    op: CommandOp
    seconds?: number
}

/** Result of parsing a command: `command` when valid; else `error` (and `id`/`op` when known, for the ack). */
export interface ParsedCommand {
    command?: Command
    id?: string
    op?: string
    error?: string
}

function isCommandId(id: any): boolean {
    if (typeof id !== "string" || id.length < 1 || id.length > 40) return false
    for (let i = 0; i < id.length; i++) {
        const c = id.charCodeAt(i)
        const ok =
            (c >= 48 && c <= 57) ||
            (c >= 65 && c <= 90) ||
            (c >= 97 && c <= 122) ||
            c === 95 ||
            c === 45
        if (!ok) return false
    }
    return true
}

function secondsIn(v: any, min: number, max: number): boolean {
    return typeof v === "number" && Math.round(v) === v && v >= min && v <= max
}

/** Validates a command payload (already JSON-decoded) against docs/protocol.md. */
export function parseCommand(obj: any): ParsedCommand {
    if (!obj || typeof obj !== "object") return { error: "not an object" }
    const id = obj.id
    const op = obj.op
    if (!isCommandId(id)) return { error: "invalid id", op: typeof op === "string" ? op : undefined }
    if (typeof op !== "string") return { id: id, error: "missing op" }
    if (op === "set-interval") {
        if (!secondsIn(obj.seconds, 5, 86400))
            return { id: id, op: op, error: "seconds must be an integer 5..86400" }
        return { command: { id: id, op: op, seconds: obj.seconds } }
    }
    if (op === "stay-awake") {
        if (!secondsIn(obj.seconds, 1, 3600))
            return { id: id, op: op, error: "seconds must be an integer 1..3600" }
        return { command: { id: id, op: op, seconds: obj.seconds } }
    }
    if (op === "ping" || op === "reboot") return { command: { id: id, op: op } }
    return { id: id, op: op, error: "unknown op" }
}

export function commandAckPayload(id: string, op: string, error?: string): string {
    if (error)
        return JSON.stringify({ v: PROTOCOL_VERSION, id: id, op: op, ok: false, error: error })
    return JSON.stringify({ v: PROTOCOL_VERSION, id: id, op: op, ok: true })
}
