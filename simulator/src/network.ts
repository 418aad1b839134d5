/**
 * The simulated network of one device. It replaces the VM's socket hooks (sockIsAvailable/sockOpen/
 * sockWrite/sockClose), so the firmware's single TCP socket reaches the fleet's broker URL, whatever
 * host/port its settings name — unless it names the address of one of the fleet's `brokerUrls` (several
 * brokers, failover), which it then reaches (TLS is done here, per the broker URL). Per boot it runs one socket model:
 *
 * - profile `esp32` (the default): Wi-Fi comes up seconds after boot (wifi.ts), sockets behave like
 *   devicescript-esp32 main/sock.c (esp32-socket.ts: worker queue, close discards queued writes, 1 KB recv
 *   pieces, connect-hang), TLS trusts public roots only (tls-trust.ts);
 * - profile `vm`: the WASM host's glue, as before (vm-socket.ts).
 *
 * Either way broker-link.ts splits both directions into MQTT packets to count them and to inject faults at
 * packet boundaries: before CONNACK, in the middle of a PUBLISH, before PUBACK/PUBCOMP.
 */
import { BrokerLink, type BrokerLinkHandlers, brokerAddress } from "./broker-link.ts";
import { Esp32Socket } from "./esp32-socket.ts";
import type { DeviceFaults } from "./faults.ts";
import type { WireCounters } from "./mqtt-wire.ts";
import { unit } from "./prng.ts";
import { DEFAULT_PROFILE, PROFILES, type RuntimeProfile } from "./profile.ts";
import type { SocketContext, SocketModel } from "./socket-model.ts";
import { brokerTlsOptions, explainTlsFailure } from "./tls-trust.ts";
import { type VmInstance, readCString } from "./vm.ts";
import { VmGlueSocket } from "./vm-socket.ts";
import { WifiLink } from "./wifi.ts";

export { MqttFramer, emptyWireCounters, sumWireCounters } from "./mqtt-wire.ts";
export { brokerAddress } from "./broker-link.ts";

/** The broker a socket to host:port reaches: the one of `brokerUrls` at that address, else `brokerUrl`. */
function routeFor(o: DeviceNetworkOptions, host: string, port: number): URL {
  for (const url of o.brokerUrls ?? []) {
    const a = brokerAddress(url);
    if (a.host === host && a.port === port) return url;
  }
  return o.brokerUrl;
}
export type { WireCounters } from "./mqtt-wire.ts";

export interface DeviceNetworkOptions {
  /** Where a socket goes unless it asks for the address of one of `brokerUrls`. */
  brokerUrl: URL;
  /** Brokers reached at the address they name: a socket to one's host:port goes to it (several brokers). */
  brokerUrls?: URL[];
  faults: DeviceFaults;
  counters: WireCounters;
  /** Human-readable network events (connects, cuts, Wi-Fi, discarded writes), for the device log. */
  log: (line: string) => void;
  /** Every PUBLISH that leaves the device (before any fault decision). */
  onPublish?: (publish: { topic: string; qos: number; dup: boolean; bytes: number; payload: Buffer }) => void;
  /** Profile `vm` only: accept self-signed broker certificates for mqtts:// (default true: it is a simulator). */
  tlsInsecure?: boolean;
  /** How strict the network is (profile.ts). Default: the default profile (esp32). */
  profile?: RuntimeProfile;
  /** Seed of the network's timings (Wi-Fi phases, socket worker delays). Default 1. */
  seed?: number;
  /** Device index for the seeded timings. Default: the fault plan's device index. */
  deviceIndex?: number;
  /** Wi-Fi got its address in this boot (esp32 profile), afterMs real ms after attach. */
  onWifiUp?: (afterMs: number) => void;
}

/**
 * One device's network. `attach(vm, boot)` points a fresh VM instance's socket hooks here; `detach()` drops
 * the connection silently (deep sleep or power cut: the VM is gone, nobody is told).
 */
export class DeviceNetwork {
  readonly profile: RuntimeProfile;
  private vm: VmInstance | undefined;
  private model: SocketModel | undefined;
  private wifi: WifiLink | undefined;
  private boot = 0;
  /** TLS explanations already printed for this device (each kind once). */
  private readonly tlsNotes = new Set<string>();

  constructor(private readonly options: DeviceNetworkOptions) {
    this.profile = options.profile ?? PROFILES[DEFAULT_PROFILE];
  }

  /** The boot `attach` was last given (seeds this boot's timings). */
  get currentBoot(): number {
    return this.boot;
  }

  /** Planned moment (ms after attach) this boot's Wi-Fi gets its address; undefined without Wi-Fi or with wifi-fail. */
  get plannedWifiUpMs(): number | undefined {
    return this.wifi && !this.wifi.fails ? this.wifi.upAtMs : undefined;
  }

  /** Profile esp32: whether this boot's Wi-Fi has its address (always true without a Wi-Fi model). */
  get networkAvailable(): boolean {
    return this.vm !== undefined && (this.wifi?.isUp ?? true);
  }

  /** `boot`: the device's boot number (1 = first); seeds this boot's timings. Default: one more than before. */
  attach(vm: VmInstance, boot?: number): void {
    this.detach();
    this.vm = vm;
    this.boot = boot ?? this.boot + 1;
    const options = this.options;
    const seed = options.seed ?? 1;
    const deviceIndex = options.deviceIndex ?? options.faults.deviceIndex;
    const seeded = (...labels: (string | number)[]) => unit(seed, "net", deviceIndex, this.boot, ...labels);
    const phases = this.profile.wifi;
    if (phases) {
      this.wifi = new WifiLink({
        phases,
        faults: options.faults,
        unit: (label) => seeded(label),
        log: (line) => this.log(vm, line),
        onUp: (afterMs) => {
          if (this.vm === vm) options.onWifiUp?.(afterMs);
        },
      });
    }
    const ctx: SocketContext = {
      profile: this.profile,
      counters: options.counters,
      faults: options.faults,
      log: (line) => this.log(vm, line),
      link: (host, port, handlers) => this.link(vm, host, port, handlers),
      deliver: (kind, payload) => this.emit(vm, kind, payload),
      unit: seeded,
      tlsFailed: (err, host) => this.noteTls(vm, err, host),
    };
    const model = this.profile.esp32Sockets ? new Esp32Socket(ctx) : new VmGlueSocket(ctx);
    this.model = model;
    // jd_tcpsock_is_available (runtime/devicescript/network/wifi.c:318): false until Wi-Fi has an address.
    vm.sockIsAvailable = () => this.vm === vm && (this.wifi?.isUp ?? true);
    vm.sockOpen = (hostPtr, port) => (this.vm === vm ? model.open(readCString(vm, hostPtr), port) : -1);
    vm.sockWrite = (ptr, length) =>
      this.vm === vm ? model.write(Buffer.from(vm.HEAPU8.slice(ptr, ptr + length))) : -10;
    vm.sockClose = () => (this.vm === vm ? model.close() : -10);
  }

  detach(): void {
    const model = this.model;
    this.model = undefined;
    this.wifi?.stop();
    this.wifi = undefined;
    model?.detach(); // may still log (discarded writes): before the VM is forgotten
    this.vm = undefined;
  }

  private link(vm: VmInstance, host: string, port: number, handlers: BrokerLinkHandlers): BrokerLink {
    const o = this.options;
    return new BrokerLink(
      {
        brokerUrl: routeFor(o, host, Math.abs(port)),
        requestedHost: host,
        requestedPort: port,
        tls: brokerTlsOptions(this.profile, host, o.tlsInsecure),
        faults: o.faults,
        counters: o.counters,
        log: (line) => this.log(vm, line),
        onPublish: o.onPublish,
      },
      handlers,
    );
  }

  private noteTls(vm: VmInstance, err: Error, host: string): void {
    const explained = explainTlsFailure(err, host);
    if (!explained || this.tlsNotes.has(explained.key)) return;
    this.tlsNotes.add(explained.key);
    this.log(vm, explained.note);
  }

  private log(vm: VmInstance, line: string): void {
    if (this.vm === vm) this.options.log(line);
  }

  /** Delivers a socket event into the VM (the glue's own sockOpen does the same through its `cb`). */
  private emit(vm: VmInstance, kind: number, payload?: string | Buffer): void {
    if (this.vm !== vm) return;
    const bytes = typeof payload === "string" ? Buffer.from(`${payload}\u0000`, "utf8") : payload;
    let ptr = 0;
    if (bytes && bytes.length > 0) {
      ptr = vm._malloc(bytes.length);
      vm.HEAPU8.set(bytes, ptr);
    }
    const length = typeof payload === "string" ? bytes!.length - 1 : (bytes?.length ?? 0);
    try {
      vm._jd_em_tcpsock_on_event(kind, ptr, length);
    } finally {
      if (ptr) vm._free(ptr);
    }
  }
}
