import { describe, expect, it } from "vitest";
import { SqlitePersistence } from "./sqlite.ts";

describe("SqlitePersistence", () => {
  it("a PUBREL replaces its own flow's PUBLISH, not an older PUBREL (no resend of finished flows after a restart)", async () => {
    const store = new SqlitePersistence({ file: ":memory:" });
    const client = { id: "subscriber" };
    const publish = (counter: number) => ({
      cmd: "publish", topic: "sensors/d/telemetry", payload: Buffer.from(`#${counter}`), qos: 2, retain: false,
      dup: false, brokerId: "b1", brokerCounter: counter,
    });
    for (const counter of [1, 2, 3]) {
      await store.outgoingEnqueue({ clientId: client.id }, publish(counter) as never);
      await store.outgoingUpdate(client as never, { ...publish(counter), messageId: counter } as never);
      await store.outgoingUpdate(client as never, { cmd: "pubrel", messageId: counter } as never);
    }
    const queued: Array<{ cmd: string; messageId?: number }> = [];
    for await (const packet of store.outgoingStream(client as never)) queued.push(packet as { cmd: string; messageId?: number });
    expect(queued.map((p) => `${p.cmd}:${p.messageId}`).sort()).toEqual(["pubrel:1", "pubrel:2", "pubrel:3"]);
    await store.destroy();
  });
});

