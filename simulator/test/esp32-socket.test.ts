/**
 * The esp32 socket model (src/esp32-socket.ts, devicescript-esp32 main/sock.c) driven through DeviceNetwork
 * with a fake VM (net-harness.ts) against a real local TCP server; the vm profile as the contrast.
 */
import mqttPacket from "mqtt-packet";
import { afterEach, describe, expect, it } from "vitest";
import { DeviceFaults } from "../src/faults.ts";
import { PROFILES } from "../src/profile.ts";
import { ESP32_NO_WIFI, type NetUnderTest, RecordingServer, attachNetwork } from "./net-harness.ts";
import { waitFor } from "./wait.ts";

const DISCONNECT = Buffer.from([0xe0, 0x00]);
const CONNACK = mqttPacket.generate({ cmd: "connack", returnCode: 0, sessionPresent: false });
const publish = (topic: string, size: number, messageId?: number) =>
  mqttPacket.generate({
    cmd: "publish",
    topic,
    payload: Buffer.alloc(size, 0x61),
    qos: messageId ? 1 : 0,
    messageId,
    dup: false,
    retain: false,
  });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(...args: ConstructorParameters<typeof RecordingServer>): Promise<RecordingServer> {
  const s = await new RecordingServer(...args).start();
  cleanups.push(() => s.close());
  return s;
}

function attach(...args: Parameters<typeof attachNetwork>): NetUnderTest {
  const t = attachNetwork(...args);
  cleanups.push(() => t.net.detach());
  return t;
}

async function opened(t: NetUnderTest, host = "broker.example", port = 1883): Promise<void> {
  expect(t.vm.open(host, port)).toBe(0);
  await waitFor("the open event", () => t.vm.events[0]);
  expect(t.vm.events[0]!.kind).toBe("open");
}

describe("esp32 sockets (sock.c model)", () => {
  it("sockOpen only queues: the open event comes when the worker has connected; writes before it get -10", async () => {
    const s = await server();
    const t = attach({ brokerUrl: s.url, profile: ESP32_NO_WIFI });
    expect(t.vm.sockIsAvailable()).toBe(true);
    expect(t.vm.open("broker.example", 1883)).toBe(0);
    expect(t.vm.events).toEqual([]); // nothing synchronous
    expect(t.vm.write([0xc0, 0x00])).toBe(-10); // sock_fd == 0
    await waitFor("the open event", () => t.vm.named("open").length === 1);
    expect(s.conns).toHaveLength(1);
    expect(t.counters.connections).toBe(1);
    expect(t.logs).toContain(`net: tcp://broker.example:1883 -> 127.0.0.1:${s.port} connected`);
  });

  it("close() right after DISCONNECT discards it (the server never sees it); waiting for the server's close delivers it", async () => {
    // A broker closes the connection once it has DISCONNECT (MQTT 3.1.1 §3.14.4); this one first sends a
    // last packet, so the close must come after that data.
    const last = publish("late", 10);
    const s = await server(undefined, (conn) => {
      if (conn.bytes.includes(DISCONNECT)) conn.socket.end(last);
    });

    const a = attach({ brokerUrl: s.url, profile: ESP32_NO_WIFI });
    await opened(a);
    expect(a.vm.write(DISCONNECT)).toBe(0);
    expect(a.vm.close()).toBe(0); // at once, like `await disconnect(); standby()` without waiting
    await waitFor("the server to see the FIN", () => s.conns[0]?.ended);
    expect(s.conns[0]!.bytes.length).toBe(0);
    expect(a.counters.discardedBytes).toBe(2);
    expect(a.counters.discardedPackets).toBe(1);
    expect(a.counters.bytesOut).toBe(0);
    expect(a.logs).toContain(
      "net: close() discarded 2 queued bytes (DISCONNECT among them: the broker will publish the Last Will)",
    );

    const b = attach({ brokerUrl: s.url, profile: ESP32_NO_WIFI, deviceIndex: 1 });
    await opened(b);
    expect(b.vm.write(DISCONNECT)).toBe(0);
    await waitFor("the close event from the server", () => b.vm.named("close").length === 1);
    expect(s.conns[1]!.bytes).toEqual(DISCONNECT);
    expect(b.vm.received()).toEqual(last);
    expect(b.vm.events.map((e) => e.kind)).toEqual(["open", "data", "close"]); // data first, then close
    expect(b.counters.discardedBytes).toBe(0);
    expect(b.counters.bytesOut).toBe(2);
    expect(b.counters.packetsOut.disconnect).toBe(1);
  });

  it("profile vm: the WASM glue writes at once, so the same close() at once still delivers DISCONNECT", async () => {
    const s = await server();
    const t = attach({ brokerUrl: s.url, profile: PROFILES.vm });
    await opened(t);
    expect(t.vm.write(DISCONNECT)).toBe(0);
    expect(t.vm.close()).toBe(0);
    await waitFor("the server to see the FIN", () => s.conns[0]?.ended);
    expect(s.conns[0]!.bytes).toEqual(DISCONNECT);
    expect(t.counters.discardedBytes).toBe(0);
  });

  it("detach (deep sleep, power cut) drops every queued write too, and counts it", async () => {
    const s = await server();
    const t = attach({ brokerUrl: s.url, profile: ESP32_NO_WIFI });
    await opened(t);
    const p = publish("sensors/x/telemetry", 100, 7);
    expect(t.vm.write(p)).toBe(0);
    expect(t.vm.write(DISCONNECT)).toBe(0);
    t.net.detach();
    expect(t.counters.discardedBytes).toBe(p.length + 2);
    expect(t.counters.discardedPackets).toBe(2);
    expect(t.logs.at(-1)).toMatch(/^net: deep sleep \/ power off discarded \d+ queued bytes \(DISCONNECT among them/);
    await waitFor("the server to see the connection go", () => s.conns[0]!.closed);
    expect(s.conns[0]!.bytes.length).toBe(0);
  });

  it("a 5 KB inbound burst reaches the program in pieces of at most 1024 bytes; small packets are coalesced", async () => {
    const big = [publish("a", 3000), publish("b", 1500), publish("c", 600)];
    const small = Array.from({ length: 20 }, (_, i) => publish(`s${i}`, 20));
    const burst = Buffer.concat([...big, ...small]);
    expect(burst.length).toBeGreaterThan(5 * 1024);
    const s = await server((conn) => conn.socket.write(burst));
    const t = attach({ brokerUrl: s.url, profile: ESP32_NO_WIFI });
    await opened(t);
    await waitFor("the whole burst", () => t.vm.received().length >= burst.length);
    const pieces = t.vm.named("data").map((e) => e.data.length);
    expect(t.vm.received()).toEqual(burst);
    expect(Math.max(...pieces)).toBeLessThanOrEqual(1024);
    expect(pieces.length).toBeGreaterThanOrEqual(Math.ceil(burst.length / 1024));
    expect(pieces.length).toBeLessThan(big.length + small.length + 5); // not one event per packet
    expect(t.counters.packetsIn.publish).toBe(23);

    // vm profile: one event per packet, whatever its size (the WASM glue has no 1 KB buffer)
    const v = attach({ brokerUrl: s.url, profile: PROFILES.vm, deviceIndex: 1 });
    await opened(v);
    await waitFor("the whole burst (vm)", () => v.vm.received().length >= burst.length);
    expect(v.vm.named("data").map((e) => e.data.length)).toEqual([...big, ...small].map((f) => f.length));
  });

  it("a full command queue refuses with -1 (sockWrite and sockOpen); once the worker drained it, writes go again", async () => {
    const s = await server();
    const t = attach({ brokerUrl: s.url, profile: ESP32_NO_WIFI });
    await opened(t);
    const depth = ESP32_NO_WIFI.socketQueueDepth;
    const packet = publish("q", 5);
    for (let i = 0; i < depth; i++) expect(t.vm.write(packet)).toBe(0);
    expect(t.vm.write(packet)).toBe(-1);
    expect(t.vm.open("broker.example", 1883)).toBe(-1);
    expect(t.logs.filter((l) => l.startsWith("net: socket queue full"))).toHaveLength(2);
    await waitFor("the worker to write all of them, in order", () => s.conns[0]!.bytes.length === depth * packet.length, 10_000);
    expect(t.vm.write(packet)).toBe(0);
    await waitFor("one more", () => s.conns[0]!.bytes.length === (depth + 1) * packet.length);
    expect(t.counters.packetsOut.publish).toBe(depth + 1);
  });

  it("connect-hang: the worker blocks; the next OPEN and writes wait; its late \"can't connect\" lands on the next socket", async () => {
    // A seed whose first connection attempt hangs and whose second does not (a pure function of the seed).
    const plan = { connectHang: 0.5 };
    const seed = [...Array(200).keys()].find((sd) => {
      const f = new DeviceFaults(plan, sd, 0, () => {});
      return f.decide("connect-hang") && !f.decide("connect-hang");
    })!;
    const profile = { ...ESP32_NO_WIFI, connectHangMs: [300, 400] as [number, number] };
    const s = await server();
    const t = attach({ brokerUrl: s.url, profile, faults: plan, seed });
    let connsAtError = -1;
    t.vm.onEvent = (e) => {
      if (e.kind === "error") connsAtError = s.conns.length;
    };
    const started = Date.now();
    expect(t.vm.open("broker.example", 1883)).toBe(0); // attempt 1: hangs
    await waitFor("the hang to be injected", () => t.faults.injected["connect-hang"] === 1);
    // the firmware gives up on its own timeout, closes, and connects again
    t.vm.close();
    expect(t.vm.open("broker.example", 1883)).toBe(0); // attempt 2: queued behind the hang
    expect(t.vm.write([0xc0, 0x00])).toBe(-10); // no connection: nothing can be queued for it
    await waitFor("the late error", () => t.vm.named("error").length === 1, 5000);
    expect(t.vm.named("error")[0]!.data.toString()).toBe("can't connect");
    expect(t.vm.named("error")[0]!.at - started).toBeGreaterThanOrEqual(300);
    expect(connsAtError).toBe(0); // nothing reached the server while the worker hung
    await waitFor("attempt 2 to connect after the hang", () => t.vm.named("open").length === 1);
    expect(t.vm.events.map((e) => e.kind)).toEqual(["error", "open"]);
    expect(s.conns).toHaveLength(1);
    expect(t.faultLog).toEqual([expect.objectContaining({ kind: "connect-hang", opportunity: 0 })]);
    expect(t.faultLog[0]!.detail).toBeGreaterThanOrEqual(300);
    expect(t.faultLog[0]!.detail).toBeLessThanOrEqual(400);
    expect(t.counters.socketErrors).toBe(1);
  });

  it("packet-boundary faults still work: CONNACK dropped and cut; a PUBLISH cut part-way by the worker", async () => {
    const s = await server((conn) => conn.socket.write(CONNACK));
    const a = attach({ brokerUrl: s.url, profile: ESP32_NO_WIFI, faults: { cutBeforeConnack: 1 } });
    await opened(a);
    await waitFor("the cut", () => a.vm.named("error").length === 1);
    expect(a.vm.named("error")[0]!.data.toString()).toBe("recv error (simulated cut-before-connack)");
    expect(a.vm.named("data")).toEqual([]);
    expect(a.faults.injected["cut-before-connack"]).toBe(1);
    expect(a.vm.write([0xc0, 0x00])).toBe(-10);

    const b = attach({ brokerUrl: s.url, profile: ESP32_NO_WIFI, faults: { cutMidPublish: 1 }, deviceIndex: 1 });
    await opened(b);
    const p = publish("t", 200, 3);
    expect(b.vm.write(p)).toBe(0);
    await waitFor("the cut", () => b.vm.named("error").length === 1);
    expect(b.vm.named("error")[0]!.data.toString()).toBe("write error (simulated cut-mid-publish)");
    await waitFor("the partial bytes at the server", () => s.conns[1]?.ended);
    expect(s.conns[1]!.bytes.length).toBe(b.faultLog[0]!.detail);
    expect(s.conns[1]!.bytes.length).toBeLessThan(p.length);
  });

  it("a refused connect is an error event \"can't connect\" (sock.c push_error), counted as a socket error", async () => {
    const s = await server();
    const port = s.port;
    await s.close();
    const t = attach({ brokerUrl: `mqtt://127.0.0.1:${port}`, profile: ESP32_NO_WIFI });
    expect(t.vm.open("broker.example", 1883)).toBe(0);
    await waitFor("the error", () => t.vm.named("error").length === 1);
    expect(t.vm.named("error")[0]!.data.toString()).toBe("can't connect");
    expect(t.counters.socketErrors).toBe(1);
  });
});
