/**
 * QoS 2 when the broker that sent PUBREC is gone: Mosquitto (like aedes) passes a QoS 2 message on only at
 * PUBREL, so a flow past PUBREC exists only in that broker. A device that connects and gets CONNACK
 * sessionPresent=0 (another broker, or the same one restarted without its store) publishes such readings
 * again instead of sending PUBREL (devs/README.md, "QoS 2 and lost sessions"). Compiled firmware in the
 * simulator, real Mosquitto processes, a parsing proxy (helpers/mqtt-tap.ts) to act right after PUBREC.
 */
import { afterEach, describe, expect, test } from "vitest";
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { mosquittoAvailable, startMosquitto, type RunningMosquitto } from "../helpers/mosquitto.ts";
import { until } from "./helpers/broker.ts";
import { storedSeqs, watchTelemetry, type Arrival } from "./helpers/arrivals.ts";
import { runFirmware, type FirmwareRun } from "./helpers/fleet.ts";
import { startMqttTap, type MqttTap } from "./helpers/mqtt-tap.ts";

const hasMosquitto = mosquittoAvailable();

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});




/** Once armed, calls `act` right after the first PUBREC for a telemetry message was written to a device. */
function onFirstPubrec(tap: MqttTap, act: (device: string, seq: number) => void) {
  let fired = false;
  tap.onBrokerPacket = (conn, p) => {
    if (fired || p.cmd !== "pubrec") return;
    const seq = conn.seqById.get(p.messageId!);
    if (seq === undefined || conn.clientId === undefined) return;
    fired = true;
    act(conn.clientId, seq);
  };
}

/** Every stored seq arrived at least once; after de-duplication on (device, seq), 1..n without gaps. */
async function expectNothingLost(run: FirmwareRun, arrivals: Arrival[], ids: string[]) {
  const stored = storedSeqs(run);
  await until(
    "every stored reading delivered",
    () => ids.every((id) => (stored.get(id) ?? []).every((seq) => arrivals.some((r) => r.device === id && r.seq === seq))),
    60_000,
  );
  for (const id of ids) {
    const seqs = [...new Set(arrivals.filter((r) => r.device === id).map((r) => r.seq))].sort((x, y) => x - y);
    expect(seqs, `${id}: seqs without gaps`).toEqual(seqs.map((_, i) => i + 1));
    const duplicates = arrivals.filter((r) => r.device === id).length - seqs.length;
    console.log(`qos2: ${id} ${seqs.length} readings, ${duplicates} duplicate(s) removed by (device, seq)`);
  }
}

describe.skipIf(!hasMosquitto)("QoS 2 flows past PUBREC on a broker without our session", () => {
  test("broker A killed right after its PUBREC: the device publishes that reading again on B, nothing lost", async () => {
    const a = await startMosquitto();
    cleanups.push(() => a.close());
    const b = await startMosquitto();
    cleanups.push(() => b.close());
    const tapA = await startMqttTap(a.port);
    cleanups.push(() => tapA.close());
    const arrivals: Arrival[] = [];
    const watchA = await watchTelemetry(a, "A", arrivals, 2);
    cleanups.push(() => watchA.endAsync(true));
    const watchB = await watchTelemetry(b, "B", arrivals, 2);
    cleanups.push(() => watchB.endAsync(true));

    const run = await runFirmware({ brokerPorts: [tapA.port, b.port], devices: 2, seed: 21, settings: { INTERVAL_S: 5, QOS: 2 } });
    cleanups.push(() => run.stop());
    const ids = run.fleet.devices.map((d) => d.id);
    await until("2 readings per device through A", () => ids.every((id) => arrivals.filter((r) => r.device === id && r.broker === "A").length >= 2), 60_000);

    let cut: { device: string; seq: number; at: number } | undefined;
    onFirstPubrec(tapA, (device, seq) => {
      // A holds the message until PUBREL, which now never comes: it dies with it
      process.kill(a.pid()!, "SIGKILL");
      tapA.refusing = true;
      tapA.cut();
      cut = { device, seq, at: Date.now() };
    });
    const c = await until("A killed right after a PUBREC", () => cut, 30_000);
    await a.kill();
    expect(arrivals.some((r) => r.device === c.device && r.seq === c.seq), "A had not passed it on (no PUBREL yet)").toBe(false);

    const again = await until(`${c.device} seq ${c.seq} (PUBREC'd by the dead A) arrives on B`, () =>
      arrivals.find((r) => r.device === c.device && r.seq === c.seq && r.broker === "B"), 60_000);
    console.log(`qos2: ${c.device} seq ${c.seq} arrived on B ${again.at - c.at} ms after A died`);
    expect(run.logs.some((l) => l.startsWith(`[${c.device}]`) && /sessionPresent=0: \d+ QoS 2 reading\(s\) past PUBREC published again/.test(l))).toBe(true);

    await until("2 more readings per device on B", () => ids.every((id) => arrivals.filter((r) => r.device === id && r.broker === "B" && r.at > c.at).length >= 3), 60_000);
    await expectNothingLost(run, arrivals, ids);
  }, 240_000);

  test("the same broker restarted with an empty data dir right after a PUBREC (session lost): that reading published again, nothing lost", async () => {
    const m = await startMosquitto();
    cleanups.push(() => m.close());
    const tap = await startMqttTap(m.port);
    cleanups.push(() => tap.close());
    const arrivals: Arrival[] = [];
    const watcher = await watchTelemetry(m, "M", arrivals, 2);
    cleanups.push(() => watcher.endAsync(true));

    const run = await runFirmware({ port: tap.port, seed: 22, settings: { INTERVAL_S: 5, QOS: 2 } });
    cleanups.push(() => run.stop());
    const id = run.fleet.devices[0]!.id;
    await until("2 readings", () => arrivals.filter((r) => r.device === id).length >= 2, 60_000);

    let cut: { device: string; seq: number; at: number } | undefined;
    onFirstPubrec(tap, (device, seq) => {
      process.kill(m.pid()!, "SIGKILL");
      tap.refusing = true;
      tap.cut();
      cut = { device, seq, at: Date.now() };
    });
    const c = await until("broker killed right after a PUBREC", () => cut, 30_000);
    await m.kill();
    for (const f of readdirSync(m.persistenceDir)) rmSync(join(m.persistenceDir, f), { recursive: true, force: true });
    await m.restart();
    // the device may reconnect only once our subscriber is back, or its messages would have no receiver
    await until("subscriber back", () => watcher.connected, 10_000);
    await watcher.subscribeAsync("sensors/+/telemetry", { qos: 2 });
    tap.refusing = false;

    await until(`seq ${c.seq} (PUBREC'd before the restart) arrives again`, () => arrivals.find((r) => r.device === id && r.seq === c.seq), 60_000);
    expect(run.logs.some((l) => l.startsWith(`[${id}]`) && /sessionPresent=0: \d+ QoS 2 reading\(s\) past PUBREC published again/.test(l))).toBe(true);
    await until("2 more readings after the restart", () => arrivals.filter((r) => r.device === id && r.at > c.at).length >= 3, 60_000);
    await expectNothingLost(run, arrivals, [id]);
  }, 180_000);
});
