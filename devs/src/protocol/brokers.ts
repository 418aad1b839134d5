// The broker list of a device (docs/protocol.md, setting MQTT_HOSTS) and the failover order, defined once.
// Plain TypeScript: no DeviceScript imports, so the provisioning check (hardware/settings/validate.ts)
// parses MQTT_HOSTS with the same code as the firmware.

export interface BrokerAddress {
    host: string
    port: number
}

export interface BrokerList {
    /** valid entries, in the order given, without duplicates */
    brokers: BrokerAddress[]
    /** one reason per entry that was left out */
    errors: string[]
}

/**
 * At most this many brokers: each one costs up to a connect timeout of the wake's budget, and the
 * remembered index is one digit in the delivery record (devs/README.md, "Flash records and their bounds").
 */
export const MAX_BROKERS = 4

function isDigit(c: number) {
    return c >= 48 && c <= 57
}

/** A host name or IPv4 address: labels of letters, digits and '-', separated by dots (no port, no scheme). */
export function isValidHost(host: string): boolean {
    if (!host || host.length > 253) return false
    let labelLength = 0
    for (let i = 0; i < host.length; i++) {
        const c = host.charCodeAt(i)
        if (c === 46) {
            // '.': no empty label, none ending in '-'
            if (labelLength === 0 || host.charCodeAt(i - 1) === 45) return false
            labelLength = 0
            continue
        }
        const letter = (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
        if (!letter && !isDigit(c) && c !== 45) return false
        if (c === 45 && labelLength === 0) return false
        labelLength++
        if (labelLength > 63) return false
    }
    return labelLength > 0 && host.charCodeAt(host.length - 1) !== 45
}

/** A port in decimal digits, 1..65535; -1 when it is not one. */
function parsePort(text: string): number {
    if (!text || text.length > 5) return -1
    let n = 0
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i)
        if (!isDigit(c)) return -1
        n = n * 10 + (c - 48)
    }
    return n >= 1 && n <= 65535 ? n : -1
}

function listed(brokers: BrokerAddress[], host: string, port: number) {
    for (const b of brokers) if (b.host === host && b.port === port) return true
    return false
}

/**
 * Parses `host[:port],host[:port],...`; an entry without a port gets `defaultPort`. Bad, duplicate and
 * surplus entries are left out with a reason each (the firmware logs them and carries on with the rest).
 * @example
 * parseBrokerList("192.168.1.20:1883,192.168.1.21", 1883).brokers
 * // [{ host: "192.168.1.20", port: 1883 }, { host: "192.168.1.21", port: 1883 }]
 */
export function parseBrokerList(text: string, defaultPort: number): BrokerList {
    const brokers: BrokerAddress[] = []
    const errors: string[] = []
    const entries = text.split(",")
    for (let i = 0; i < entries.length; i++) {
        const entry = entries[i].trim()
        const label = `entry ${i + 1} '${entry}'`
        if (!entry) {
            errors.push(`${label}: empty`)
            continue
        }
        const colon = entry.indexOf(":")
        const host = colon < 0 ? entry : entry.slice(0, colon)
        const port = colon < 0 ? defaultPort : parsePort(entry.slice(colon + 1))
        if (!isValidHost(host)) {
            errors.push(`${label}: not a host name or IPv4 address`)
            continue
        }
        if (port < 0) {
            errors.push(`${label}: the port must be a whole number 1..65535`)
            continue
        }
        if (listed(brokers, host, port)) {
            errors.push(`${label}: listed twice`)
            continue
        }
        if (brokers.length >= MAX_BROKERS) {
            errors.push(`${label}: more than ${MAX_BROKERS} brokers`)
            continue
        }
        brokers.push({ host: host, port: port })
    }
    return { brokers: brokers, errors: errors }
}

/**
 * The broker a wake tries first: the one that took the last delivery (`lastIndex`, -1 unknown), moved on
 * by one for each wake since then that delivered nothing. Why not simply the last good one: on the ESP32
 * a connect to a host that does not answer blocks the runtime's socket worker with no timeout (devs/README.md,
 * "Several brokers"), so a wake may get only one attempt; rotating across such wakes reaches the next broker
 * without a flash write in a failed wake.
 */
export function firstBroker(count: number, lastIndex: number, wakesWithoutDelivery: number): number {
    if (count <= 1) return 0
    const start = lastIndex >= 0 && lastIndex < count ? lastIndex : 0
    return (start + Math.max(0, wakesWithoutDelivery)) % count
}
