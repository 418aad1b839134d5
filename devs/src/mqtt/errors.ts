// CONNACK return codes (spec 3.2.2.3) with their names, so a refusal is logged as what it means.
const CONNACK_NAMES = [
    "accepted",
    "unacceptable protocol version",
    "identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorized",
]

export function connackCodeName(code: number): string {
    return CONNACK_NAMES[code] || `unknown code ${code}`
}

/** Thrown when the broker refuses the connection; `code` is the CONNACK return code. */
export class ErrConnectionRefused extends Error {
    code: number
    constructor(code: number) {
        super(`mqtt: connection refused: ${connackCodeName(code)} (${code})`)
        this.code = code
    }
}
