import * as ds from "@devicescript/core"
import { readSetting } from "@devicescript/settings"
import { isValidDeviceId } from "./protocol/topics"
import { BrokerAddress, parseBrokerList } from "./protocol/brokers"

// Device configuration from DeviceScript settings (docs/protocol.md, "Device settings").
// `devs deploy`/`devs flash` write devs/.env.defaults and devs/.env.local into the settings store;
// DEFAULTS below must equal .env.defaults (test/firmware checks it) so a device without deployed
// settings (the simulator) behaves the same.

export const DEFAULTS = {
    MQTT_HOST: "127.0.0.1",
    MQTT_PORT: 1883,
    MQTT_TLS: 0,
    INTERVAL_S: 60,
    QOS: 1,
    AWAKE_MAX_S: 20,
    KEEPALIVE_S: 30,
    SENSOR: "sht30",
    LOW_BATT_V: 3.3,
    LOW_BATT_X: 4,
    BOOT_MS: 300,
    CMD_BUDGET: 10,
}

export const SENSORS = ["sht30", "shtc3", "aht20"]

export interface Config {
    /** the brokers to fail over between, in the order given: MQTT_HOSTS, else MQTT_HOST/MQTT_PORT */
    brokers: BrokerAddress[]
    tls: boolean
    username: string
    password: string
    deviceId: string
    intervalS: number
    qos: number
    awakeMaxS: number
    keepaliveS: number
    sensor: string
    /** ADC pin name of the battery divider, or null without battery measurement */
    batteryPin: string | null
    /** battery volts = pin volts × this ratio (the divider) */
    batteryDivider: number
    /** below this battery voltage: no flash writes, no new reading, longer sleep (0: off) */
    lowBatteryV: number
    /** the sleep period is this many times longer while the battery is low */
    lowBatterySleepFactor: number
    /** deep-sleep exit until the runtime's clock starts (ROM boot, bootloader): the device clock adds it */
    wakeOverheadMs: number
    /** commands handled per wake; the rest wait in the broker for the next wake */
    commandBudget: number
}

function isInt(v: any, min: number, max: number) {
    return typeof v === "number" && Math.round(v) === v && v >= min && v <= max
}

/** Reads an integer setting; an invalid value is logged and replaced by the default. */
async function intSetting(key: string, def: number, min: number, max: number) {
    const v = await readSetting<any>(key, def)
    if (isInt(v, min, max)) return v as number
    console.error(`settings: ${key}=${v} is not an integer in ${min}..${max}; using ${def}`)
    return def
}

async function stringSetting(key: string, def: string): Promise<string> {
    const v = await readSetting<any>(key, def)
    if (v === undefined || v === null) return def
    return "" + v
}

/**
 * MQTT_HOSTS (`host[:port],...`, port default MQTT_PORT) when it has a usable entry, else MQTT_HOST/MQTT_PORT
 * as before. Bad entries are logged and left out; a list with none left falls back, never a boot loop.
 */
async function loadBrokers(): Promise<BrokerAddress[]> {
    const port = await intSetting("MQTT_PORT", DEFAULTS.MQTT_PORT, 1, 65535)
    const single = [{ host: await stringSetting("MQTT_HOST", DEFAULTS.MQTT_HOST), port: port }]
    const hosts = await stringSetting("MQTT_HOSTS", "")
    if (!hosts) return single
    const list = parseBrokerList(hosts, port)
    for (const e of list.errors) console.error(`settings: MQTT_HOSTS ${e}; left out`)
    if (list.brokers.length) return list.brokers
    console.error(`settings: MQTT_HOSTS has no usable entry; using MQTT_HOST ${single[0].host}:${port}`)
    return single
}

export async function loadConfig(): Promise<Config> {
    let deviceId = await stringSetting("DEVICE_ID", "")
    if (deviceId && !isValidDeviceId(deviceId)) {
        console.error(`settings: DEVICE_ID '${deviceId}' is invalid (^[A-Za-z0-9_-]{1,64}$); using the hardware id`)
        deviceId = ""
    }
    if (!deviceId) deviceId = ds.deviceIdentifier("self")
    let sensor = (await stringSetting("SENSOR", DEFAULTS.SENSOR)).toLowerCase()
    if (SENSORS.indexOf(sensor) < 0) {
        console.error(`settings: SENSOR '${sensor}' unknown (one of ${SENSORS.join(", ")}); using ${DEFAULTS.SENSOR}`)
        sensor = DEFAULTS.SENSOR
    }
    const batteryPin = await stringSetting("BATTERY_PIN", "")
    const divider = batteryPin ? await readSetting<any>("BATTERY_DIV", 2) : 2
    const lowV = batteryPin ? await readSetting<any>("LOW_BATT_V", DEFAULTS.LOW_BATT_V) : 0
    return {
        brokers: await loadBrokers(),
        tls: (await intSetting("MQTT_TLS", DEFAULTS.MQTT_TLS, 0, 1)) === 1,
        username: await stringSetting("MQTT_USER", ""),
        password: await stringSetting("MQTT_PASS", ""),
        deviceId: deviceId,
        intervalS: await intSetting("INTERVAL_S", DEFAULTS.INTERVAL_S, 5, 86400),
        qos: await intSetting("QOS", DEFAULTS.QOS, 0, 2),
        awakeMaxS: await intSetting("AWAKE_MAX_S", DEFAULTS.AWAKE_MAX_S, 1, 3600),
        keepaliveS: await intSetting("KEEPALIVE_S", DEFAULTS.KEEPALIVE_S, 0, 65535),
        sensor: sensor,
        batteryPin: batteryPin ? batteryPin : null,
        batteryDivider: typeof divider === "number" && divider > 0 ? divider : 2,
        lowBatteryV: typeof lowV === "number" && lowV >= 0 && lowV <= 5 ? lowV : DEFAULTS.LOW_BATT_V,
        lowBatterySleepFactor: batteryPin
            ? await intSetting("LOW_BATT_X", DEFAULTS.LOW_BATT_X, 1, 100)
            : DEFAULTS.LOW_BATT_X,
        wakeOverheadMs: await intSetting("BOOT_MS", DEFAULTS.BOOT_MS, 0, 5000),
        commandBudget: await intSetting("CMD_BUDGET", DEFAULTS.CMD_BUDGET, 0, 100),
    }
}
