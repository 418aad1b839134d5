import * as ds from "@devicescript/core"
import { settings, writeSetting, deleteSetting } from "@devicescript/settings"

// Raw access to the settings store for the firmware's own state. Unlike readSetting, readRecord
// tells "missing" (undefined) from "present but unreadable" (throws ErrCorrupt), so a damaged
// entry is counted instead of silently treated as empty.

let flashWrites = 0

/** Number of flash writes (and deletes) this wake: the figure the flash-wear budget is about. */
export function flashWriteCount() {
    return flashWrites
}

export class ErrCorrupt extends Error {
    constructor(key: string, why: string) {
        super(`flash: ${key}: ${why}`)
    }
}

/** Checksum of a record's JSON text, stored next to it (FNV-1a, 32 bit). */
export function checksum(text: string): number {
    let h = 0x811c9dc5
    for (let i = 0; i < text.length; i++) {
        h = (h ^ text.charCodeAt(i)) >>> 0
        h = (Math.imul(h, 16777619)) >>> 0
    }
    return h
}

export async function readRecord(key: string): Promise<any> {
    const pkt = await ds.actionReport(
        settings,
        "get",
        async () => await settings.get(key),
        pkt => pkt.decode()[0] === key
    )
    const b: Buffer = pkt.decode()[1]
    if (!b || !b.length) return undefined
    let o: any
    try {
        o = JSON.parse(b.toString())
    } catch (e) {
        throw new ErrCorrupt(key, "not JSON")
    }
    if (!o || typeof o !== "object" || typeof o.d !== "object" || typeof o.k !== "number")
        throw new ErrCorrupt(key, "bad envelope")
    if (checksum(JSON.stringify(o.d)) !== o.k) throw new ErrCorrupt(key, "checksum mismatch")
    return o.d
}

/** One flash write: the value wrapped with its checksum. */
export async function writeRecord(key: string, value: any) {
    flashWrites++
    await writeSetting(key, { d: value, k: checksum(JSON.stringify(value)) })
}

export async function deleteRecord(key: string) {
    flashWrites++
    await deleteSetting(key)
}
