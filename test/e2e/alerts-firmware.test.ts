/**
 * Summaries and alerts end to end, with the compiled firmware in the simulator (esp32 profile) on the embedded
 * broker and on Debian's Mosquitto (docs/protocol.md "Summaries, series and export", "Alerts"). One gateway and
 * one fleet of three devices per broker kind; the three scenarios run at the same time, one device each:
 *
 * - hot-1: its temperature (fleet option `sensors`) goes 21.5 → 31.25 → 29 → 27.5 against a threshold rule
 *   (above 30, hysteresis 2): it fires on the first reading above 30, stays firing inside the band, resolves on
 *   the first reading at or below 28; the series API has the readings (raw) and their 1-minute buckets.
 * - late-1: Wi-Fi fails on every boot (fault `wifiFail`, set live with fleet.setFaults): the device never
 *   reports, the gateway's overdue clock fires the overdue rule (factor 1.5, grace 2 s) and GET /api/devices
 *   says `overdue`; with Wi-Fi back, its next report resolves it and the readings it took meanwhile arrive.
 * - batt-1: its battery (fleet option `battery`) drops 3.9 → 3.35 V: the default battery-low rule (below 3.4 V)
 *   fires; back at 3.6 V (past the 0.1 V hysteresis) it resolves.
 *
 * Timing: every wake takes ~3-6 s of real time (the esp32 profile's Wi-Fi bring-up); deep sleep runs 50× faster.
 */
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, it } from "vitest";
import type { AlertData } from "../../gateway/src/protocol/events.ts";
import type { BucketPoint, RawPoint } from "../../gateway/src/summaries/series.ts";
import { startFleet, type Fleet } from "../../simulator/src/index.ts";
import { brokerKinds } from "../gateway/broker-kinds.ts";
import { assertFleetHealthy } from "../helpers/fleet-health.ts";
import { tempDir, type TestGateway } from "../helpers/gateway.ts";
import { connectSse, type SseClient } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";

const INTERVAL_S = 20;
const TIME_SCALE = 50;
/** A wake without network gives up after this (the default 20 s would only make the overdue case slower). */
const AWAKE_MAX_S = 10;
const CHECK_INTERVAL_MS = 200;
const OVERDUE = { factor: 1.5, graceS: 2 };

const HOT = "hot-1";
const LATE = "late-1";
const BATT = "batt-1";
const IDS = [HOT, LATE, BATT];
const [HOT_INDEX, LATE_INDEX, BATT_INDEX] = [0, 1, 2];

/** Values with an exact binary fraction: the sensor's i22.10 encoding and the firmware's rounding keep them. */
const TEMP = { normal: 21.5, hot: 31.25, band: 29, cool: 27.5 };
const HOT_RULE = {
  id: "too-hot",
  name: "Too hot",
  kind: "threshold",
  metric: "temperature",
  above: 30,
  hysteresis: 2,
  severity: "critical",
  scope: { devices: "hot-*", topic: "sensors/+/telemetry" },
} as const;
const VOLTS = { full: 3.9, low: 3.35, recovered: 3.6 };

const STEP_1M = 60_000;

interface Reading {
  eventId: number;
  seq: number;
  t: number;
  age: number | null;
  timeSource: string;
  receivedAt: number;
  readings: Record<string, number>;
  battery: number | null;
}
interface DeviceView {
  deviceId: string;
  status: string;
  nextWakeAt: number | null;
  statusAt: number;
  lastSeen: number | null;
}
interface Series<P> {
  deviceId: string;
  metric: string;
  step: string;
  points: P[];
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Buckets of raw points the way docs/protocol.md defines them: per UTC minute of `t`; `last` by (t, seq). */
function bucketsOf(points: RawPoint[], stepMs: number): BucketPoint[] {
  const byStart = new Map<number, RawPoint[]>();
  for (const p of points) {
    const start = Math.floor(p.t / stepMs) * stepMs;
    byStart.set(start, [...(byStart.get(start) ?? []), p]);
  }
  return [...byStart.entries()]
    .sort(([a], [b]) => a - b)
    .map(([t, ps]) => {
      const last = [...ps].sort((a, b) => a.t - b.t || a.seq - b.seq).at(-1)!;
      const values = ps.map((p) => p.value);
      return {
        t,
        count: ps.length,
        min: Math.min(...values),
        max: Math.max(...values),
        mean: values.reduce((s, v) => s + v, 0) / values.length,
        last: last.value,
      };
    });
}

describe.each(brokerKinds())("alerts and summaries with the firmware on the $name broker", (kind) => {
  let gateway: TestGateway;
  let fleet: Fleet;
  let sse: SseClient;
  let flashDir: string;
  const logs = new Map<string, string[]>(IDS.map((id) => [id, []]));
  /** Telemetry the devices published, by device and seq (first PUBLISH of each). */
  const published = new Map<string, Map<number, { readings: Record<string, number>; battery: number | null }>>(
    IDS.map((id) => [id, new Map()]),
  );
  const control = { temperature: TEMP.normal, battery: VOLTS.full };
  let startedAt = 0;

  const api = (path: string) => `${gateway.url}${path}`;
  const readings = async (id: string) => (await getJson<{ readings: Reading[] }>(api(`/api/devices/${id}/readings?limit=1000`))).readings;
  const device = async (id: string) => (await getJson<{ devices: DeviceView[] }>(api("/api/devices"))).devices.find((d) => d.deviceId === id);
  const alerts = async (id: string, state: "firing" | "resolved" | "all") =>
    (await getJson<{ alerts: AlertData[] }>(api(`/api/alerts?state=${state}&device=${id}`))).alerts;
  const alertEvents = (alertId: number) => sse.events.filter((e) => e.event === "alert" && e.json.alertId === alertId).map((e) => e.json as AlertData);
  /** waitUntil, with the device's last log lines in the error. */
  const waitFor = async <T>(id: string, message: string, check: () => T | Promise<T>, timeoutMs = 60_000) => {
    try {
      return await waitUntil(check, { timeoutMs, intervalMs: 100, message: `${id}: ${message}` });
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- ${id} log (last 40 lines) ---\n${logs.get(id)!.slice(-40).join("\n")}`);
    }
  };
  /** The first stored reading of `id` that satisfies `match`. */
  const firstReading = (id: string, message: string, match: (r: Reading) => boolean) =>
    waitFor(id, message, async () => (await readings(id)).find(match));

  beforeAll(async () => {
    gateway = await kind.startGateway({
      config: {
        alerts: {
          checkIntervalMs: CHECK_INTERVAL_MS,
          // a partial entry changes the default rule of that id; battery-low and offline stay the defaults
          rules: [{ id: "overdue", ...OVERDUE }, HOT_RULE],
        },
      },
    });
    sse = await connectSse(gateway.url, { topics: ["sensors/+/alert"] });
    flashDir = tempDir("alerts-fw-flash-");
    startedAt = Date.now();
    fleet = await startFleet({
      devices: IDS.length,
      brokerUrl: gateway.mqttUrl,
      seed: 23,
      timeScale: TIME_SCALE,
      flashDir,
      eraseFlash: true,
      settings: (i) => ({ DEVICE_ID: IDS[i], INTERVAL_S, AWAKE_MAX_S }),
      sensors: { temperature: (i) => (i === HOT_INDEX ? control.temperature : TEMP.normal) },
      battery: (i) => (i === BATT_INDEX ? control.battery : VOLTS.full),
      echo: (line) => {
        const id = /^\[([^\]]+)\]/.exec(line)?.[1];
        const lines = id ? logs.get(id) : undefined;
        if (lines) lines.push(line);
        if (lines && lines.length > 400) lines.splice(0, 200);
      },
    });
    fleet.on("publish", (e) => {
      if (!e.topic.endsWith("/telemetry")) return;
      const body = JSON.parse(e.payload.toString()) as { seq: number; readings: Record<string, number>; battery: number | null };
      const mine = published.get(e.device.id);
      if (mine && !mine.has(body.seq)) mine.set(body.seq, { readings: body.readings, battery: body.battery });
    });
  });

  afterAll(async () => {
    sse?.close();
    await fleet?.stop();
    await gateway?.close();
    if (flashDir) rmSync(flashDir, { recursive: true, force: true });
    if (fleet) assertFleetHealthy(fleet);
  });

  it.concurrent(
    "a temperature over the threshold fires the rule, resolves past the hysteresis, and the series has its buckets",
    async ({ expect }) => {
      const normal = await firstReading(HOT, "a normal reading", (r) => r.readings.temperature === TEMP.normal);
      expect(normal.timeSource).toBe("age");
      expect(await alerts(HOT, "all"), "no alert while the temperature is normal").toEqual([]);

      // over the threshold: the first reading above 30 fires the rule
      control.temperature = TEMP.hot;
      const hot = await firstReading(HOT, "a reading above 30", (r) => r.readings.temperature === TEMP.hot);
      const [fired] = await waitFor(HOT, "the threshold alert", async () => {
        const list = await alerts(HOT, "firing");
        return list.length > 0 ? list : undefined;
      });
      expect(fired).toMatchObject({
        ruleId: HOT_RULE.id,
        ruleName: HOT_RULE.name,
        kind: "threshold",
        severity: "critical",
        deviceId: HOT,
        topic: `sensors/${HOT}/telemetry`,
        metric: "temperature",
        state: "firing",
        value: TEMP.hot,
        threshold: HOT_RULE.above,
        resolvedAt: null,
      });
      expect(fired!.firedAt, "fired by the first reading above the threshold").toBe(hot.receivedAt);
      expect(fired!.message).toContain("temperature 31.25 above 30");
      await sse.waitFor(() => alertEvents(fired!.alertId).some((a) => a.state === "firing"), { timeoutMs: 10_000, message: "SSE alert firing" });
      expect(alertEvents(fired!.alertId).find((a) => a.state === "firing")).toEqual(fired);

      // back under 30 but inside the hysteresis band (> 28): still firing, not fired again
      control.temperature = TEMP.band;
      await firstReading(HOT, "a reading inside the band", (r) => r.readings.temperature === TEMP.band);
      expect((await alerts(HOT, "all")).map((a) => [a.alertId, a.state])).toEqual([[fired!.alertId, "firing"]]);

      // past the band: the first reading at or below 28 resolves it
      control.temperature = TEMP.cool;
      const cool = await firstReading(HOT, "a reading below the band", (r) => r.readings.temperature === TEMP.cool);
      const [resolved] = await waitFor(HOT, "the threshold alert resolved", async () => {
        const list = await alerts(HOT, "resolved");
        return list.length > 0 ? list : undefined;
      });
      expect(resolved).toMatchObject({ alertId: fired!.alertId, state: "resolved", firedAt: fired!.firedAt, resolvedAt: cool.receivedAt });
      expect(await alerts(HOT, "firing")).toEqual([]);
      await sse.waitFor(() => alertEvents(fired!.alertId).some((a) => a.state === "resolved"), { timeoutMs: 10_000, message: "SSE alert resolved" });
      expect(alertEvents(fired!.alertId).find((a) => a.state === "resolved")).toEqual(resolved);
      // the stream carries alert events only (topic filter sensors/+/alert), each on the device's alert topic
      expect(sse.events.every((e) => e.event === "alert" && e.json.deviceId && IDS.includes(e.json.deviceId))).toBe(true);

      // Series: the raw points are the readings the device published; the 1-minute buckets summarise exactly them.
      const from = Math.floor(startedAt / STEP_1M) * STEP_1M - STEP_1M;
      const to = Date.now() + STEP_1M;
      const q = `/api/devices/${HOT}/series?metric=temperature&from=${from}&to=${to}`;
      // the device keeps sending: take raw and buckets between two equal raw answers
      const { raw, minute, hour } = await waitFor(HOT, "a consistent series snapshot", async () => {
        const before = await getJson<Series<RawPoint>>(api(`${q}&step=raw`));
        const minute = await getJson<Series<BucketPoint>>(api(`${q}&step=1m`));
        const hour = await getJson<Series<BucketPoint>>(api(`${q}&step=1h`));
        const after = await getJson<Series<RawPoint>>(api(`${q}&step=raw`));
        return JSON.stringify(before) === JSON.stringify(after) ? { raw: after, minute, hour } : undefined;
      });
      expect(raw).toMatchObject({ deviceId: HOT, metric: "temperature", step: "raw" });
      expect(minute.step).toBe("1m");
      const sent = published.get(HOT)!;
      expect(raw.points.map((p) => p.seq), "every reading, in order").toEqual(raw.points.map((_, i) => i + 1));
      for (const p of raw.points) expect(p.value, `seq ${p.seq}`).toBe(sent.get(p.seq)?.readings.temperature);
      const values = new Set(raw.points.map((p) => p.value));
      for (const v of Object.values(TEMP)) expect(values.has(v), `a reading of ${v} °C`).toBe(true);

      const expected = bucketsOf(raw.points, STEP_1M);
      expect(minute.points.map(({ mean, ...b }) => b)).toEqual(expected.map(({ mean, ...b }) => b));
      minute.points.forEach((b, i) => expect(b.mean).toBeCloseTo(expected[i]!.mean, 9));
      expect(minute.points.reduce((n, b) => n + b.count, 0)).toBe(raw.points.length);
      expect(Math.max(...minute.points.map((b) => b.max))).toBe(TEMP.hot);
      expect(Math.min(...minute.points.map((b) => b.min))).toBe(TEMP.normal);
      expect(hour.points.map(({ mean, ...b }) => b)).toEqual(bucketsOf(raw.points, 60 * STEP_1M).map(({ mean, ...b }) => b));
      // step=auto: a few dozen readings → raw (the finest step within 1,500 points)
      expect((await getJson<Series<RawPoint>>(api(`${q}&step=auto`))).step).toBe("raw");
    },
    150_000,
  );

  it.concurrent(
    "a device kept off the network goes overdue by the gateway's clock, and its next report resolves it",
    async ({ expect }) => {
      const asleep = await waitFor(LATE, "a sleeping status", async () => {
        const d = await device(LATE);
        return d?.status === "sleeping" && d.nextWakeAt !== null && (await readings(LATE)).length > 0 ? d : undefined;
      });
      expect(asleep.nextWakeAt!).toBeGreaterThan(asleep.statusAt);
      expect(await alerts(LATE, "all"), "a device that wakes on time is not overdue").toEqual([]);

      // from its next boot on, Wi-Fi association fails: it measures, stores and sleeps, and never reports
      fleet.setFaults({ wifiFail: 1 }, LATE_INDEX);
      const faultAt = Date.now();
      const [fired] = await waitFor(LATE, "the overdue alert", async () => {
        const list = await alerts(LATE, "firing");
        return list.length > 0 ? list : undefined;
      });
      const view = (await device(LATE))!;
      expect(view.status, "GET /api/devices while overdue").toBe("overdue");
      expect(fired).toMatchObject({
        ruleId: "overdue",
        kind: "overdue",
        deviceId: LATE,
        topic: `sensors/${LATE}/status`,
        metric: null,
        value: null,
        threshold: null,
        state: "firing",
        resolvedAt: null,
      });
      // the last sleeping status said when to expect it; the clock fired once sleepMs × 1.5 + 2 s had passed
      const sleepMs = view.nextWakeAt! - view.statusAt;
      const dueBy = view.statusAt + sleepMs * OVERDUE.factor + OVERDUE.graceS * 1000;
      expect(fired!.firedAt).toBeGreaterThan(dueBy);
      expect(fired!.firedAt - dueBy, "fired by the timer, within a few check intervals").toBeLessThan(CHECK_INTERVAL_MS + 1500);
      expect(view.lastSeen, "nothing arrived after its last sleeping status").toBe(view.statusAt);
      expect(fired!.firedAt - faultAt, "overdue only after the fault").toBeGreaterThan(OVERDUE.graceS * 1000);
      expect(fleet.faultLog.some((f) => f.deviceIndex === LATE_INDEX && f.kind === "wifi-fail"), "Wi-Fi failed").toBe(true);
      await sse.waitFor(() => alertEvents(fired!.alertId).some((a) => a.state === "firing"), { timeoutMs: 10_000, message: "SSE overdue firing" });
      expect(alertEvents(fired!.alertId)[0]).toEqual(fired);
      const storedBefore = (await readings(LATE)).length;

      // Wi-Fi back: the next boot reports, which resolves the alert; the readings taken meanwhile follow
      fleet.setFaults({ wifiFail: 0 }, LATE_INDEX);
      const [resolved] = await waitFor(LATE, "the overdue alert resolved", async () => {
        const list = await alerts(LATE, "resolved");
        return list.length > 0 ? list : undefined;
      });
      expect(resolved).toMatchObject({ alertId: fired!.alertId, state: "resolved", firedAt: fired!.firedAt });
      expect(resolved!.resolvedAt!).toBeGreaterThan(fired!.firedAt);
      const back = (await device(LATE))!;
      expect(["online", "sleeping"], `status after the report: ${back.status}`).toContain(back.status);
      expect(back.lastSeen!).toBeGreaterThanOrEqual(resolved!.resolvedAt!);
      await sse.waitFor(() => alertEvents(fired!.alertId).some((a) => a.state === "resolved"), { timeoutMs: 10_000, message: "SSE overdue resolved" });
      expect(alertEvents(fired!.alertId).find((a) => a.state === "resolved")).toEqual(resolved);
      // taken before the alert fired, delivered after it resolved: a reading of a wake without network
      const offline = await firstReading(LATE, "a reading taken while off the network", (r) => r.t < fired!.firedAt && r.receivedAt >= resolved!.resolvedAt!);
      // (dated by its age on the device clock, which counts each deep sleep in full: the simulator sleeps 50× faster,
      // so such a reading's `t` lies further back than the real moment; docs/protocol.md "Reading time")
      expect(offline.timeSource).toBe("age");
      expect(offline.seq).toBeGreaterThan(Math.max(...(await readings(LATE)).filter((r) => r.receivedAt < fired!.firedAt).map((r) => r.seq)));
      expect((await readings(LATE)).length).toBeGreaterThan(storedBefore);

      // the other devices woke on time all along: no overdue alert for them, no Last Will for anyone
      const all = (await getJson<{ alerts: AlertData[] }>(api("/api/alerts?state=all"))).alerts;
      expect(all.filter((a) => a.kind === "overdue").map((a) => a.deviceId)).toEqual([LATE]);
      expect(all.filter((a) => a.kind === "offline")).toEqual([]);
    },
    150_000,
  );

  it.concurrent(
    "a battery dropping below 3.4 V fires the default battery-low rule; recovered past its hysteresis it resolves",
    async ({ expect }) => {
      const full = await firstReading(BATT, "a reading at full battery", (r) => r.battery !== null);
      expect(full.battery).toBeCloseTo(VOLTS.full, 2);
      expect(await alerts(BATT, "all")).toEqual([]);

      control.battery = VOLTS.low; // under battery-low's 3.4 V, above the firmware's LOW_BATT_V (3.3 V): it still reports
      const low = await firstReading(BATT, "a reading below 3.4 V", (r) => r.battery !== null && r.battery < 3.4);
      expect(low.battery).toBeCloseTo(VOLTS.low, 2);
      const [fired] = await waitFor(BATT, "the battery-low alert", async () => {
        const list = await alerts(BATT, "firing");
        return list.length > 0 ? list : undefined;
      });
      expect(fired).toMatchObject({
        ruleId: "battery-low",
        kind: "battery",
        deviceId: BATT,
        topic: `sensors/${BATT}/telemetry`,
        metric: "battery",
        state: "firing",
        value: low.battery,
        threshold: 3.4,
        firedAt: low.receivedAt,
      });
      await sse.waitFor(() => alertEvents(fired!.alertId).some((a) => a.state === "firing"), { timeoutMs: 10_000, message: "SSE battery firing" });
      expect(alertEvents(fired!.alertId)[0]).toEqual(fired);

      control.battery = VOLTS.recovered; // ≥ 3.4 + 0.1
      const recovered = await firstReading(BATT, "a reading after recovery", (r) => r.seq > low.seq && r.battery !== null && r.battery >= 3.5);
      expect(recovered.battery).toBeCloseTo(VOLTS.recovered, 2);
      const [resolved] = await waitFor(BATT, "the battery-low alert resolved", async () => {
        const list = await alerts(BATT, "resolved");
        return list.length > 0 ? list : undefined;
      });
      expect(resolved).toMatchObject({ alertId: fired!.alertId, state: "resolved", resolvedAt: recovered.receivedAt });
      await sse.waitFor(() => alertEvents(fired!.alertId).some((a) => a.state === "resolved"), { timeoutMs: 10_000, message: "SSE battery resolved" });

      // battery is a summarised metric too
      const q = `/api/devices/${BATT}/series?metric=battery&step=1m&from=${startedAt - 2 * STEP_1M}&to=${Date.now() + STEP_1M}`;
      const minute = await getJson<Series<BucketPoint>>(api(q));
      expect(Math.min(...minute.points.map((b) => b.min))).toBeCloseTo(VOLTS.low, 2);
      expect(Math.max(...minute.points.map((b) => b.max))).toBeCloseTo(VOLTS.full, 2);
      expect(minute.points.reduce((n, b) => n + b.count, 0)).toBeGreaterThanOrEqual(3);
      // only batt-1 ran low
      const all = (await getJson<{ alerts: AlertData[] }>(api("/api/alerts?state=all"))).alerts;
      expect(all.filter((a) => a.kind === "battery").map((a) => a.deviceId)).toEqual([BATT]);
      expect(all.filter((a) => a.kind === "threshold").every((a) => a.deviceId === HOT)).toBe(true);
    },
    150_000,
  );
});
