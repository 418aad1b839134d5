/**
 * Runtime profiles: how strict the simulated device is. `esp32` (the default) makes the WASM VM behave like the
 * DeviceScript ESP32 runtime where the two differ; `vm` keeps the plain WASM VM behaviour for comparison.
 * Sources (microsoft/devicescript v2.16.4, microsoft/devicescript-esp32 v2.16.1, the jacdac-c they pin) are
 * named next to each figure. This file is the one owner of these numbers.
 */

export type ProfileName = "esp32" | "vm";
export const PROFILE_NAMES: readonly ProfileName[] = ["esp32", "vm"];
export const DEFAULT_PROFILE: ProfileName = "esp32";

export interface RuntimeProfile {
  name: ProfileName;
  /**
   * Settings: a read reply (key + NUL + value) above this panics the runtime (jacdac-c jd_util.c:129,
   * tx_queue.c:104 → jd_queue.c:28; ESP32 main/platform.c:86 abort() resets the board). Same code in the VM.
   */
  settingsReadLimitBytes: number;
  /** Settings: a write packet (key + NUL + value) is cut to this many bytes (buffer.c:172, impl_register.c:97). */
  settingsWriteLimitBytes: number;
  /** Consecutive boots without a completed wake (a standby request) that count as a boot loop. */
  bootLoopBoots: number;
  /** Sockets modelled on devicescript-esp32 main/sock.c (worker queue, close discards); false: the VM's glue. */
  esp32Sockets: boolean;
  /** sock.c: `sock_cmds = xQueueCreate(50, ...)`; a write into a full queue fails (net Socket.send throws). */
  socketQueueDepth: number;
  /** sock.c: `static uint8_t sockbuf[1024]`: received data reaches the program in pieces of at most this. */
  socketRecvChunkBytes: number;
  /**
   * Received bytes handed to the program per runtime main-loop iteration: jd_tcpsock_process reads what lwIP
   * holds (main/main.c:89, sock.c:356), at most its receive window (ESP-IDF default CONFIG_LWIP_TCP_WND_DEFAULT
   * 5744; devicescript-esp32 does not override it); the broker cannot send more until lwIP reads. Modelled.
   */
  socketRecvWindowBytes: number;
  /** One runtime main-loop iteration, for the receive window above (ms). Modelled. */
  socketRecvTickMs: number;
  /** Worker latency per queued command (ms, seeded in this range): task switch plus Wi-Fi TX. Modelled. */
  socketWorkerDelayMs: [number, number];
  /**
   * Fault `connect-hang`: how long the socket worker stays blocked in getaddrinfo()/connect() (sock.c:128,
   * :142 set no timeout of their own) before lwIP gives up (DNS retries, SYN retransmissions) and the worker
   * pushes "can't connect". Seeded in this range, real ms. Modelled, not measured on a board.
   */
  connectHangMs: [number, number];
  /** Wi-Fi up after boot: scan start (network/wifi.c), scan, association, DHCP; null: network at once. */
  wifi: null | {
    scanStartMs: number;
    scanMs: [number, number];
    associateMs: [number, number];
    dhcpMs: [number, number];
  };
  /** TLS: verify the broker against the public root bundle only (sock.c:185 esp_crt_bundle_attach). */
  tlsPublicRootsOnly: boolean;
  /** Deep-sleep exit to the runtime's clock starting (ROM + bootloader), real ms. Modelled, not measured. */
  bootDelayMs: number;
}

export const PROFILES: Record<ProfileName, RuntimeProfile> = {
  esp32: {
    name: "esp32",
    settingsReadLimitBytes: 232,
    settingsWriteLimitBytes: 236,
    bootLoopBoots: 3,
    esp32Sockets: true,
    socketQueueDepth: 50,
    socketRecvChunkBytes: 1024,
    socketRecvWindowBytes: 5744,
    socketRecvTickMs: 10,
    socketWorkerDelayMs: [1, 6],
    connectHangMs: [20_000, 60_000],
    wifi: { scanStartMs: 2000, scanMs: [1200, 2000], associateMs: [100, 400], dhcpMs: [150, 1500] },
    tlsPublicRootsOnly: true,
    bootDelayMs: 300,
  },
  vm: {
    name: "vm",
    settingsReadLimitBytes: 232,
    settingsWriteLimitBytes: 236,
    bootLoopBoots: 3,
    esp32Sockets: false,
    socketQueueDepth: Infinity,
    socketRecvChunkBytes: Infinity,
    socketRecvWindowBytes: Infinity,
    socketRecvTickMs: 0,
    socketWorkerDelayMs: [0, 0],
    connectHangMs: [0, 0], // no socket worker: connect-hang is an esp32-profile fault
    wifi: null,
    tlsPublicRootsOnly: false,
    bootDelayMs: 0,
  },
};

export function resolveProfile(name: string | undefined): RuntimeProfile {
  const key = (name ?? DEFAULT_PROFILE) as ProfileName;
  const profile = PROFILES[key];
  if (!profile) throw new RangeError(`profile must be one of ${PROFILE_NAMES.join(", ")}, got ${String(name)}`);
  return profile;
}
