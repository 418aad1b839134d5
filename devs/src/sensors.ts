import * as ds from "@devicescript/core"
import { startSHT30, startSHTC3, startAHT20 } from "@devicescript/drivers"
import { Config } from "./settings"

// Temperature and humidity through DeviceScript sensor roles. On hardware the SENSOR setting picks
// the I2C driver, whose servers the roles bind to; in the simulator (ds.isSimulator()) no driver is
// started (the drivers skip I2C there anyway) and the roles bind to the Jacdac servers that the
// simulator process puts on the device's bus.

export interface Sensors {
    temperature: ds.Temperature
    humidity: ds.Humidity
    battery: ds.Potentiometer | null
    batteryDivider: number
}

/** ESP32 ADC full scale at 11 dB attenuation, in volts (datasheet: about 3.1 V). */
const ADC_FULL_SCALE_V = 3.1

/**
 * The sensor roles. Call before the first `await` of the program: roles created then bind during
 * start-up; each role created later costs about a second of awake time (measured in the simulator).
 * They bind to whatever temperature/humidity server is there: the I2C driver's (startDriver) on
 * hardware, the simulator's Jacdac servers in the simulator.
 */
export function createSensorRoles(): Sensors {
    return { temperature: new ds.Temperature(), humidity: new ds.Humidity(), battery: null, batteryDivider: 2 }
}

async function startClimate(sensor: string) {
    if (sensor === "shtc3") await startSHTC3()
    else if (sensor === "aht20") await startAHT20()
    else await startSHT30()
}

/** Starts the I2C driver chosen by SENSOR (hardware only); a missing chip is logged, not fatal. */
export async function startDriver(s: Sensors, cfg: Config) {
    if (!ds.isSimulator()) {
        try {
            await startClimate(cfg.sensor)
        } catch (e) {
            console.error(`sensors: ${cfg.sensor} failed to start: ${(e as Error).message}`)
        }
    }
    // Server configs must be JSON literals in DeviceScript, so the ADC server itself is started by
    // configureBoard() (board.ts) as startPotentiometer({ pin: ..., name: "battery" }); BATTERY_PIN
    // only says that the board has one (its value documents the pin).
    if (cfg.batteryPin !== null) s.battery = new ds.Potentiometer("battery")
    s.batteryDivider = cfg.batteryDivider
}

/** Waits (bounded) for a role to bind to a server, then reads it; undefined when there is none in time. */
async function readRole(role: ds.Sensor, deadline: number): Promise<number | undefined> {
    while (!role.isBound) {
        if (ds.millis() >= deadline) return undefined
        await ds.sleep(20)
    }
    const v = await (role as any).reading.read()
    return typeof v === "number" && !isNaN(v) ? v : undefined
}

function round(v: number, digits: number) {
    const f = Math.pow(10, digits)
    return Math.round(v * f) / f
}

export interface Measurement {
    readings: Record<string, number>
    battery: number | null
}

/** One measurement; values that are not there within timeoutMs are left out rather than waited for. */
export async function measure(s: Sensors, timeoutMs: number): Promise<Measurement> {
    const deadline = ds.millis() + timeoutMs
    const readings: Record<string, number> = {}
    {
        const t = await readRole(s.temperature, deadline)
        if (t !== undefined) readings["temperature"] = round(t, 2)
        else console.warn("sensors: no temperature in time")
    }
    {
        const h = await readRole(s.humidity, deadline)
        if (h !== undefined) readings["humidity"] = round(h, 2)
        else console.warn("sensors: no humidity in time")
    }
    let battery: number | null = null
    if (s.battery) {
        const b = await readRole(s.battery, deadline)
        if (b !== undefined) battery = round(b * ADC_FULL_SCALE_V * s.batteryDivider, 3)
    }
    return { readings: readings, battery: battery }
}
