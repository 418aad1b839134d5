/**
 * Issue 2: the whole path with real parts. The compiled firmware runs in the simulator (3 devices), publishes
 * over MQTT to a real broker (the gateway's embedded aedes, or Debian's Mosquitto), the gateway relays to SSE,
 * and an SSE client (eventsource-parser) sees telemetry from every device with valid payloads and rising seq.
 */
import { afterEach, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../../simulator/src/index.ts";
import { brokerKinds } from "../gateway/broker-kinds.ts";
import { connectSse, type SseClient } from "../helpers/sse.ts";
import type { TestGateway } from "../helpers/gateway.ts";
import { tempDir } from "../helpers/gateway.ts";

const DEVICES = 3;
const READINGS_PER_DEVICE = 3;

/** The telemetry event contract of docs/protocol.md, checked independently of the gateway's own schema. */
function expectValidTelemetry(data: any, deviceIds: string[]): void {
  expect(deviceIds).toContain(data.deviceId);
  expect(data.topic).toBe(`sensors/${data.deviceId}/telemetry`);
  expect(Number.isInteger(data.seq) && data.seq >= 0).toBe(true);
  expect(Number.isInteger(data.boot) && data.boot >= 0).toBe(true);
  // The reading time: always a number, with how the gateway got it (docs/protocol.md "Reading time").
  expect(Number.isInteger(data.t)).toBe(true);
  expect(["device", "age", "received"]).toContain(data.timeSource);
  expect(data.age === null || (Number.isInteger(data.age) && data.age >= 0)).toBe(true);
  if (data.timeSource === "age") expect(data.t).toBe(data.receivedAt - data.age);
  if (data.timeSource === "received") expect(data.t).toBe(data.receivedAt);
  expect(Number.isFinite(data.receivedAt)).toBe(true);
  expect(typeof data.readings.temperature).toBe("number");
  expect(typeof data.readings.humidity).toBe("number");
  expect(data.readings.temperature).toBeGreaterThan(-40);
  expect(data.readings.temperature).toBeLessThan(85);
  expect(data.readings.humidity).toBeGreaterThanOrEqual(0);
  expect(data.readings.humidity).toBeLessThanOrEqual(100);
}

describe.each(brokerKinds())("firmware → $name broker → gateway → SSE", (kind) => {
  let gateway: TestGateway | undefined;
  let fleet: Fleet | undefined;
  let sse: SseClient | undefined;

  afterEach(async () => {
    sse?.close();
    await fleet?.stop();
    await gateway?.close();
  });

  it(`streams telemetry from ${DEVICES} simulated devices, valid and with rising seq`, async () => {
    gateway = await kind.startGateway();
    sse = await connectSse(gateway.url, { topics: ["sensors/+/telemetry"] });
    fleet = await startFleet({
      devices: DEVICES,
      brokerUrl: gateway.mqttUrl,
      seed: 7,
      timeScale: 20,
      flashDir: tempDir("e2e-flash-"),
      eraseFlash: true,
      settings: { INTERVAL_S: 10 },
    });
    const ids = fleet.devices.map((d) => d.id);
    expect(new Set(ids).size).toBe(DEVICES);

    const enough = () => {
      const perDevice = new Map<string, number>();
      for (const e of sse!.events) if (e.event === "telemetry") perDevice.set(e.json.deviceId, (perDevice.get(e.json.deviceId) ?? 0) + 1);
      return ids.every((id) => (perDevice.get(id) ?? 0) >= READINGS_PER_DEVICE);
    };
    await sse.waitFor(enough, { timeoutMs: 90_000, message: `${READINGS_PER_DEVICE} readings from each device` });

    const telemetry = sse.events.filter((e) => e.event === "telemetry");
    let lastEventId = 0;
    const lastSeq = new Map<string, number>();
    for (const e of telemetry) {
      expectValidTelemetry(e.json, ids);
      // event ids rise gateway-wide; seq rises per device (the gateway de-duplicates on (device, seq))
      expect(Number(e.id)).toBeGreaterThan(lastEventId);
      lastEventId = Number(e.id);
      const previous = lastSeq.get(e.json.deviceId);
      if (previous !== undefined) expect(e.json.seq).toBeGreaterThan(previous);
      lastSeq.set(e.json.deviceId, e.json.seq);
    }
  });
});
