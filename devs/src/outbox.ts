import { Reading } from "./protocol/messages"
import { deleteRecord, ErrCorrupt, readRecord, writeRecord } from "./flash"

// The durable outbox: a ring of OUTBOX_SLOTS readings in flash, one settings key per slot
// ("o0".."o63", slot = seq % OUTBOX_SLOTS), plus one delivery record ("ak").
//
// Flash writes per wake (see devs/README.md for the reasoning):
//   1. append(): the new reading goes into its slot BEFORE any network traffic. seq and boot
//      live inside the slot records (next seq = highest seq found + 1), so this single write
//      also persists the counters. Overwriting an undelivered reading = "dropped".
//   2. commit(): after the broker acknowledged, "ak" records how far delivery got. Skipped when
//      delivery made no progress (e.g. broker unreachable).

export const OUTBOX_SLOTS = 64
const ACK_KEY = "ak"

// loadSlot results
const ABSENT = 0
const LOADED = 1
const NEWER = 2
const CORRUPT = 3

/** After this many readings without a delivery record update, commit() writes one anyway (bounds load()). */
const MAX_UNRECORDED = 16

function slotKey(i: number) {
    return "o" + i
}

interface AckRecord {
    /** every reading with seq <= w is delivered (or was dropped) */
    w: number
    /** QoS 2: seqs whose PUBREC came but whose PUBCOMP may not have: only PUBREL is left */
    rel: number[]
    /**
     * QoS 2: seqs <= w taken out of `rel` because a broker without our session (sessionPresent=0) never
     * had them: to be published again. Absent when empty (almost always).
     */
    rp?: number[]
    /** highest seq ever handed out: a floor against reuse if slots are lost */
    hi: number
    /** boot number of the wake that wrote this record */
    b: number
    /** device-clock time of the next boot that wake planned (clock.ts); absent in old records */
    nb?: number
    /**
     * index in the broker list (MQTT_HOSTS) of the broker this wake was connected to: where the next wake
     * starts (protocol/brokers.ts firstBroker). Absent with a single broker. Kept here, not in a record of
     * its own: every extra settings write is a torn-write risk (devs/README.md, "Torn writes").
     */
    br?: number
}

/** Where this wake's device clock comes from: the newest plan in flash. */
export interface ClockPlan {
    /** boot number of the wake that made the plan (0: none) */
    boot: number
    /** its planned next boot on the device clock, as a function of the period in force */
    next: (periodMs: number) => number
}

function isNat(v: any) {
    return typeof v === "number" && Math.round(v) === v && v >= 0
}

/**
 * Reading values by position in a slot record; append new keys at the end only (old records stay
 * readable). Records are arrays, not objects: 64 of them must fit in the ~8 KB settings store.
 */
export const READING_KEYS = ["temperature", "humidity"]

/** A reading's clock fields: its wake's boot time, ms since that boot, and the wake's planned periods. */
export interface ReadingClock {
    bootAt: number
    takenMs: number
    /** the wake planned its next boot at bootAt + periods × period (clock.ts), unless "ak" says otherwise */
    periods: number
}

/**
 * [seq, boot, clock, battery, dropped, corrupt, ...values in READING_KEYS order (null = absent)];
 * clock = [bootAt, takenMs, periods] or null (records from before the device clock).
 */
function toRecord(r: Reading, c: ReadingClock): any[] {
    const rec: any[] = [r.seq, r.boot, [c.bootAt, c.takenMs, c.periods], r.battery, r.dropped, r.corrupt]
    for (const k of READING_KEYS) rec.push(typeof r.readings[k] === "number" ? r.readings[k] : null)
    return rec
}

function clockOf(o: any): ReadingClock | null {
    const c = o[2]
    if (!Array.isArray(c) || c.length !== 3 || !isNat(c[0]) || !isNat(c[1]) || !isNat(c[2]) || c[2] < 1) return null
    return { bootAt: c[0], takenMs: c[1], periods: c[2] }
}

function fromRecord(o: any, key: string): Reading {
    if (!Array.isArray(o) || o.length < 6 || !isNat(o[0]) || !isNat(o[1])) throw new ErrCorrupt(key, "bad reading")
    const clock = clockOf(o)
    const readings: Record<string, number> = {}
    for (let i = 0; i < READING_KEYS.length; i++) {
        const v = o[6 + i]
        if (typeof v === "number") readings[READING_KEYS[i]] = v
    }
    return {
        seq: o[0],
        boot: o[1],
        takenAt: clock ? clock.bootAt + clock.takenMs : null,
        readings: readings,
        battery: typeof o[3] === "number" ? o[3] : null,
        dropped: isNat(o[4]) ? o[4] : 0,
        corrupt: isNat(o[5]) ? o[5] : 0,
    }
}

export class Outbox {
    /** readings in flash, ascending seq */
    private entries: Reading[] = []
    private ack: AckRecord = { w: 0, rel: [], hi: 0, b: 0 }
    /** w and rel as last read or written: commit() writes only when they changed */
    private savedProgress = ""
    /** hi as last read or written */
    private savedHi = 0
    /** br as last read or written */
    private savedBroker: number = undefined
    private delivered: number[] = []
    private corruptKeys: string[] = []
    private maxBoot = 0
    /** the newest reading's clock fields (by boot), whether delivered or not */
    private newestClock: ReadingClock | null = null
    private newestClockBoot = 0

    /**
     * Reads the delivery record and only the slots that can matter: undelivered seqs (w, hi] and
     * readings appended after the last commit (hi+1, hi+2, ... while the slot holds that seq). Without
     * a readable delivery record every slot is read. Unreadable slots are counted, never fatal.
     */
    static async load(): Promise<Outbox> {
        const box = new Outbox()
        let fullScan = false
        try {
            const a = await readRecord(ACK_KEY)
            if (a) {
                if (!isNat(a.w) || !isNat(a.hi) || !isNat(a.b) || !Array.isArray(a.rel))
                    throw new ErrCorrupt(ACK_KEY, "bad fields")
                box.ack = { w: a.w, rel: a.rel.filter((s: any) => isNat(s)), hi: a.hi, b: a.b }
                if (isNat(a.nb)) box.ack.nb = a.nb
                if (isNat(a.br)) box.ack.br = a.br
                if (Array.isArray(a.rp)) box.ack.rp = a.rp.filter((s: any) => isNat(s))
                box.maxBoot = a.b
            }
        } catch (e) {
            // losing the watermark only means resending: the gateway de-duplicates on (device, seq)
            console.error(`outbox: ${(e as Error).message}; reading every slot`)
            box.corruptKeys.push(ACK_KEY)
            fullScan = true
        }
        box.savedProgress = box.progress()
        box.savedHi = box.ack.hi
        box.savedBroker = box.ack.br
        if (!fullScan) {
            // below w, only readings to publish again are read; a slot reused since holds a newer seq
            for (const seq of box.republish()) await box.loadSlot(seq % OUTBOX_SLOTS, seq)
            const hi = box.ack.hi
            const first = Math.max(box.ack.w + 1, hi - OUTBOX_SLOTS + 1)
            for (let seq = first; seq <= hi; seq++) await box.loadSlot(seq % OUTBOX_SLOTS, -1)
            for (let seq = hi + 1; seq <= hi + OUTBOX_SLOTS; seq++) {
                const found = await box.loadSlot(seq % OUTBOX_SLOTS, seq)
                if (found === LOADED) continue
                if (found === CORRUPT) {
                    // it may have held this seq: never hand that seq out again, and look further
                    if (seq > box.ack.hi) box.ack.hi = seq
                    continue
                }
                // a newer seq than expected: the ring wrapped since "ak" was written
                if (found === NEWER) fullScan = true
                break
            }
        }
        if (fullScan) {
            const corrupt: number[] = []
            for (let i = 0; i < OUTBOX_SLOTS; i++) if ((await box.loadSlot(i, -1)) === CORRUPT) corrupt.push(i)
            // a damaged slot right after the newest reading is most likely a torn newer append
            const next = box.lastSeq() + 1
            if (corrupt.indexOf(next % OUTBOX_SLOTS) >= 0) box.ack.hi = next
        }
        box.entries.sort((a, b) => a.seq - b.seq)
        if (box.ack.rp) {
            const rp = box.ack.rp.filter(seq => box.entries.some(e => e.seq === seq))
            box.ack.rp = rp.length ? rp : undefined
        }
        return box
    }

    /** What commit() compares with the record in flash: w, rel and rp (as sets: a restart reorders rel). */
    private progress() {
        const byValue = (a: number, b: number) => a - b
        return JSON.stringify({ w: this.ack.w, rel: this.ack.rel.slice(0).sort(byValue), rp: this.republish().slice(0).sort(byValue) })
    }

    private republish(): number[] {
        return this.ack.rp || []
    }

    /** Loads one slot; with `expect` >= 0 only a reading with that seq counts. */
    private async loadSlot(i: number, expect: number): Promise<number> {
        const key = slotKey(i)
        try {
            const o = await readRecord(key)
            if (o === undefined) return ABSENT
            const r = fromRecord(o, key)
            if (r.seq % OUTBOX_SLOTS !== i) throw new ErrCorrupt(key, `seq ${r.seq} in wrong slot`)
            if (expect >= 0 && r.seq > expect) return NEWER
            if (expect >= 0 && r.seq < expect) return ABSENT
            if (r.boot > this.maxBoot) this.maxBoot = r.boot
            const clock = clockOf(o)
            if (clock && r.boot >= this.newestClockBoot) {
                this.newestClock = clock
                this.newestClockBoot = r.boot
            }
            if (r.seq > this.ack.hi) this.ack.hi = r.seq // floor for the next seq, also if delivered
            if (r.seq <= this.ack.w && this.ack.rel.indexOf(r.seq) < 0 && this.republish().indexOf(r.seq) < 0)
                return LOADED // delivered
            if (!this.entries.some(e => e.seq === r.seq)) this.entries.push(r)
            return LOADED
        } catch (e) {
            console.error(`outbox: ${(e as Error).message}; entry skipped`)
            if (this.corruptKeys.indexOf(key) < 0) this.corruptKeys.push(key)
            return CORRUPT
        }
    }

    /** Highest seq in use anywhere (0 = none yet; the first reading is seq 1). */
    lastSeq(): number {
        let s = Math.max(this.ack.hi, this.ack.w)
        for (const e of this.entries) if (e.seq > s) s = e.seq
        return s
    }

    lastBoot(): number {
        return this.maxBoot
    }

    /**
     * The plan this wake's clock continues (clock.ts): the delivery record's explicit next boot when it is
     * at least as new as the newest reading, else that reading's wake boot + its planned periods.
     */
    clockPlan(): ClockPlan {
        const ack = this.ack
        const c = this.newestClock
        if (isNat(ack.nb) && (!c || ack.b >= this.newestClockBoot)) {
            const nb: number = ack.nb
            return { boot: ack.b, next: () => nb }
        }
        if (c) return { boot: this.newestClockBoot, next: (periodMs: number) => c.bootAt + c.periods * periodMs }
        return { boot: 0, next: () => 0 }
    }

    private isDone(seq: number) {
        if (this.delivered.indexOf(seq) >= 0 || this.ack.rel.indexOf(seq) >= 0) return true
        return seq <= this.ack.w && this.republish().indexOf(seq) < 0
    }

    /** Takes `seq` out of the readings to publish again (delivered again, or its slot reused). */
    private unrepublish(seq: number) {
        const rp = this.republish()
        const i = rp.indexOf(seq)
        if (i >= 0) rp.insert(i, -1)
        if (this.ack.rp && !rp.length) this.ack.rp = undefined
    }

    /**
     * Stores a new reading (THE flash write of the normal path). Fills in seq, boot, dropped
     * (the undelivered reading it overwrites) and corrupt (unreadable entries found at load).
     * null when the store did not keep it (full): the reading is then not published.
     */
    async append(values: Record<string, number>, battery: number | null, clock: ReadingClock): Promise<Reading | null> {
        const seq = this.lastSeq() + 1
        const slot = seq % OUTBOX_SLOTS
        let dropped = 0
        const old = this.entries.filter(e => e.seq % OUTBOX_SLOTS === slot)
        for (const e of old) {
            if (!this.isDone(e.seq)) {
                dropped++
                console.warn(`outbox: full, dropping seq ${e.seq}`)
            }
            this.unrepublish(e.seq)
            this.entries.insert(this.entries.indexOf(e), -1)
        }
        const r: Reading = {
            seq: seq,
            boot: this.maxBoot + 1,
            takenAt: clock.bootAt + clock.takenMs,
            readings: values,
            battery: battery,
            dropped: dropped,
            corrupt: this.corruptKeys.length,
        }
        this.maxBoot = r.boot
        if (!(await writeRecord(slotKey(slot), toRecord(r, clock), true))) {
            // not durable: publishing it could let its seq be handed out again after a power cut
            this.corruptKeys = []
            return null
        }
        this.entries.push(r)
        this.newestClock = clock
        this.newestClockBoot = r.boot
        // unreadable slots would be counted again on every wake: remove them (rare path)
        for (const key of this.corruptKeys)
            if (key !== slotKey(slot) && key !== ACK_KEY) await deleteRecord(key)
        this.corruptKeys = []
        return r
    }

    /** Readings still to PUBLISH, oldest first. */
    pending(): Reading[] {
        const self = this
        return this.entries.filter(e => !self.isDone(e.seq))
    }

    /** QoS 2 flows that only miss PUBREL/PUBCOMP (from an earlier wake or this one). */
    releasing(): number[] {
        return this.ack.rel.slice(0)
    }

    /** The broker that took the last recorded delivery (index in the broker list), -1 when unknown. */
    lastBroker(): number {
        return isNat(this.ack.br) ? this.ack.br : -1
    }

    /** Boot number of the wake that wrote the delivery record (0: none). */
    lastCommitBoot(): number {
        return this.ack.b
    }

    /** This wake is connected to broker `index`: recorded by commit(), which writes when it changed. */
    noteBroker(index: number) {
        this.ack.br = index
    }

    /** PUBACK (QoS 0: written to the socket) seen for `seq`. RAM only until commit(). */
    markDelivered(seq: number) {
        if (this.delivered.indexOf(seq) < 0) this.delivered.push(seq)
        this.unrepublish(seq)
    }

    /** QoS 2 PUBREC seen: delivered exactly once, PUBREL pending. */
    markReceived(seq: number) {
        if (this.ack.rel.indexOf(seq) < 0) this.ack.rel.push(seq)
        this.unrepublish(seq)
    }

    /**
     * QoS 2 flows past PUBREC that the connected broker cannot have (sessionPresent=0, Session.restartQos2):
     * pending again, in RAM only. No flash write of its own: a new PUBREC before commit() restores what the
     * record says; otherwise commit() writes them as `rp`. Returns their readings to publish, ascending;
     * a reading whose slot was reused since is gone (logged).
     */
    async restart(seqs: number[]): Promise<Reading[]> {
        const out: Reading[] = []
        for (const seq of seqs) {
            const i = this.ack.rel.indexOf(seq)
            if (i >= 0) this.ack.rel.insert(i, -1)
            if (seq <= this.ack.w && this.republish().indexOf(seq) < 0) {
                if (!this.ack.rp) this.ack.rp = []
                this.ack.rp.push(seq)
            }
            // readings whose PUBREC came in an earlier wake are not in RAM: load() skips them
            if (!this.entry(seq)) await this.loadSlot(seq % OUTBOX_SLOTS, seq)
            const r = this.entry(seq)
            if (r) out.push(r)
            else {
                console.error(`outbox: seq ${seq} cannot be published again: its slot holds a newer reading`)
                this.unrepublish(seq)
            }
        }
        this.entries.sort((a, b) => a.seq - b.seq)
        return out.sort((a, b) => a.seq - b.seq)
    }

    private entry(seq: number): Reading | undefined {
        for (const e of this.entries) if (e.seq === seq) return e
        return undefined
    }

    /** QoS 2 PUBCOMP seen. */
    markCompleted(seq: number) {
        const i = this.ack.rel.indexOf(seq)
        if (i >= 0) this.ack.rel.insert(i, -1)
    }

    /**
     * Persists delivery progress (the second flash write) with the planned next boot (clock.ts), only
     * when something changed, or when `force`: the next wake could not derive its clock without it.
     */
    async commit(nextBoot: number, force: boolean): Promise<boolean> {
        let w = this.ack.w
        for (const e of this.entries) {
            if (e.seq <= w) continue
            if (this.delivered.indexOf(e.seq) >= 0 || this.ack.rel.indexOf(e.seq) >= 0) w = e.seq
            else break
        }
        this.ack.w = w
        this.delivered = this.delivered.filter(s => s > w)
        // hi and b alone are no reason to write: load() finds newer slots by scanning forward from hi
        const unrecorded = this.lastSeq() - this.savedHi
        if (
            this.progress() === this.savedProgress &&
            unrecorded < MAX_UNRECORDED &&
            this.ack.br === this.savedBroker &&
            !force
        )
            return false
        this.ack.hi = this.lastSeq()
        this.ack.b = this.maxBoot
        this.ack.nb = nextBoot
        await writeRecord(ACK_KEY, this.ack)
        this.savedProgress = this.progress()
        this.savedHi = this.ack.hi
        this.savedBroker = this.ack.br
        return true
    }
}
