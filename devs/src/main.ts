import * as ds from "@devicescript/core"
import { standby } from "@devicescript/runtime"
import { configureBoard } from "./board"
import { loadConfig } from "./settings"
import { createSensorRoles, measure, Sensors, startDriver } from "./sensors"
import { Outbox } from "./outbox"
import { Commands } from "./commands"
import { PUBCOMP_WAIT_MS, Uplink } from "./uplink"
import { DeviceClock } from "./clock"
import { flashWriteCount } from "./flash"
import { firstBroker } from "./protocol/brokers"

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
    const m = await measure(sensors, SENSOR_TIMEOUT_MS)
    // Low battery: a brown-out during a flash write wipes the settings store (devs/README.md, "Torn
    // writes"), so such a wake writes nothing: no new reading, no commands (they stay queued), a longer sleep.
    const lowBattery = cfg.lowBatteryV > 0 && m.battery !== null && m.battery < cfg.lowBatteryV
    const commands = await Commands.load(lowBattery ? 0 : cfg.commandBudget)

    const period = () => (commands.intervalOverride() || cfg.intervalS) * 1000
    const periodMs = period()
    const plan = outbox.clockPlan()
    const clock = new DeviceClock(plan.next(periodMs), cfg.wakeOverheadMs)
    // the next boot this wake promises in its reading: the first period boundary after the longest wake
    const budgetMs = cfg.awakeMaxS * 1000
    // what can still happen after commit(): PUBCOMPs (QoS 2 only), the goodbye with the broker's close
    const afterCommitMs = (cfg.qos === 2 || outbox.releasing().length ? PUBCOMP_WAIT_MS : 0) + GOODBYE_MS
    const promised = clock.nextBoot(periodMs, budgetMs - (ds.millis() - started) + afterCommitMs)
    const promisedPeriods = Math.round((promised - clock.bootAt) / periodMs)

    let reading = null
    if (lowBattery) console.warn(`wake: battery ${m.battery} V < ${cfg.lowBatteryV} V: no flash writes, no reading`)
    else {
        reading = await outbox.append(m.readings, m.battery, {
            bootAt: clock.bootAt,
            takenMs: ds.millis(),
            periods: promisedPeriods,
        })
        if (reading)
            console.log(`reading seq=${reading.seq} boot=${reading.boot} ${JSON.stringify(reading.readings)} stored at ${ds.millis() - started} ms`)
        else console.error("wake: the reading could not be stored in flash and is not sent")
    }
    const boot = reading ? reading.boot : outbox.lastBoot()

    const deadline = started + budgetMs
    // several brokers: start where the last delivery went, one further per wake that delivered nothing since
    const broker = firstBroker(cfg.brokers.length, outbox.lastBroker(), boot - outbox.lastCommitBoot() - 1)
    const uplink = new Uplink(cfg, outbox, commands, boot, () => clock.now(), broker)
    const localMs = ds.millis() - started
    const ok = await uplink.deliver(deadline - Math.min(GOODBYE_MS, budgetMs / 4))
    if (!ok) console.warn(`wake: awake budget spent, ${outbox.pending().length} reading(s) stay in flash`)
    await uplink.stayAwake(() => commands.effects.stayAwakeUntil)
    await uplink.finishCommands(ds.millis() + GOODBYE_MS)

    // The next boot. What the next wake derives from flash unless "ak" is rewritten: this reading's
    // promise (in the period now in force: set-interval may have changed it), or the older plan. The
    // earliest boundary that still works is better, and is recorded whenever commit() writes anyway;
    // commit() must write it when the derived one no longer works (the wake ran past it, a reboot).
    const finalPeriodMs = period() * (lowBattery ? cfg.lowBatterySleepFactor : 1)
    const reboot = commands.effects.reboot
    const earliest = reboot ? clock.now() + cfg.wakeOverheadMs + 100 : clock.nextBoot(finalPeriodMs, afterCommitMs)
    const derived = reading ? clock.bootAt + promisedPeriods * period() : plan.next(period())
    const derivedWorks = !reboot && derived >= earliest
    let nextBoot = derivedWorks ? derived : earliest
    if (!lowBattery && (await outbox.commit(earliest, !derivedWorks))) nextBoot = earliest
    // QoS 2: PUBREL only for flows whose PUBREC is in flash now (not at low battery: nothing was written)
    if (!lowBattery) await uplink.releaseQos2(Math.max(deadline, commands.effects.stayAwakeUntil))

    const sleepMs = clock.sleepUntil(nextBoot)
    const report = {
        times: {
            start: started,
            local: localMs,
            wifi: uplink.times.wifi,
            mqtt: uplink.times.mqtt,
            commands: uplink.times.commands,
            stay: uplink.times.stay,
        },
        rejected: commands.rejected,
        deferred: commands.deferred,
        battery: m.battery,
        lowBattery: lowBattery,
    }
    const goodbyeStart = ds.millis()
    if (reboot) {
        await uplink.goodbye(0, ds.millis() + GOODBYE_MS, report)
        console.log("wake: rebooting on command")
        ds.reboot()
    }
    await uplink.goodbye(sleepMs, ds.millis() + GOODBYE_MS, report)
    const t = report.times
    const finalSleepMs = clock.sleepUntil(nextBoot)
    const goodbyeMs = ds.millis() - goodbyeStart
    console.log(`wake: done in ${ds.millis() - started} ms, flash writes ${flashWriteCount()}, sleeping ${finalSleepMs} ms`)
    console.log(
        `wake: times runtime ${t.start} local ${t.local} wifi ${t.wifi} mqtt ${t.mqtt} commands ${t.commands} stay ${t.stay} goodbye ${goodbyeMs}`
    )
    console.log(`wake: commands ${commands.handled} handled, ${commands.deferred} deferred, ${commands.rejected} rejected`)
    // recomputed after the goodbye: the next boot must land on the planned time (clock.ts)
    await standby(finalSleepMs)
}

configureBoard()
await wake(createSensorRoles())
