/**
 * Summaries through the real gateway: readings published over MQTT (with their own reading times, one of them
 * late) → buckets per 1m/1h/1d equal to what a plain grouping of the published readings gives; `summary` SSE
 * events with ids, filters and resume; the series API's steps; the rebuild from raw events gives the same
 * buckets; CSV export; device names.
 */
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { connectSse } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";

const DAY = 86_400_000;
const STEPS = { "1m": 60_000, "1h": 3_600_000, "1d": DAY } as const;
type Step = keyof typeof STEPS;

interface Sent {
  seq: number;
  t: number;
  temperature: number;
  battery: number;
}

/** What the buckets must be: plain grouping of what was published, in publish order for `last` ties. */
function expectedBuckets(sent: Sent[], metric: "temperature" | "battery", step: Step) {
  const groups = new Map<number, Sent[]>();
  for (const s of sent) {
    const start = Math.floor(s.t / STEPS[step]) * STEPS[step];
    groups.set(start, [...(groups.get(start) ?? []), s]);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => a - b)
    .map(([t, g]) => {
      const values = g.map((s) => s[metric]);
      const last = [...g].sort((a, b) => a.t - b.t || a.seq - b.seq).at(-1)![metric];
      const sum = values.reduce((a, b) => a + b, 0);
      return { t, count: g.length, min: Math.min(...values), max: Math.max(...values), mean: sum / g.length, last };
    });
}

const getJson = async (url: string, init?: RequestInit) => {
  const res = await fetch(url, init);
  return { status: res.status, body: (await res.json()) as any };
};

describe("summaries", () => {
  let gw: TestGateway;
  let pub: mqtt.MqttClient;
  const device = "sum-1";
  const now = Date.now();
  // 3 hours of readings every 50 s, ending 10 minutes ago; temperatures and batteries that vary
  const sent: Sent[] = Array.from({ length: 216 }, (_, i) => ({
    seq: i + 1,
    t: now - 10 * 60_000 - (215 - i) * 50_000,
    temperature: Math.round((20 + 5 * Math.sin(i / 7) + (i % 3) * 0.1) * 100) / 100,
    battery: Math.round((4.1 - i * 0.001) * 1000) / 1000,
  }));
  const late: Sent = { seq: 217, t: sent[10]!.t + 1_000, temperature: 99.5, battery: 3.9 };

  const publish = (s: Sent) =>
    pub.publishAsync(
      `sensors/${device}/telemetry`,
      JSON.stringify({ v: 1, seq: s.seq, boot: 1, t: s.t, readings: { temperature: s.temperature }, battery: s.battery }),
      { qos: 1 },
    );
  const series = (q: string) => getJson(`${gw.url}/api/devices/${device}/series?${q}`);

  beforeAll(async () => {
    gw = await startTestGateway({ config: { summaries: { coalesceMs: 100 }, alerts: { rules: [{ id: "battery-low", enabled: false }] } } });
    pub = await mqtt.connectAsync(gw.mqttUrl, { clientId: "sum-pub", reconnectPeriod: 0 });
  });
  afterAll(async () => {
    await pub?.endAsync();
    await gw?.close();
  });

  test("every bucket equals a plain grouping of the readings, a late reading included in its old bucket", async () => {
    const sse = await connectSse(gw.url, { topics: [`sensors/${device}/summary`] });
    for (const s of sent) await publish(s);
    await publish(late);
    const all = [...sent, late];
    const from = now - DAY;
    await waitUntil(async () => (await series(`metric=temperature&step=raw&from=${from}`)).body.points.length === all.length, {
      message: "every reading stored",
    });
    for (const step of ["1m", "1h", "1d"] as const) {
      for (const metric of ["temperature", "battery"] as const) {
        const { body } = await series(`metric=${metric}&step=${step}&from=${from}&to=${now}`);
        expect(body.step).toBe(step);
        expect(body.points, `${metric} ${step}`).toEqual(expectedBuckets(all, metric, step).filter((b) => b.t + STEPS[step] > from));
      }
    }
    // the late reading's old minute: two readings now, and its max
    const minute = Math.floor(late.t / 60_000) * 60_000;
    const { body } = await series(`metric=temperature&step=1m&from=${minute}&to=${minute}`);
    const withoutLate = expectedBuckets(sent, "temperature", "1m").find((b) => b.t === minute)!;
    expect(body.points).toEqual([expect.objectContaining({ t: minute, count: withoutLate.count + 1, max: 99.5 })]);

    // summary events: coalesced per device, each bucket as it is now; the last one seen for a bucket is the API's
    await sse.waitFor((events) => events.some((e) => e.json.buckets.some((b: any) => b.step === "1m" && b.start === minute && b.max === 99.5)), {
      message: "a summary event with the late reading's bucket",
    });
    expect(new Set(sse.events.map((e) => e.event))).toEqual(new Set(["summary"]));
    expect(sse.events.length).toBeLessThan(all.length); // coalesced, not one per reading
    const ids = sse.events.map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    const latest = new Map<string, any>();
    for (const e of sse.events) for (const b of e.json.buckets) latest.set(`${b.metric}/${b.step}/${b.start}`, b);
    const hour = await series(`metric=temperature&step=1h&from=${from}`);
    for (const p of hour.body.points) {
      expect(latest.get(`temperature/1h/${p.t}`), `hour ${p.t}`).toMatchObject({ count: p.count, min: p.min, max: p.max, last: p.last });
    }
    sse.close();

    // resume from the first summary event: the rest again, nothing else, in order
    const resumed = await connectSse(gw.url, { topics: [`sensors/${device}/summary`], lastEventId: ids[0] });
    await resumed.waitForEvents(ids.length - 1);
    expect(resumed.events.map((e) => Number(e.id))).toEqual(ids.slice(1));
    resumed.close();
  });

  test("step=auto: raw when few, buckets beyond about 1,500 points or past raw retention; bad queries are 400", async () => {
    const from = now - DAY;
    expect((await series(`metric=temperature&from=${from}`)).body.step).toBe("raw");
    // 1,600 readings in a day (every 50 s) are more than auto returns raw: one-minute buckets (1,334 of them)
    const busy = "sum-busy";
    for (let seq = 1; seq <= 1600; seq++) {
      const body = { v: 1, seq, boot: 1, t: now - (1600 - seq) * 50_000, readings: { temperature: seq % 40 }, battery: null };
      await pub.publishAsync(`sensors/${busy}/telemetry`, JSON.stringify(body), { qos: 1 });
    }
    const busySeries = () => getJson(`${gw.url}/api/devices/${busy}/series?metric=temperature&from=${from}&to=${now}`);
    await waitUntil(async () => ((await getJson(`${gw.url}/api/devices`)).body.devices.find((d: any) => d.deviceId === busy)?.lastReading?.seq ?? 0) === 1600);
    const auto = (await busySeries()).body;
    expect(auto.step).toBe("1m");
    expect(auto.points.length).toBeLessThanOrEqual(1500);
    expect(auto.points.reduce((n: number, p: any) => n + p.count, 0)).toBe(1600);
    // retention has deleted no reading: raw history is complete however far back, and 217 readings are few
    expect((await series(`metric=temperature&from=${now - 300 * DAY}`)).body.step).toBe("raw");
    // the busy device has too many for raw: 30 days by the client's clock still counts as inside 1m retention;
    // well past it (32 days): 1h; past 1h retention (2 years): 1d
    const busyStep = async (back: number) => (await getJson(`${gw.url}/api/devices/${busy}/series?metric=temperature&from=${now - back}`)).body.step;
    expect(await busyStep(30 * DAY)).toBe("1m");
    expect(await busyStep(32 * DAY)).toBe("1h");
    expect(await busyStep(3 * 365 * DAY)).toBe("1d");
    for (const q of ["metric=Temp", "metric=temperature&step=5m", "metric=temperature&from=-1", "metric=temperature&from=10&to=5"]) {
      const r = await series(q);
      expect(r.status, q).toBe(400);
      expect(r.body.error.code, q).toBe("invalid_query");
    }
    const many = await series(`metric=temperature&step=1m&from=0&to=${now + 30 * DAY}`);
    expect(many.status).toBe(200); // 217 buckets: what is there counts, not the span
  });

  test("rebuild from raw events gives exactly the incremental buckets", async () => {
    const read = async () => {
      const out: unknown[] = [];
      for (const step of ["1m", "1h", "1d"]) {
        for (const metric of ["temperature", "battery"]) out.push((await series(`metric=${metric}&step=${step}&from=0&to=${now}`)).body.points);
      }
      return out;
    };
    const before = await read();
    const rebuilt = await getJson(`${gw.url}/api/summaries/rebuild`, { method: "POST" });
    expect(rebuilt.status).toBe(200);
    // every bucket there is: as many as the series API shows for both devices, each value and width
    let buckets = 0;
    for (const [id, metrics] of [[device, ["temperature", "battery"]], ["sum-busy", ["temperature"]]] as const) {
      for (const step of ["1m", "1h", "1d"]) {
        for (const metric of metrics) buckets += (await getJson(`${gw.url}/api/devices/${id}/series?metric=${metric}&step=${step}&from=0&to=${now}`)).body.points.length;
      }
    }
    expect(rebuilt.body).toMatchObject({ from: 0, buckets });
    expect(await read()).toEqual(before);
  });

  test("CSV export: raw values and buckets of the range, streamed with a header", async () => {
    const res = await fetch(`${gw.url}/api/export.csv?device=${device}&from=0&to=${now}`);
    expect(res.headers.get("content-type")).toMatch(/^text\/csv/);
    expect(res.headers.get("content-disposition")).toMatch(/attachment; filename="sensors-sum-1-raw.csv"/);
    const lines = (await res.text()).trim().split("\n");
    expect(lines[0]).toBe("time,t,device_id,device_name,seq,metric,value");
    expect(lines.length - 1).toBe(217 * 2);
    const first = sent[0]!;
    expect(lines[1]).toBe(`${new Date(first.t).toISOString()},${first.t},${device},,1,temperature,${first.temperature}`);
    const hours = (await (await fetch(`${gw.url}/api/export.csv?device=${device}&step=1h&metric=battery&from=0&to=${now}`)).text()).trim().split("\n");
    expect(hours[0]).toBe("time,t,device_id,device_name,step,metric,count,min,max,mean,last");
    expect(hours.slice(1).reduce((n, l) => n + Number(l.split(",")[6]), 0)).toBe(217);
    expect((await fetch(`${gw.url}/api/export.csv?step=2h`)).status).toBe(400);
  });

  test("a device gets a name and a location (PATCH), streamed as a `device` event, shown in the device list and the CSV", async () => {
    const sse = await connectSse(gw.url, { topics: [`sensors/${device}/device`] });
    const patch = (body: unknown) =>
      getJson(`${gw.url}/api/devices/${device}`, { method: "PATCH", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const ok = await patch({ name: "  Cellar, north =wall ", location: "Basement" });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ deviceId: device, name: "Cellar, north =wall", location: "Basement" });
    const [event] = await sse.waitForEvents(1);
    expect(event!.json).toMatchObject({ deviceId: device, name: "Cellar, north =wall", location: "Basement" });
    expect((await patch({ location: null })).body).toMatchObject({ name: "Cellar, north =wall", location: null });
    expect((await patch({ name: "x".repeat(65) })).body.error.code).toBe("invalid_device");
    expect((await getJson(`${gw.url}/api/devices/nobody-here`, { method: "PATCH", body: "{}" })).status).toBe(404);
    const list = (await getJson(`${gw.url}/api/devices`)).body.devices;
    expect(list.find((d: any) => d.deviceId === device)).toMatchObject({ name: "Cellar, north =wall", location: null });
    const csv = (await (await fetch(`${gw.url}/api/export.csv?device=${device}&step=1d&metric=battery&from=0&to=${now}`)).text()).split("\n");
    expect(csv[1]).toContain(`,${device},"Cellar, north =wall",1d,battery,`);
    sse.close();
  });
});
