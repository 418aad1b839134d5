/**
 * Profile `esp32`: the socket of the DeviceScript ESP32 runtime, modelled on devicescript-esp32 main/sock.c
 * (v2.16.1). Line numbers below are from that file.
 *
 * - One worker task owns DNS, connect, TLS and writes. jd_tcpsock_new (sockOpen) only queues an OPEN command
 *   (:298, queue of 50 commands, :350) and returns 0, or -1 when the queue is full; the open event comes when
 *   the worker has connected (:226). jd_tcpsock_write (sockWrite) returns -10 while sock_fd is 0 (:312),
 *   else queues a copy of the bytes, -1 when the queue is full (:318; @devicescript/net Socket.send then
 *   throws). The worker takes commands strictly in order; each is modelled to wait a seeded
 *   profile.socketWorkerDelayMs first (task switch, Wi-Fi TX).
 * - DNS/connect block the worker with no timeout (:128, :142): fault `connect-hang` keeps it blocked for a
 *   seeded profile.connectHangMs; commands behind it wait, and its "can't connect" (:149) lands on whatever
 *   socket the firmware has by then, because events carry no socket identity (:72).
 * - jd_tcpsock_close (sockClose, also called by the runtime itself after an error event, impl_socket.c:39)
 *   closes sock_fd at once (:280); writes still queued are then dropped by process_write (:272). We drop them
 *   at the close, count them (WireCounters.discardedBytes/-Packets) and say so in the device log.
 * - Received data reaches the program in recv() pieces of at most sizeof(sockbuf) = 1024 bytes (:31, :387).
 *   Faults are still decided per MQTT packet (broker-link.ts); what is forwarded is re-cut into ≤1 KB pieces,
 *   consecutive small packets coalesced as recv() would. A close by the broker comes after the data (:389).
 *   Per runtime main-loop iteration at most profile.socketRecvWindowBytes reach the program (lwIP's receive
 *   window, main/main.c:89); the Node socket is paused meanwhile, so a broker pushing a queue of commands sees
 *   TCP back-pressure as it would from a board, and the program's 64 KB heap sees the data at a board's pace.
 */
import type { BrokerLink, LinkPhase } from "./broker-link.ts";
import type { FaultRecord } from "./faults.ts";
import { describeDiscarded } from "./mqtt-wire.ts";
import type { SocketContext, SocketModel } from "./socket-model.ts";
import { SOCK_EVENT } from "./vm.ts";

type Command =
  | { kind: "open"; n: number; host: string; port: number }
  | { kind: "write"; n: number; bytes: Buffer };

const within = ([lo, hi]: [number, number], u: number) => Math.round(lo + (hi - lo) * u);
const asked = (host: string, port: number) => `${port < 0 ? "tls" : "tcp"}://${host}:${Math.abs(port)}`;

export class Esp32Socket implements SocketModel {
  private readonly queue: Command[] = [];
  /** Commands queued so far in this boot: the n of the seeded worker delays. */
  private queued = 0;
  /** The worker holds a command (its delay, a connect, a hang). */
  private busy = false;
  private timer: NodeJS.Timeout | undefined;
  /** sock_fd != 0: the connection writes go to and reads come from (set at TCP connect, :162). */
  private conn: BrokerLink | undefined;
  /** The link of the OPEN the worker is processing (connect, then TLS handshake). */
  private opening: BrokerLink | undefined;
  /** Forwarded inbound bytes not yet handed to the program. */
  private rx: Buffer[] = [];
  /** The next main-loop iteration that hands over more of rx (receive window). */
  private rxTimer: NodeJS.Timeout | undefined;
  private detached = false;

  constructor(private readonly ctx: SocketContext) {}

  open(requestedHost: string, requestedPort: number): number {
    if (!this.hasRoom("connect()")) return -1;
    this.enqueue({ kind: "open", host: requestedHost, port: requestedPort });
    return 0;
  }

  write(bytes: Buffer): number {
    if (!this.conn) return -10;
    if (!this.hasRoom("send()")) return -1;
    this.enqueue({ kind: "write", bytes });
    return 0;
  }

  close(): number {
    const conn = this.conn;
    this.conn = undefined;
    this.dropRx();
    if (conn) {
      conn.end(); // close(fd): what the worker already wrote still leaves, then FIN
      // Closed during its TLS handshake: raise_error finds sock_fd 0 and tells nobody (:95); the worker is free.
      if (this.opening === conn) this.openDone();
    }
    this.discardQueuedWrites("close()");
    return conn ? 0 : -10;
  }

  detach(): void {
    this.detached = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    const pending = this.queue.flatMap((c) => (c.kind === "write" ? [c.bytes] : []));
    this.queue.length = 0;
    this.countDiscarded(pending, "deep sleep / power off");
    this.conn?.destroy();
    this.opening?.destroy();
    this.conn = undefined;
    this.opening = undefined;
    this.dropRx();
  }

  private hasRoom(what: string): boolean {
    if (this.detached) return false;
    const depth = this.ctx.profile.socketQueueDepth;
    if (this.queue.length < depth) return true;
    this.ctx.log(`net: socket queue full (${depth} commands): ${what} refused with -1`);
    return false;
  }

  private enqueue(command: { kind: "open"; host: string; port: number } | { kind: "write"; bytes: Buffer }): void {
    this.queue.push({ ...command, n: this.queued++ } as Command);
    this.kick();
  }

  /** The worker takes the next command, after its seeded delay (never inside the VM's own call). */
  private kick(): void {
    if (this.busy || this.detached) return;
    const command = this.queue[0];
    if (!command) return;
    this.busy = true;
    const delay = within(this.ctx.profile.socketWorkerDelayMs, this.ctx.unit("sock-worker", command.n));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.queue[0] !== command) return this.idle(); // discarded meanwhile (close, cut)
      this.queue.shift();
      if (command.kind === "write") {
        this.processWrite(command.bytes);
        this.idle();
      } else {
        this.processOpen(command.host, command.port);
      }
    }, delay);
  }

  private idle(): void {
    this.busy = false;
    this.kick();
  }

  private processWrite(bytes: Buffer): void {
    // process_write with sock_fd 0 (a write queued behind an OPEN that then failed): dropped (:272).
    if (!this.conn) return this.countDiscarded([bytes], "the socket worker (no connection)");
    this.conn.write(bytes);
  }

  private processOpen(host: string, port: number): void {
    const ctx = this.ctx;
    // process_open: the previous connection ends here, when the worker gets to the OPEN, not at sockOpen (:221).
    if (this.conn) {
      this.conn.end();
      this.conn = undefined;
      this.dropRx(); // also a pending receive-window iteration of the old connection
    }
    const hang = ctx.faults.decide("connect-hang");
    if (hang) return this.hang(hang, asked(host, port));
    const link: BrokerLink = ctx.link(host, port, {
      onTcpConnect: () => {
        if (this.opening === link) this.conn = link;
      },
      onOpen: () => {
        if (this.opening !== link) return;
        this.openDone();
        ctx.deliver(SOCK_EVENT.open); // push_event(JD_CONN_EV_OPEN) (:226)
      },
      onFrame: (frame) => {
        if (this.conn !== link) return false;
        this.rx.push(frame);
        return true;
      },
      onChunkEnd: () => this.pumpRx(link),
      onCut: (fault) => this.cut(link, fault),
      onError: (err, phase) => this.failed(link, err, phase, host),
      onClose: () => {
        if (this.opening === link) {
          return this.failed(link, new Error("closed by the broker"), this.conn === link ? "tls" : "connect", host);
        }
        if (this.conn !== link) return;
        this.flushRx(link, link.takeInboundPending());
        if (this.conn !== link) return; // the firmware closed it while handling the data: no event (:95)
        this.lost("the broker's close");
        ctx.deliver(SOCK_EVENT.close); // raise_error(NULL) (:389, :99)
      },
    });
    this.opening = link;
  }

  private openDone(): void {
    this.opening = undefined;
    this.idle();
  }

  /** Fault connect-hang: the worker is stuck in getaddrinfo/connect; nobody is told until it gives up. */
  private hang(fault: FaultRecord, what: string): void {
    const ctx = this.ctx;
    const ms = within(ctx.profile.connectHangMs, ctx.faults.detailUnit(fault));
    ctx.faults.inject({ ...fault, detail: ms });
    ctx.log(`net: FAULT connect-hang: DNS/connect of ${what} blocks the socket worker for ${ms} ms (no timeout)`);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      ctx.counters.socketErrors++;
      ctx.log(`net: connect-hang over after ${ms} ms: "can't connect" goes to whatever socket the firmware has now`);
      ctx.deliver(SOCK_EVENT.error, "can't connect"); // push_error (:149)
      this.idle();
    }, ms);
  }

  /** A real error: the connect or TLS handshake of the OPEN being processed, or the established connection. */
  private failed(link: BrokerLink, err: Error, phase: LinkPhase, host: string): void {
    const ctx = this.ctx;
    if (this.opening === link) {
      if (this.conn === link) this.conn = undefined;
      ctx.counters.socketErrors++;
      const code = (err as NodeJS.ErrnoException).code;
      const told =
        phase === "tls"
          ? "mbedtls_ssl_handshake" // mbedtls_print_error_msg → raise_error(fn) (:208, :98)
          : code === "ENOTFOUND" || code === "EAI_AGAIN"
            ? "can't resolve host" // (:131)
            : "can't connect"; // (:149)
      ctx.log(`net: ${link.asked}: ${err.message} (the firmware is told "${told}")`);
      if (phase === "tls") ctx.tlsFailed(err, host);
      this.openDone();
      ctx.deliver(SOCK_EVENT.error, told);
      return;
    }
    if (this.conn !== link) return;
    ctx.counters.socketErrors++;
    this.flushRx(link);
    if (this.conn !== link) return;
    ctx.log(`net: ${link.asked}: ${err.message} (the firmware is told "recv error")`);
    this.lost("the connection error");
    ctx.deliver(SOCK_EVENT.error, "recv error"); // raise_error("recv error") (:400)
  }

  /** An injected cut: a reset seen by recv() (inbound packets) or by the worker's write (mid-PUBLISH). */
  private cut(link: BrokerLink, fault: FaultRecord): void {
    if (this.conn !== link) return;
    this.flushRx(link); // the packets forwarded before the dropped one
    if (this.conn !== link) return;
    this.lost(`the ${fault.kind} cut`);
    const op = fault.kind === "cut-mid-publish" ? "write" : "recv";
    this.ctx.deliver(SOCK_EVENT.error, `${op} error (simulated ${fault.kind})`);
  }

  /** sock_fd is gone (jd_tcpsock_close in raise_error): what is still queued for it will never leave. */
  private lost(why: string): void {
    this.conn = undefined;
    this.dropRx();
    this.discardQueuedWrites(why);
  }

  /** Writes ahead of the first queued OPEN would meet sock_fd 0; later ones belong to the next connection. */
  private discardQueuedWrites(why: string): void {
    const firstOpen = this.queue.findIndex((c) => c.kind === "open");
    const dropped = this.queue.splice(0, firstOpen < 0 ? this.queue.length : firstOpen);
    this.countDiscarded(
      dropped.flatMap((c) => (c.kind === "write" ? [c.bytes] : [])),
      why,
    );
  }

  private countDiscarded(writes: Buffer[], why: string): void {
    if (writes.length === 0) return;
    const d = describeDiscarded(writes);
    this.ctx.counters.discardedBytes += d.bytes;
    this.ctx.counters.discardedPackets += d.packets;
    const what = d.disconnect
      ? "DISCONNECT among them: the broker will publish the Last Will"
      : `${d.packets} MQTT packet${d.packets === 1 ? "" : "s"}`;
    this.ctx.log(`net: ${why} discarded ${d.bytes} queued bytes (${what})`);
  }

  private dropRx(): void {
    clearTimeout(this.rxTimer);
    this.rxTimer = undefined;
    this.rx = [];
  }

  /** Everything forwarded so far, at once: before an error or close event, which must follow the data. */
  private flushRx(link: BrokerLink, tail?: Buffer): void {
    clearTimeout(this.rxTimer);
    this.rxTimer = undefined;
    if (tail && tail.length > 0) this.rx.push(tail);
    this.handOver(link, Infinity);
  }

  /** One main-loop iteration's worth now (the receive window); the rest on the next iterations. */
  private pumpRx(link: BrokerLink): void {
    if (this.rxTimer) return; // an iteration is already scheduled and will continue
    const left = this.handOver(link, this.ctx.profile.socketRecvWindowBytes);
    if (this.conn !== link) return;
    if (left > 0) {
      link.pause();
      this.rxTimer = setTimeout(() => {
        this.rxTimer = undefined;
        this.pumpRx(link);
      }, this.ctx.profile.socketRecvTickMs);
    } else link.resume();
  }

  /**
   * Hands up to `max` forwarded bytes to the program in recv()-sized pieces (:387), while the socket is still
   * its; returns how many bytes are left.
   */
  private handOver(link: BrokerLink, max: number): number {
    if (this.conn !== link || this.rx.length === 0) return 0;
    const all = this.rx.length === 1 ? this.rx[0]! : Buffer.concat(this.rx);
    const take = Math.min(all.length, max);
    this.rx = take < all.length ? [all.subarray(take)] : [];
    const piece = this.ctx.profile.socketRecvChunkBytes;
    for (let at = 0; at < take; at += piece) {
      if (this.conn !== link) return 0; // closed by the program meanwhile: is_connected is false, no more reads
      this.ctx.deliver(SOCK_EVENT.message, all.subarray(at, Math.min(take, at + piece)));
    }
    return all.length - take;
  }
}
