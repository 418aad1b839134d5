/**
 * Identity rules of docs/protocol.md ("Identity"), owned here for every Node part: gateway, broker, web page,
 * simulator, hardware tools. The firmware keeps a DeviceScript copy (devs/src/protocol/topics.ts);
 * test/firmware/protocol-agreement.test.ts proves the two agree.
 */

/** A device id is also its MQTT client id and username. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const DEVICE_ID_RULE = "1-64 characters from A-Z a-z 0-9 _ -";

export function isDeviceId(id: string): boolean {
  return DEVICE_ID_PATTERN.test(id);
}

/** The message a person sees for a bad device id, wherever it was typed. */
export function deviceIdProblem(id: string): string {
  return `invalid device id ${JSON.stringify(id)}: use ${DEVICE_ID_RULE} (docs/protocol.md, Identity)`;
}

/** Throws a message a person can act on; used before any side effect. */
export function assertDeviceId(id: string): void {
  if (!isDeviceId(id)) throw new Error(deviceIdProblem(id));
}

/** Command ids: assigned by the gateway, echoed by the device in its CommandAck. */
export const COMMAND_ID_PATTERN = /^[A-Za-z0-9_-]{1,40}$/;
