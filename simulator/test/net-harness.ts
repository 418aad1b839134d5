/**
 * Test harness for DeviceNetwork without the WASM VM: a minimal VmInstance-like object that exposes the four
 * socket hooks the network installs, records the socket events the network delivers, and behaves like the
 * runtime where it matters (impl_socket.c:39: an error event makes the runtime call jd_tcpsock_close, i.e.
 * our sockClose hook). Plus a real local TCP server (node:net on 127.0.0.1, port 0) that records what arrives.
 */
import { type AddressInfo, type Server, type Socket, createServer } from "node:net";
import { DeviceFaults, type FaultPlan, type FaultRecord } from "../src/faults.ts";
import { DeviceNetwork, type WireCounters, emptyWireCounters } from "../src/network.ts";
import { PROFILES, type RuntimeProfile } from "../src/profile.ts";
import { SOCK_EVENT, type VmInstance } from "../src/vm.ts";

export interface SockEvent {
  kind: "open" | "close" | "error" | "data";
  data: Buffer;
  at: number;
}

const KIND_NAMES: Record<number, SockEvent["kind"]> = {
  [SOCK_EVENT.open]: "open",
  [SOCK_EVENT.close]: "close",
  [SOCK_EVENT.error]: "error",
  [SOCK_EVENT.message]: "data",
};

export class FakeVm {
  readonly HEAPU8 = new Uint8Array(1 << 20);
  readonly events: SockEvent[] = [];
  /** Called on every delivered event (after recording it), e.g. to snapshot the server's state. */
  onEvent?: (e: SockEvent) => void;
  private top = 16;
  // Installed by DeviceNetwork.attach.
  sockOpen: (hostPtr: number, port: number) => number = () => -100;
  sockWrite: (ptr: number, length: number) => number = () => -100;
  sockClose: () => number = () => -100;
  sockIsAvailable: () => boolean = () => false;

  get instance(): VmInstance {
    return this as unknown as VmInstance;
  }

  _malloc(size: number): number {
    if (this.top + size > this.HEAPU8.length) this.top = 16; // a ring is enough: every buffer is short-lived
    const ptr = this.top;
    this.top += size;
    return ptr;
  }

  _free(): void {}

  _jd_em_tcpsock_on_event(kind: number, ptr: number, length: number): void {
    const e: SockEvent = { kind: KIND_NAMES[kind]!, data: Buffer.from(this.HEAPU8.slice(ptr, ptr + length)), at: Date.now() };
    this.events.push(e);
    if (kind === SOCK_EVENT.error) this.sockClose(); // impl_socket.c:39
    this.onEvent?.(e);
  }

  /** The firmware's connect(): DeviceScript passes the host as a C string and a negative port for TLS. */
  open(host: string, port: number): number {
    const bytes = Buffer.from(`${host}\u0000`);
    const ptr = this._malloc(bytes.length);
    this.HEAPU8.set(bytes, ptr);
    return this.sockOpen(ptr, port);
  }

  write(bytes: Buffer | number[]): number {
    const buf = Buffer.from(bytes);
    const ptr = this._malloc(buf.length);
    this.HEAPU8.set(buf, ptr);
    return this.sockWrite(ptr, buf.length);
  }

  close(): number {
    return this.sockClose();
  }

  named(kind: SockEvent["kind"]): SockEvent[] {
    return this.events.filter((e) => e.kind === kind);
  }

  received(): Buffer {
    return Buffer.concat(this.named("data").map((e) => e.data));
  }
}

export interface NetUnderTest {
  vm: FakeVm;
  net: DeviceNetwork;
  counters: WireCounters;
  faults: DeviceFaults;
  faultLog: FaultRecord[];
  logs: string[];
  wifiUps: number[];
}

/** A DeviceNetwork attached to a fresh FakeVm. */
export function attachNetwork(options: {
  brokerUrl: string;
  profile: RuntimeProfile;
  faults?: FaultPlan;
  seed?: number;
  deviceIndex?: number;
  boot?: number;
}): NetUnderTest {
  const faultLog: FaultRecord[] = [];
  const logs: string[] = [];
  const wifiUps: number[] = [];
  const counters = emptyWireCounters();
  const seed = options.seed ?? 1;
  const faults = new DeviceFaults(options.faults ?? {}, seed, options.deviceIndex ?? 0, (r) => faultLog.push(r));
  const net = new DeviceNetwork({
    brokerUrl: new URL(options.brokerUrl),
    faults,
    counters,
    log: (line) => logs.push(line),
    profile: options.profile,
    seed,
    deviceIndex: options.deviceIndex ?? 0,
    onWifiUp: (afterMs) => wifiUps.push(afterMs),
  });
  const vm = new FakeVm();
  net.attach(vm.instance, options.boot ?? 1);
  return { vm, net, counters, faults, faultLog, logs, wifiUps };
}

/** esp32 sockets without the seconds of Wi-Fi bring-up (for socket tests; Wi-Fi has its own tests). */
export const ESP32_NO_WIFI: RuntimeProfile = { ...PROFILES.esp32, wifi: null };

export interface ServerConn {
  socket: Socket;
  bytes: Buffer;
  /** The peer's FIN arrived. */
  ended: boolean;
  /** The connection is gone (FIN or reset). */
  closed: boolean;
}

/** A real TCP server on 127.0.0.1 (port 0) that records every connection and what it received. */
export class RecordingServer {
  readonly conns: ServerConn[] = [];
  private server: Server | undefined;
  port = 0;

  constructor(private readonly onConn?: (conn: ServerConn) => void, private readonly onData?: (conn: ServerConn) => void) {}

  async start(make: (listener: (s: Socket) => void) => Server = (l) => createServer(l)): Promise<this> {
    const server = make((socket) => {
      const conn: ServerConn = { socket, bytes: Buffer.alloc(0), ended: false, closed: false };
      this.conns.push(conn);
      socket.on("data", (chunk: Buffer) => {
        conn.bytes = Buffer.concat([conn.bytes, chunk]);
        this.onData?.(conn);
      });
      socket.on("end", () => {
        conn.ended = true;
        socket.end();
      });
      socket.on("error", () => {});
      socket.on("close", () => {
        conn.closed = true;
      });
      this.onConn?.(conn);
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
