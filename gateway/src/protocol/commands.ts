/**
 * The commands of docs/protocol.md ("Commands") and their value ranges, without zod so the web page and the
 * tools can import them. payloads.ts builds the HTTP body schema from these; the firmware's copy is
 * devs/src/protocol/messages.ts (test/firmware/protocol-agreement.test.ts).
 */
export const COMMAND_OPS = ["set-interval", "stay-awake", "ping", "reboot"] as const;
export type CommandOp = (typeof COMMAND_OPS)[number];

/** Value ranges of the commands that take `seconds`; the same as the settings they change. */
export const COMMAND_SECONDS = {
  /** Also the range of the INTERVAL_S setting. */
  "set-interval": { min: 5, max: 86400 },
  /** Also the range of the AWAKE_MAX_S setting. */
  "stay-awake": { min: 1, max: 3600 },
} as const;
