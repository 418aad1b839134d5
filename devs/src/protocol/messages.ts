// Payload builders and the command parser from docs/protocol.md. Plain TypeScript (DeviceScript-safe):
// Node code may import it too. Every payload is a JSON object with `v: 1`.

export const PROTOCOL_VERSION = 1

/** Readings as the firmware stores them in the outbox and publishes them. */
export interface Reading {
    seq: number
    boot: number
    /** ms since epoch, or null without a wall clock */
    t: number | null
    readings: Record<string, number>
    battery: number | null
    dropped: number
    corrupt: number
}

export function telemetryPayload(r: Reading): string {
    return JSON.stringify({
        v: PROTOCOL_VERSION,
        seq: r.seq,
        boot: r.boot,
        t: r.t,
        readings: r.readings,
        battery: r.battery,
        dropped: r.dropped,
        corrupt: r.corrupt,
    })
}

export function onlinePayload(boot: number): string {
    return JSON.stringify({ v: PROTOCOL_VERSION, state: "online", boot: boot })
}

export function sleepingPayload(boot: number, sleepMs: number): string {
    return JSON.stringify({
        v: PROTOCOL_VERSION,
        state: "sleeping",
        sleepMs: sleepMs,
        boot: boot,
    })
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
