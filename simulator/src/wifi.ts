/**
 * Wi-Fi bring-up of one boot (profile.wifi; esp32 profile). Every wake is a full reset, so every boot scans,
 * associates and runs DHCP again (devicescript runtime/devicescript/network/wifi.c: wifi_init sets the first
 * scan 2 s after boot, `next_scan = now_ms + (2 << 10)`; the scan result starts the connect; the address comes
 * with jd_wifi_got_ip_cb). Until the address is up, jd_tcpsock_is_available() is false (wifi.c:318), so the
 * firmware's connect() throws RangeError "network not available" (impl_socket.c:69).
 *
 * Fault `wifi-fail` (decided once per boot): association fails and the network does not come up in this
 * boot. (The real runtime reconnects on the lost-IP callback; a board whose access point refuses it stays
 * offline the same way.) Phases are seeded per (seed, device, boot), in real ms after the VM's boot.
 */
import type { DeviceFaults } from "./faults.ts";
import type { RuntimeProfile } from "./profile.ts";

export type WifiPhases = NonNullable<RuntimeProfile["wifi"]>;

export interface WifiOptions {
  phases: WifiPhases;
  faults: DeviceFaults;
  /** Seeded value in [0, 1) for this device and boot. */
  unit: (label: string) => number;
  log: (line: string) => void;
  /** The address is up, afterMs real ms after the boot. */
  onUp?: (afterMs: number) => void;
}

const within = ([lo, hi]: [number, number], u: number) => Math.round(lo + (hi - lo) * u);

export class WifiLink {
  private up = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  /** Planned moments (ms after boot): association done, address up. */
  readonly associatedAtMs: number;
  readonly upAtMs: number;
  /** Fault wifi-fail was decided for this boot: the address never comes. */
  readonly fails: boolean;

  constructor(options: WifiOptions) {
    const { phases, faults, unit, log } = options;
    const scanDone = phases.scanStartMs + within(phases.scanMs, unit("wifi-scan"));
    this.associatedAtMs = scanDone + within(phases.associateMs, unit("wifi-associate"));
    this.upAtMs = this.associatedAtMs + within(phases.dhcpMs, unit("wifi-dhcp"));
    const fail = faults.decide("wifi-fail");
    this.fails = fail !== undefined;
    if (fail) {
      // Counted when association fails, not at boot: a device that sleeps or loses power first never sees it.
      this.timer = setTimeout(() => {
        faults.inject({ ...fail, detail: this.associatedAtMs });
        log("net: FAULT wifi-fail: association failed; no network this boot");
      }, this.associatedAtMs);
      return;
    }
    this.timer = setTimeout(() => {
      this.up = true;
      const afterMs = Date.now() - this.startedAt;
      log(`net: wifi up after ${afterMs} ms`);
      options.onUp?.(afterMs);
    }, this.upAtMs);
  }

  /** jd_tcpsock_is_available(): an IP address is up. */
  get isUp(): boolean {
    return this.up;
  }

  /** The boot is over (sleep, power cut, stop). */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.up = false;
  }
}
