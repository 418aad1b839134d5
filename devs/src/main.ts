import * as ds from "@devicescript/core"
import { standby } from "@devicescript/runtime"
import { configureBoard } from "./board"
import { loadConfig } from "./settings"
import { createSensorRoles, measure, Sensors, startDriver } from "./sensors"
import { Outbox } from "./outbox"
import { Commands } from "./commands"
import { Uplink } from "./uplink"
import { flashWriteCount } from "./flash"

// One wake of a battery sensor: read → store in flash → connect → flush → commands → sleep.
// Everything in RAM is lost in deep sleep; what must survive is in flash (outbox.ts, commands.ts).

/** How long a sensor role may take to answer before the reading goes out without it. */
const SENSOR_TIMEOUT_MS = 3000
/** Reserve at the end of the awake budget for the `sleeping` status and DISCONNECT (at most a quarter). */
const GOODBYE_MS = 1500

async function wake(sensors: Sensors) {
    const started = ds.millis()
    const cfg = await loadConfig()
    await startDriver(sensors, cfg)
    const outbox = await Outbox.load()
    const commands = await Commands.load()

    const m = await measure(sensors, SENSOR_TIMEOUT_MS)
    // no wall clock on the device (no NTP here): t = null, the gateway stamps receivedAt
    const reading = await outbox.append(m.readings, m.battery, null)
    if (reading)
        console.log(`reading seq=${reading.seq} boot=${reading.boot} ${JSON.stringify(reading.readings)} stored at ${ds.millis() - started} ms`)
    else console.error("wake: the reading could not be stored in flash and is not sent")
    const boot = reading ? reading.boot : outbox.lastBoot()

    const deadline = started + cfg.awakeMaxS * 1000
    const uplink = new Uplink(cfg, outbox, commands, boot)
    const ok = await uplink.deliver(deadline - Math.min(GOODBYE_MS, (cfg.awakeMaxS * 1000) / 4))
    if (!ok) console.warn(`wake: awake budget spent, ${outbox.pending().length} reading(s) stay in flash`)
    await uplink.stayAwake(() => commands.effects.stayAwakeUntil)
    await outbox.commit()
    await uplink.releaseQos2(Math.max(deadline, commands.effects.stayAwakeUntil))

    const intervalS = commands.intervalOverride() || cfg.intervalS
    const sleepMs = intervalS * 1000
    if (commands.effects.reboot) {
        await uplink.goodbye(0, ds.millis() + GOODBYE_MS)
        console.log("wake: rebooting on command")
        ds.reboot()
    }
    await uplink.goodbye(sleepMs, ds.millis() + GOODBYE_MS)
    console.log(`wake: done in ${ds.millis() - started} ms, flash writes ${flashWriteCount()}, sleeping ${sleepMs} ms`)
    await standby(sleepMs)
}

configureBoard()
await wake(createSensorRoles())
