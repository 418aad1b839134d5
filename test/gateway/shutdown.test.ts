/**
 * A graceful shutdown loses nothing a device was told is safe. The gateway stops taking MQTT messages before
 * it stops storing events, and a message it cannot store is left unacknowledged, so the broker keeps it for
 * the next start. (The reshape once closed the store first: every reading in the shutdown window was
 * acknowledged and dropped.)
 */
import mqtt from "mqtt";
import { createConnection } from "node:net";
import { rmSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { startTestGateway, tempDir, type TestGateway } from "../helpers/gateway.ts";
import { waitUntil } from "../helpers/wait.ts";

const dirs: string[] = [];
const gateways: TestGateway[] = [];
afterEach(async () => {
  for (const gw of gateways.splice(0)) await gw.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function storedSeqs(gw: TestGateway): Promise<Set<number>> {
  const res = await fetch(`${gw.url}/api/devices/dev1/readings?limit=1000`);
  const body = (await res.json()) as { readings: Array<{ seq: number }> };
  return new Set(body.readings.map((r) => r.seq));
}

describe("graceful shutdown", () => {
  it("stores, after the restart, every reading the broker acknowledged while the gateway was closing", async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const gw = await startTestGateway({ dataDir, config: { mqtt: { clientId: "gw-shutdown" } } });
    const mqttPort = Number(new URL(gw.mqttUrl).port);
    // A request whose headers never finish keeps the HTTP server closing for its 2 s grace period, while
    // the broker still takes readings: the window in which a reading could be acknowledged and lost.
    const stuck = createConnection(gw.port, "127.0.0.1");
    stuck.on("error", () => {});
    stuck.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");

    const device = await mqtt.connectAsync(gw.mqttUrl, { clientId: "dev1", clean: false, reconnectPeriod: 0 });
    device.on("error", () => {});
    const acked = new Set<number>();
    let stop = false;
    // A persistent session keeps a publish that was in flight when the broker went away for the next connection:
    // mqtt.js never settles it, so the connection's end is what ends the loop.
    const gone = new Promise<false>((resolve) => device.once("close", () => resolve(false)));
    const publishing = (async () => {
      for (let seq = 1; !stop; seq++) {
        const payload = JSON.stringify({ v: 1, seq, boot: 1, t: null, readings: { temperature: seq }, battery: null });
        try {
          const ok = await Promise.race([device.publishAsync("sensors/dev1/telemetry", payload, { qos: 1 }).then(() => true), gone]);
          if (!ok) return; // the broker went away with the gateway
          acked.add(seq);
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 5)); // pacing: a few hundred readings fit one readings page
      }
    })();
    await waitUntil(async () => (await storedSeqs(gw)).size >= 20, { message: "readings flowing before the shutdown" });
    const ackedBeforeClose = acked.size;
    await gw.close();
    stop = true;
    await publishing;
    stuck.destroy();
    await device.endAsync(true).catch(() => {});
    expect(acked.size, "readings acknowledged during the shutdown window").toBeGreaterThan(ackedBeforeClose);

    const again = await startTestGateway({ dataDir, config: { mqtt: { port: mqttPort, clientId: "gw-shutdown" } } });
    gateways.push(again);
    const missing = await waitUntil(
      async () => {
        const stored = await storedSeqs(again);
        const lost = [...acked].filter((s) => !stored.has(s));
        return lost.length === 0 ? lost : undefined;
      },
      { timeoutMs: 15_000, message: `every acknowledged reading (${acked.size}) stored after the restart` },
    );
    expect(missing).toEqual([]);
    expect(acked.size).toBeLessThan(1000); // all of them fit the one page read above
  });
});
