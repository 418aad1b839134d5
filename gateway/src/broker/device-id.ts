/** docs/protocol.md "Identity": a device id is also its MQTT client id and username. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function isValidDeviceId(id: string): boolean {
  return DEVICE_ID_PATTERN.test(id);
}

/** Throws a message a person can act on; used by the provision tool before any side effect. */
export function assertValidDeviceId(id: string): void {
  if (!isValidDeviceId(id)) {
    throw new Error(
      `invalid device id ${JSON.stringify(id)}: use 1-64 characters from A-Z a-z 0-9 _ - (docs/protocol.md, Identity)`,
    );
  }
}
