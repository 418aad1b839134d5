// Topic names from docs/protocol.md, defined once. Plain TypeScript: no DeviceScript imports,
// so Node code (gateway, tests) can import this file too.

/** Device ids accepted by the contract: `^[A-Za-z0-9_-]{1,64}$`. */
export function isValidDeviceId(id: string): boolean {
    if (!id || id.length > 64) return false
    for (let i = 0; i < id.length; i++) {
        const c = id.charCodeAt(i)
        const ok =
            (c >= 48 && c <= 57) || // 0-9
            (c >= 65 && c <= 90) || // A-Z
            (c >= 97 && c <= 122) || // a-z
            c === 95 || // _
            c === 45 // -
        if (!ok) return false
    }
    return true
}

export function telemetryTopic(deviceId: string) {
    return `sensors/${deviceId}/telemetry`
}

export function statusTopic(deviceId: string) {
    return `sensors/${deviceId}/status`
}

export function commandTopic(deviceId: string) {
    return `sensors/${deviceId}/cmd`
}

export function commandAckTopic(deviceId: string) {
    return `sensors/${deviceId}/cmd/ack`
}
