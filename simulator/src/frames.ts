/**
 * Just enough Jacdac frame parsing for the host: find the VM's deep-sleep request and its announce.
 * Frame: crc u16, size u8, flags u8, device id (8 bytes), then packets padded to 4 bytes, each
 * service_size u8, service_index u8, service_command u16 LE, payload (jacdac spec, "Frames").
 */

export interface JacdacPacket {
  serviceIndex: number;
  serviceCommand: number;
  payload: Uint8Array;
}

export interface JacdacFrame {
  isCommand: boolean;
  deviceIdHex: string;
  packets: JacdacPacket[];
}

export function parseFrame(frame: Uint8Array): JacdacFrame | undefined {
  if (frame.length < 12) return undefined;
  const size = frame[2]!;
  const end = Math.min(frame.length, 12 + size);
  const packets: JacdacPacket[] = [];
  for (let at = 12; at + 4 <= end; ) {
    const serviceSize = frame[at]!;
    packets.push({
      serviceIndex: frame[at + 1]!,
      serviceCommand: frame[at + 2]! | (frame[at + 3]! << 8),
      payload: frame.subarray(at + 4, Math.min(end, at + 4 + serviceSize)),
    });
    at += (4 + serviceSize + 3) & ~3;
  }
  return {
    isCommand: (frame[3]! & 1) !== 0,
    deviceIdHex: Buffer.from(frame.subarray(4, 12)).toString("hex"),
    packets,
  };
}

/** ControlCmd.Standby (0x87) to service 0: DeviceScript's `standby(ms)`. Returns the ms, or undefined. */
export function standbyRequest(frame: JacdacFrame): number | undefined {
  if (!frame.isCommand) return undefined;
  for (const p of frame.packets) {
    if (p.serviceIndex === 0 && p.serviceCommand === 0x87 && p.payload.length >= 4) {
      return Buffer.from(p.payload).readUInt32LE(0);
    }
  }
  return undefined;
}

/** The service classes a device announces (control announce report: u16 flags, u8, u8, then u32 classes). */
export function announcedServices(frame: JacdacFrame): number[] | undefined {
  if (frame.isCommand) return undefined;
  const p = frame.packets.find((x) => x.serviceIndex === 0 && x.serviceCommand === 0);
  if (!p || p.payload.length < 4) return undefined;
  const classes = [0]; // index 0 is the control service
  for (let at = 4; at + 4 <= p.payload.length; at += 4) classes.push(Buffer.from(p.payload).readUInt32LE(at));
  return classes;
}
