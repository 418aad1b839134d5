import * as ds from "@devicescript/core"
import { settings, writeSetting, deleteSetting } from "@devicescript/settings"

// Raw access to the settings store for the firmware's own state. Records are kept small: the whole
// store is about 8 KB (the VM reports "fstor: mounted; 8144 free") and is shared with the settings. Unlike readSetting, readRecord
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
    if (!Array.isArray(o) || o.length !== 2 || typeof o[1] !== "number") throw new ErrCorrupt(key, "bad envelope")
    if (checksum(JSON.stringify(o[0])) !== o[1]) throw new ErrCorrupt(key, "checksum mismatch")
    return o[0]
}

/**
 * One flash write: `[value, checksum]`. The settings store does not report a failed write (a full
 * store only logs "fstor: out of space"), so with `verify` the record is read back: false = not stored.
 */
export async function writeRecord(key: string, value: any, verify?: boolean): Promise<boolean> {
    flashWrites++
    const text = JSON.stringify(value)
    await writeSetting(key, [value, checksum(text)])
    if (!verify) return true
    try {
        const back = await readRecord(key)
        if (JSON.stringify(back) === text) return true
    } catch (e) {
        // unreadable counts as not stored
    }
    console.error(`flash: ${key} was not stored (settings store full?)`)
    return false
}

export async function deleteRecord(key: string) {
    flashWrites++
    await deleteSetting(key)
}
