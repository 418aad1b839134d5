/**
 * Several brokers (issue 12): devices provisioned with two Mosquitto brokers (MQTT_HOSTS) fail over when
 * one is killed with SIGKILL while they run, lose no reading (every stored seq arrives at least once; the
 * gateway de-duplicates on (device, seq)), and keep working when the broker comes back and the other dies.
 * Also: bad MQTT_HOSTS entries are left out with a reason, never a boot loop.
 */
import { afterEach, describe, expect, test } from "vitest";
import { mosquittoAvailable, startMosquitto, type RunningMosquitto } from "../helpers/mosquitto.ts";
import { until } from "./helpers/broker.ts";
import { storedSeqs, watchTelemetry, type Arrival } from "./helpers/arrivals.ts";
import { runFirmware } from "./helpers/fleet.ts";

const hasMosquitto = mosquittoAvailable();

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});




describe.skipIf(!hasMosquitto)("firmware with two brokers (MQTT_HOSTS)", () => {
  test("kill -9 broker A while devices run: they move to B within a wake or two, nothing lost; A back, B killed: back to A", async () => {
    const a = await startMosquitto();
    cleanups.push(() => a.close());
    const b = await startMosquitto();
    cleanups.push(() => b.close());
    const arrivals: Arrival[] = [];
    const watchA = await watchTelemetry(a, "A", arrivals, 1);
    cleanups.push(() => watchA.endAsync(true));
    const watchB = await watchTelemetry(b, "B", arrivals, 1);
    cleanups.push(() => watchB.endAsync(true));

    const run = await runFirmware({ brokerPorts: [a.port, b.port], devices: 3, seed: 12, settings: { INTERVAL_S: 5 } });
    cleanups.push(() => run.stop()); // also asserts: no boot loop, no settings record over the read limit
    const ids = run.fleet.devices.map((d) => d.id);
    const standbys: { device: string; at: number }[] = [];
    run.fleet.on("standby", (e) => standbys.push({ device: e.device.id, at: Date.now() }));
    const wakesBetween = (id: string, from: number, to: number) => standbys.filter((s) => s.device === id && s.at >= from && s.at < to).length;
    const on = (broker: "A" | "B", id: string, after = 0) =>
      arrivals.filter((r) => r.broker === broker && r.device === id && r.at >= after);

    await until("2 readings per device through A (the first broker)", () => ids.every((id) => on("A", id).length >= 2), 60_000);
    expect(ids.every((id) => on("B", id).length === 0)).toBe(true);

    // kill A the moment a device sends it a reading (before A can PUBACK it): that device is mid-publish,
    // the others anywhere in their wakes
    let inFlight: { device: string; seq: number } | undefined;
    run.fleet.on("publish", (e) => {
      if (inFlight || !e.topic.endsWith("/telemetry")) return;
      process.kill(a.pid()!, "SIGKILL");
      inFlight = { device: e.device.id, seq: JSON.parse(e.payload.toString()).seq };
    });
    const cut = await until("A killed under a PUBLISH", () => inFlight, 30_000);
    const killedAt = Date.now();
    await a.kill(); // waits for its exit

    await until("3 readings per device through B after the kill", () => ids.every((id) => on("B", id, killedAt).length >= 3), 90_000);
    for (const id of ids) {
      // wakes that ended between the kill and this device's first reading on B
      const first = on("B", id, killedAt)[0]!.at;
      const moved = wakesBetween(id, killedAt, first);
      console.log(`failover: ${id} delivered on B ${first - killedAt} ms after the kill, ${moved} wake(s) ended in between`);
      expect(moved, `${id}: wakes between the kill and its first reading on B`).toBeLessThanOrEqual(2);
    }

    const resent = await until(`the reading in flight at the kill (${cut.device} seq ${cut.seq}) delivered`, () =>
      arrivals.find((r) => r.device === cut.device && r.seq === cut.seq),
    );
    console.log(`failover: ${cut.device} seq ${cut.seq} was in flight at the kill; arrived on ${resent.broker} ${resent.at - killedAt} ms later`);

    // A comes back (its persistence dir, empty sessions: SIGKILL saved nothing); then B dies: devices go back to A
    await a.restart();
    await until("the subscriber on A reconnected", () => watchA.connected, 10_000);
    const bKilledAt = Date.now();
    await b.kill();
    await until("2 readings per device through A again", () => ids.every((id) => on("A", id, bKilledAt).length >= 2), 90_000);

    // nothing lost: every seq a device stored arrives (exactly once after de-duplication on (device, seq))
    const stored = storedSeqs(run);
    await until(
      "every stored reading of the phases above delivered",
      () => ids.every((id) => (stored.get(id) ?? []).every((seq) => arrivals.some((r) => r.device === id && r.seq === seq))),
      60_000,
    );
    for (const id of ids) {
      const seqs = [...new Set(arrivals.filter((r) => r.device === id).map((r) => r.seq))].sort((x, y) => x - y);
      expect(seqs, `${id}: seqs without gaps`).toEqual(seqs.map((_, i) => i + 1));
      expect(seqs.length).toBeGreaterThanOrEqual(7);
      const duplicates = arrivals.filter((r) => r.device === id).length - seqs.length;
      console.log(`failover: ${id} ${seqs.length} readings, ${duplicates} duplicate(s) removed by (device, seq)`);
    }
  }, 300_000);

  test("a hung broker (SIGSTOP: TCP accepted, no CONNACK): the next broker in the same wake, or on the next wake when the budget is short", async () => {
    const a = await startMosquitto();
    cleanups.push(() => a.close());
    const b = await startMosquitto();
    cleanups.push(() => b.close());
    process.kill(a.pid()!, "SIGSTOP");
    cleanups.push(() => void process.kill(a.pid()!, "SIGCONT")); // before close(): a stopped process ignores SIGTERM
    const arrivals: Arrival[] = [];
    const watchB = await watchTelemetry(b, "B", arrivals, 1);
    cleanups.push(() => watchB.endAsync(true));
    // device 0: 20 s awake, room for A's 5 s CONNACK timeout and then B; device 1: 7 s, only one attempt fits
    const run = await runFirmware({
      brokerPorts: [a.port, b.port],
      devices: 2,
      seed: 13,
      settings: (i) => ({ INTERVAL_S: 5, AWAKE_MAX_S: i === 0 ? 20 : 7 }),
    });
    cleanups.push(() => run.stop());
    const [d0, d1] = run.fleet.devices.map((d) => d.id);
    const standbys: { device: string; seqSeen: number }[] = [];
    run.fleet.on("standby", (e) => standbys.push({ device: e.device.id, seqSeen: arrivals.filter((r) => r.device === e.device.id).length }));
    await until("2 readings of each device on B", () => [d0, d1].every((id) => arrivals.filter((r) => r.device === id).length >= 2), 90_000);

    // device 0: its first wake already delivered seq 1 on B, after the timeout on A
    expect(arrivals.find((r) => r.device === d0)!.seq).toBe(1);
    expect(standbys.filter((s) => s.device === d0)[0]!.seqSeen).toBeGreaterThanOrEqual(1);
    expect(run.logs.some((l) => l.startsWith(`[${d0}]`) && l.includes(`127.0.0.1:${a.port}: mqtt: CONNACK timeout; failing over to 127.0.0.1:${b.port}`))).toBe(true);
    // device 1: its first wake spent the budget on A and delivered nothing; the second started at B (no flash write for it)
    expect(standbys.filter((s) => s.device === d1)[0]!.seqSeen).toBe(0);
    expect(run.logs.some((l) => l.startsWith(`[${d1}]`) && l.includes("awake budget spent"))).toBe(true);
    expect(arrivals.filter((r) => r.device === d1).map((r) => r.seq).slice(0, 2)).toEqual([1, 2]);
    const d1Connects = run.logs.filter((l) => l.startsWith(`[${d1}]`) && l.includes("mqtt: connected to"));
    expect(d1Connects[0]).toContain(`to 127.0.0.1:${b.port} (broker 2/2)`);
  }, 180_000);

  test("bad MQTT_HOSTS entries are left out with their reason; the device uses the good one", async () => {
    const b = await startMosquitto();
    cleanups.push(() => b.close());
    const arrivals: Arrival[] = [];
    const watchB = await watchTelemetry(b, "B", arrivals, 1);
    cleanups.push(() => watchB.endAsync(true));
    const run = await runFirmware({
      brokerPorts: [b.port],
      settings: { INTERVAL_S: 5, MQTT_HOSTS: `bad_host!,127.0.0.1:99999,127.0.0.1:${b.port},127.0.0.1:${b.port}` },
    });
    cleanups.push(() => run.stop());
    const id = run.fleet.devices[0]!.id;
    await until("2 readings through the good entry", () => arrivals.filter((r) => r.device === id).length >= 2, 60_000);
    const errors = run.logs.filter((l) => l.includes("settings: MQTT_HOSTS"));
    expect(errors.some((l) => l.includes("entry 1 'bad_host!': not a host name or IPv4 address"))).toBe(true);
    expect(errors.some((l) => l.includes("entry 2 '127.0.0.1:99999': the port must be a whole number 1..65535"))).toBe(true);
    expect(errors.some((l) => l.includes(`entry 4 '127.0.0.1:${b.port}': listed twice`))).toBe(true);
    expect(run.fleet.devices[0]!.bootsWithoutWake).toBe(0);
  }, 120_000);
});
