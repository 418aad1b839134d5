/**
 * The firmware's own MQTT 3.1.1 client on the wire: the compiled firmware runs in the simulator against a
 * scripted peer that parses every byte with mqtt-packet.
 */
import { afterEach, describe, expect, test } from "vitest";
import type { IPublishPacket } from "mqtt-packet";
import { MqttPeer, type PeerOptions } from "./helpers/peer.ts";
import { runFirmware, type FirmwareRun } from "./helpers/fleet.ts";

let peer: MqttPeer | undefined;
let run: FirmwareRun | undefined;

afterEach(async () => {
  await run?.stop();
  await peer?.close();
  run = undefined;
  peer = undefined;
});

async function start(peerOptions: PeerOptions, settings: Record<string, unknown> = {}) {
  peer = await new MqttPeer(peerOptions).start();
  run = await runFirmware({ port: peer.port, settings: { INTERVAL_S: 60, ...settings } });
  return { peer, run, id: run.fleet.devices[0]!.id };
}

function telemetrySeq(p: IPublishPacket): number {
  return JSON.parse(p.payload.toString()).seq;
}

describe("firmware MQTT client", () => {
  test("CONNECT: clean session off, client id = device id, Last Will, credentials and keepalive from settings", async () => {
    const { peer, id } = await start({}, { MQTT_USER: "dev-user", MQTT_PASS: "s3cret", KEEPALIVE_S: 45 });
    const [first] = await peer.waitFor("CONNECT", () => {
      const c = peer.packets("connect");
      return c.length ? c : undefined;
    });
    const c = first!.packet;
    expect(c.protocolId).toBe("MQTT");
    expect(c.protocolVersion).toBe(4);
    expect(c.clean).toBe(false);
    expect(c.clientId).toBe(id);
    expect(c.keepalive).toBe(45);
    expect(c.username).toBe("dev-user");
    expect(c.password?.toString()).toBe("s3cret");
    expect(c.will?.topic).toBe(`sensors/${id}/status`);
    expect(c.will?.retain).toBe(true);
    expect(c.will?.qos).toBe(1);
    expect(JSON.parse(c.will!.payload.toString())).toEqual({ v: 1, state: "offline" });
  });

  test("first session: subscribes to its cmd topic with QoS 1, publishes online/telemetry/sleeping, disconnects", async () => {
    const { peer, id } = await start({});
    await peer.waitFor("DISCONNECT", () => peer.packets("disconnect").length > 0);
    const sub = peer.packets("subscribe");
    expect(sub).toHaveLength(1);
    expect(sub[0]!.packet.subscriptions).toEqual([{ topic: `sensors/${id}/cmd`, qos: 1 }]);
    const status = peer.packets("publish", `sensors/${id}/status`).map((e) => e.packet);
    expect(status.map((p) => JSON.parse(p.payload.toString()).state)).toEqual(["online", "sleeping"]);
    expect(status.every((p) => p.retain && p.qos === 1)).toBe(true);
    // INTERVAL_S=60 is the period from wake to wake: the sleep is what is left of it (devs/src/clock.ts)
    const sleeping = JSON.parse(status[1]!.payload.toString());
    expect(sleeping.sleepMs).toBeGreaterThan(55_000);
    expect(sleeping.sleepMs).toBeLessThanOrEqual(60_000);
    expect(sleeping.wake).toMatchObject({ wifi: expect.any(Number), mqtt: expect.any(Number), commands: expect.any(Number) });
    const tele = peer.packets("publish", `sensors/${id}/telemetry`);
    expect(tele).toHaveLength(1);
    const body = JSON.parse(tele[0]!.packet.payload.toString());
    expect(body).toMatchObject({ v: 1, seq: 1, boot: 1, t: null, battery: null, dropped: 0, corrupt: 0 });
    expect(typeof body.readings.temperature).toBe("number");
    expect(typeof body.readings.humidity).toBe("number");
    expect(tele[0]!.packet.qos).toBe(1);
    expect(tele[0]!.packet.retain).toBe(false);
  });

  test("a PUBLISH longer than 127 bytes (multi-byte remaining length) and unique packet ids", async () => {
    const { peer, id } = await start({});
    await peer.waitFor("DISCONNECT", () => peer.packets("disconnect").length > 0);
    const tele = peer.packets("publish", `sensors/${id}/telemetry`);
    expect(tele).toHaveLength(1);
    // remaining length > 127 takes two bytes: mqtt-packet decoding the whole payload proves the encoding
    expect(tele[0]!.length).toBeGreaterThan(127);
    expect(JSON.parse(tele[0]!.packet.payload.toString()).seq).toBe(1);
    const ids = peer.received
      .filter((e) => (e.packet.cmd === "publish" && e.packet.qos > 0) || e.packet.cmd === "subscribe")
      .map((e) => (e.packet as { messageId: number }).messageId);
    expect(ids.length).toBeGreaterThanOrEqual(4);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every((i) => i >= 1 && i <= 65535)).toBe(true);
  });

  test("no PUBACK and a dropped connection: the same PUBLISH comes again with DUP and the same packet id", async () => {
    let dropped = false;
    const { peer, id } = await start({
      hook: (conn, p) => {
        if (!dropped && p.cmd === "publish" && p.topic.endsWith("/telemetry")) {
          dropped = true;
          conn.drop(); // no PUBACK
          return true;
        }
        return false;
      },
    });
    const topic = `sensors/${id}/telemetry`;
    await peer.waitFor("telemetry resent", () => peer.packets("publish", topic).length >= 2);
    const [firstTry, resend] = peer.packets("publish", topic);
    expect(firstTry!.conn).toBe(0);
    expect(resend!.conn).toBe(1);
    expect(firstTry!.packet.dup).toBe(false);
    expect(resend!.packet.dup).toBe(true);
    expect(resend!.packet.messageId).toBe(firstTry!.packet.messageId);
    expect(resend!.packet.payload.toString()).toBe(firstTry!.packet.payload.toString());
    await peer.waitFor("DISCONNECT", () => peer.packets("disconnect").length > 0);
    // acknowledged on the second connection: not sent a third time
    expect(peer.packets("publish", topic)).toHaveLength(2);
  });

  test("QoS 2: PUBLISH → PUBREC → PUBREL → PUBCOMP, and a finished flow is not published again", async () => {
    const { peer, id } = await start({}, { QOS: 2, INTERVAL_S: 5 });
    const topic = `sensors/${id}/telemetry`;
    // two wakes: the second shows the first reading is done
    await peer.waitFor("two telemetry messages", () => peer.packets("publish", topic).length >= 2);
    await peer.waitFor("second DISCONNECT", () => peer.packets("disconnect").length >= 2);
    const tele = peer.packets("publish", topic);
    expect(tele.map((e) => e.packet.qos)).toEqual([2, 2]);
    expect(tele.map((e) => telemetrySeq(e.packet))).toEqual([1, 2]);
    const rels = peer.packets("pubrel").map((e) => e.packet.messageId);
    expect(rels).toContain(tele[0]!.packet.messageId);
    expect(rels).toContain(tele[1]!.packet.messageId);
    // PUBREL strictly after its PUBLISH
    const order = peer.received.map((e) => e.packet);
    const pubIdx = order.indexOf(tele[0]!.packet);
    const relIdx = order.findIndex((p) => p.cmd === "pubrel" && p.messageId === tele[0]!.packet.messageId);
    expect(relIdx).toBeGreaterThan(pubIdx);
  });

  test("QoS 2 resumes across a sleep: PUBREC seen, PUBCOMP never came → next wake sends PUBREL, not the PUBLISH", async () => {
    let holdPubcomp = true;
    const { peer, id } = await start(
      {
        hook: (conn, p) => {
          if (p.cmd === "pubrel" && holdPubcomp && conn.index === 0) return true; // swallow: no PUBCOMP
          return false;
        },
      },
      { QOS: 2, INTERVAL_S: 5 },
    );
    const topic = `sensors/${id}/telemetry`;
    await peer.waitFor("second wake's telemetry", () => peer.packets("publish", topic).length >= 2);
    await peer.waitFor("second DISCONNECT", () => peer.packets("disconnect").length >= 2);
    const first = peer.packets("publish", topic)[0]!.packet;
    const relsOnSecond = peer.packets("pubrel").filter((e) => e.conn === 1).map((e) => e.packet.messageId);
    expect(relsOnSecond).toContain(first.messageId);
    // reading 1 was never published again
    expect(peer.packets("publish", topic).map((e) => telemetrySeq(e.packet))).toEqual([1, 2]);
    holdPubcomp = false;
  });

  test("QoS 2 after a sleep with sessionPresent=0: the flow past PUBREC starts again from PUBLISH, not PUBREL", async () => {
    let holdPubcomp = true;
    const { peer, id, run } = await start(
      {
        // every CONNACK says the broker has no session for us (another broker, or one that lost its store)
        sessionPresent: () => false,
        hook: (conn, p) => p.cmd === "pubrel" && holdPubcomp && conn.index === 0, // swallow: no PUBCOMP
      },
      { QOS: 2, INTERVAL_S: 5 },
    );
    const topic = `sensors/${id}/telemetry`;
    await peer.waitFor("second DISCONNECT", () => peer.packets("disconnect").length >= 2);
    holdPubcomp = false;
    const first = peer.packets("publish", topic).find((e) => e.conn === 0)!.packet;
    expect(telemetrySeq(first)).toBe(1);
    const second = peer.received.filter((e) => e.conn === 1).map((e) => e.packet);
    // on the second connection reading 1 is published again, same packet id, before any PUBREL for that id
    const again = second.findIndex((p) => p.cmd === "publish" && p.topic === topic && telemetrySeq(p) === 1);
    expect(again).toBeGreaterThanOrEqual(0);
    expect((second[again] as IPublishPacket).messageId).toBe(first.messageId);
    expect((second[again] as IPublishPacket).qos).toBe(2);
    const relBefore = second.slice(0, again).some((p) => p.cmd === "pubrel" && p.messageId === first.messageId);
    expect(relBefore).toBe(false);
    // then the new flow runs to its end on that connection, with reading 2
    expect(second.some((p) => p.cmd === "pubrel" && p.messageId === first.messageId)).toBe(true);
    expect(second.filter((p) => p.cmd === "publish" && p.topic === topic).map((p) => telemetrySeq(p as IPublishPacket))).toEqual([1, 2]);
    expect(run.logs.some((l) => l.includes("sessionPresent=0: 1 QoS 2 reading(s) past PUBREC published again (seq 1)"))).toBe(true);
  });

  test("QoS 2 restart whose new PUBREC never came: the delivery record keeps it to publish (rp), the next wake publishes it even with sessionPresent=1", async () => {
    const { peer, id } = await start(
      {
        sessionPresent: (i) => i >= 2,
        hook: (conn, p) => {
          if (p.cmd === "pubrel" && conn.index === 0) return true; // no PUBCOMP: the flow stays in rel
          // the re-published reading 1 gets no PUBREC on the second connection: that wake's budget runs out
          return p.cmd === "publish" && conn.index === 1 && p.topic.endsWith("/telemetry") && telemetrySeq(p) === 1;
        },
      },
      { QOS: 2, INTERVAL_S: 15, AWAKE_MAX_S: 8 },
    );
    const topic = `sensors/${id}/telemetry`;
    await peer.waitFor("third DISCONNECT", () => peer.packets("disconnect").length >= 3, 60_000);
    const third = peer.received.filter((e) => e.conn === 2).map((e) => e.packet);
    const again = third.find((p) => p.cmd === "publish" && p.topic === topic && telemetrySeq(p) === 1) as IPublishPacket | undefined;
    expect(again, "reading 1 published again on the third connection (sessionPresent=1)").toBeDefined();
    expect(again!.qos).toBe(2);
    const firstId = peer.packets("publish", topic).find((e) => e.conn === 0)!.packet.messageId;
    // not resumed at PUBREL before it: the record said "publish again", not "release"
    const idx = third.indexOf(again!);
    expect(third.slice(0, idx).some((p) => p.cmd === "pubrel" && p.messageId === firstId)).toBe(false);
  });

  test("packets written byte by byte, and several packets coalesced into one write, are all understood", async () => {
    const { peer, id } = await start({
      mode: "bytes",
      hook: (conn, p) => {
        // telemetry and the online status get their PUBACKs together in one TCP write
        if (p.cmd === "publish" && p.topic.endsWith("/telemetry")) {
          const online = peer!.packets("publish", `sensors/${id}/status`)[0]!.packet;
          conn.sendCoalesced([
            { cmd: "puback", messageId: online.messageId! },
            { cmd: "puback", messageId: p.messageId! },
            { cmd: "pingresp" },
          ]);
          return true;
        }
        if (p.cmd === "publish" && p.topic.endsWith("/status") && JSON.parse(p.payload.toString()).state === "online")
          return true; // acked together with the telemetry
        return false;
      },
    });
    await peer.waitFor("DISCONNECT", () => peer.packets("disconnect").length > 0);
    // the device saw CONNACK/SUBACK byte by byte and both coalesced PUBACKs: nothing was resent
    expect(peer.connections).toHaveLength(1);
    expect(peer.packets("publish", `sensors/${id}/telemetry`)).toHaveLength(1);
    // the wake ends after the broker closed the connection on DISCONNECT
    await peer.waitFor("wake: done", () => run!.logs.some((l) => /wake: done/.test(l)));
  });

  test("sessionPresent=1: no SUBSCRIBE; sessionPresent=0 on a later connect: SUBSCRIBE again", async () => {
    const { peer } = await start({ sessionPresent: (i) => i === 1 }, { INTERVAL_S: 5 });
    await peer.waitFor("three sessions", () => peer.packets("disconnect").length >= 3);
    const subConns = peer.packets("subscribe").map((e) => e.conn);
    expect(subConns).toEqual([0, 2]);
  });

  test("CONNACK refusal: logged with the return code's name, retried with backoff, reading kept", async () => {
    let refuse = true;
    const { peer, id, run } = await start({
      hook: async (conn, p) => {
        if (p.cmd === "connect" && refuse) {
          await conn.send({ cmd: "connack", returnCode: 4, sessionPresent: false });
          return true;
        }
        return false;
      },
    });
    await peer.waitFor("two refused CONNECTs", () => peer.packets("connect").length >= 2);
    expect(run.logs.join("\n")).toMatch(/connection refused: bad user name or password \(4\)/);
    refuse = false;
    await peer.waitFor("telemetry after the refusals", () => peer.packets("publish", `sensors/${id}/telemetry`).length >= 1);
    expect(telemetrySeq(peer.packets("publish", `sensors/${id}/telemetry`)[0]!.packet)).toBe(1);
  });
});
