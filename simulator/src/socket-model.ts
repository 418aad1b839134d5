/**
 * The contract between DeviceNetwork (network.ts) and the two socket models it can run for a VM instance:
 * vm-socket.ts (the DeviceScript WASM host's own glue, profile `vm`) and esp32-socket.ts (devicescript-esp32
 * main/sock.c, profile `esp32`). A model lives for one boot (one VM instance).
 */
import type { BrokerLink, BrokerLinkHandlers } from "./broker-link.ts";
import type { DeviceFaults } from "./faults.ts";
import type { WireCounters } from "./mqtt-wire.ts";
import type { RuntimeProfile } from "./profile.ts";

/** What the VM's socket hooks do (jd_tcpsock_new / _write / _close, runtime/posix/sock_nodejs.c). */
export interface SocketModel {
  /** sockOpen: 0 = accepted (the open or error event comes later), negative = refused now. */
  open(requestedHost: string, requestedPort: number): number;
  /** sockWrite with a copy of the bytes: 0 = accepted, -10 = no connection, -1 = queue full (esp32). */
  write(bytes: Buffer): number;
  /** sockClose (the firmware's close, or the runtime's own jd_tcpsock_close after an error event). */
  close(): number;
  /** The VM is gone (deep sleep, power cut, stop): drop everything, tell nobody. */
  detach(): void;
}

export interface SocketContext {
  profile: RuntimeProfile;
  counters: WireCounters;
  faults: DeviceFaults;
  log(line: string): void;
  /** Dials the broker for what the firmware asked (TLS per the broker URL and the profile's trust rules). */
  link(requestedHost: string, requestedPort: number, handlers: BrokerLinkHandlers): BrokerLink;
  /** Delivers a socket event (SOCK_EVENT) into this boot's VM; nothing once it is detached. */
  deliver(kind: number, payload?: string | Buffer): void;
  /** Seeded value in [0, 1) for (seed, device, boot, ...labels): same seed, same timings. */
  unit(...labels: (string | number)[]): number;
  /** A TLS handshake failed under the profile's trust rules: explain it (once per device and kind). */
  tlsFailed(err: Error, requestedHost: string): void;
}
