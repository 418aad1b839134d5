/**
 * Profile `vm`: sockets as the DeviceScript WASM host's own glue does them (the `sockOpen`/`sockWrite`/
 * `sockClose` functions in @devicescript/cli's devicescript-vm.js, v2.16.4): opening ends the previous
 * socket at once, writes go straight to the connection, close ends it, every received chunk is delivered as
 * it comes (here: per MQTT packet, so faults hit packet boundaries), events come only from the current socket.
 */
import type { BrokerLink } from "./broker-link.ts";
import type { SocketContext, SocketModel } from "./socket-model.ts";
import { SOCK_EVENT } from "./vm.ts";

export class VmGlueSocket implements SocketModel {
  private link: BrokerLink | undefined;

  constructor(private readonly ctx: SocketContext) {}

  open(requestedHost: string, requestedPort: number): number {
    this.link?.destroy();
    this.link = undefined;
    const ctx = this.ctx;
    const link: BrokerLink = ctx.link(requestedHost, requestedPort, {
      onOpen: () => {
        if (this.link === link) ctx.deliver(SOCK_EVENT.open);
      },
      onFrame: (frame) => {
        if (this.link !== link) return false;
        ctx.deliver(SOCK_EVENT.message, frame);
        return this.link === link; // the firmware closed the socket while handling it
      },
      onCut: (fault) => {
        if (this.link !== link) return;
        this.link = undefined;
        // Told on the next turn: a cut during sockWrite happens inside the VM's own call, and the VM must
        // not be re-entered.
        setImmediate(() => {
          if (!this.link) ctx.deliver(SOCK_EVENT.error, `ECONNRESET (simulated ${fault.kind})`);
        });
      },
      onError: (err) => {
        if (this.link !== link) return;
        ctx.counters.socketErrors++;
        this.link = undefined;
        ctx.deliver(SOCK_EVENT.error, `${link.asked}: ${err.message}`);
      },
      onClose: () => {
        if (this.link !== link) return;
        this.link = undefined;
        ctx.deliver(SOCK_EVENT.close);
      },
    });
    this.link = link;
    return 0;
  }

  write(bytes: Buffer): number {
    if (!this.link) return -10; // same code as the stock glue: no open socket
    this.link.write(bytes);
    return 0; // a cut "succeeded" locally: the device learns of it from the socket error
  }

  close(): number {
    const link = this.link;
    if (!link) return -10;
    this.link = undefined;
    link.end();
    return 0;
  }

  detach(): void {
    this.link?.destroy();
    this.link = undefined;
  }
}
