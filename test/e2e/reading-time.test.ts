/**
 * Regression for issue 9.6 ("readings lose their time"): readings that waited over an hour in the flash outbox
 * (no broker) reach the gateway with `age` from the device clock (devs/src/clock.ts), and the gateway, its API
 * and its SSE stream show each at its true time within 1 % of its delay. The true time comes from the
 * simulator's per-device timeline (simulator/src/true-clock.ts: real awake time, full unscaled sleeps).
 */
import { afterEach, describe, expect, test } from "vitest";
import { startFleet, type Fleet } from "../../simulator/src/index.ts";
import { startTestGateway, tempDir, type TestGateway } from "../helpers/gateway.ts";
import { freePort } from "../helpers/ports.ts";
import { connectSse } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const INTERVAL_S = 600;
/** offline wakes before the broker comes up: > 1 h of device time */
const OFFLINE_WAKES = 7;

describe("readings carry the time they were taken", () => {
  test("an hour in the outbox: the gateway dates every reading within 1 % of its delay", async () => {
    const mqttPort = await freePort();
    const fleet: Fleet = await startFleet({
      devices: 2,
      brokerUrl: `mqtt://127.0.0.1:${mqttPort}`, // nothing listens yet: every wake stores and gives up
      seed: 11,
      timeScale: INTERVAL_S, // one period of deep sleep lasts about a second
      flashDir: tempDir("fw-time-"),
      eraseFlash: true,
      settings: (i) => ({ DEVICE_ID: `clock-${i}`, INTERVAL_S, AWAKE_MAX_S: 8 }),
    });
    cleanups.push(() => fleet.stop());
    const takenAt = new Map<string, number>(); // "device/seq" → true clock when stored
    const sentAt = new Map<string, { clock: number; age: number }>(); // first telemetry PUBLISH of it
    fleet.on("log", (e) => {
      const m = /^reading seq=(\d+) /.exec(e.line);
      if (m) takenAt.set(`${e.device.id}/${m[1]}`, e.clock);
    });
    fleet.on("publish", (e) => {
      if (!e.topic.endsWith("/telemetry")) return;
      const body = JSON.parse(Buffer.from(e.payload).toString());
      const key = `${e.device.id}/${body.seq}`;
      if (!sentAt.has(key)) sentAt.set(key, { clock: e.clock, age: body.age });
    });
    let wakes = 0;
    fleet.on("standby", () => wakes++);
    await waitUntil(() => wakes >= OFFLINE_WAKES * fleet.devices.length, { timeoutMs: 240_000, message: "offline wakes" });

    const gw: TestGateway = await startTestGateway({ config: { mqtt: { port: mqttPort } } });
    cleanups.push(() => gw.close());
    const base = `http://127.0.0.1:${gw.port}`;
    const readings = async (id: string) =>
      ((await (await fetch(`${base}/api/devices/${id}/readings?limit=1000`)).json()) as { readings: any[] }).readings;
    await waitUntil(
      async () => (await Promise.all(fleet.devices.map(async (d) => (await readings(d.id)).length > OFFLINE_WAKES))).every(Boolean),
      { timeoutMs: 120_000, message: "the outbox flushed to the gateway" },
    );

    const sse = await connectSse(base, { lastEventIdQuery: 0 });
    cleanups.push(async () => sse.close());
    let longest = 0;
    let worst = { error: 0, trueAge: 0 };
    for (const d of fleet.devices) {
      const rows = await readings(d.id);
      const mine = () => sse.events.filter((ev) => ev.event === "telemetry" && ev.json?.deviceId === d.id);
      await sse.waitFor(() => mine().length >= rows.length, { timeoutMs: 30_000, message: `SSE replay of ${d.id}` });
      const stream = mine();
      for (const r of rows) {
        const key = `${d.id}/${r.seq}`;
        const taken = takenAt.get(key);
        const sent = sentAt.get(key);
        expect(taken, key).toBeDefined();
        expect(sent, key).toBeDefined();
        const trueAge = sent!.clock - taken!;
        longest = Math.max(longest, trueAge);
        expect(r.timeSource, key).toBe("age");
        expect(r.age, key).toBe(sent!.age);
        // shown time vs true time: the device clock's error over the delay, plus the trip to the gateway
        const shownAge = r.receivedAt - r.t;
        if (Math.abs(shownAge - trueAge) > worst.error) worst = { error: Math.abs(shownAge - trueAge), trueAge };
        expect(Math.abs(shownAge - trueAge), `${key}: shown ${shownAge} ms ago, true ${trueAge} ms`).toBeLessThanOrEqual(
          0.01 * trueAge + 1000,
        );
        const ev = stream.find((e) => e.json.seq === r.seq);
        expect(ev?.json.t, key).toBe(r.t);
      }
      // readings are listed at their own time: oldest first, one period apart
      const ts = rows.map((r) => r.t);
      expect(ts).toEqual([...ts].sort((a, b) => a - b));
    }
    console.log(
      `reading time: oldest delay ${Math.round(longest / 60_000)} min; worst error ${worst.error} ms on a ${Math.round(worst.trueAge / 1000)} s delay`,
    );
    expect(longest, "the oldest reading waited over an hour").toBeGreaterThan(3_600_000);
    expect(fleet.counters().bootLoops).toBe(0);
  }, 480_000);
});
