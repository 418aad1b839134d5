/**
 * The flash outbox at its limits: a broker that stays away for more than 64 wakes (ring full: oldest
 * dropped and counted), and an entry damaged in the flash image (skipped, counted, no crash loop).
 */
import { afterEach, describe, expect, test } from "vitest";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../helpers/ports.ts";
import { observe, startBroker, until, type Received } from "./helpers/broker.ts";
import { runFirmware } from "./helpers/fleet.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempFlash(): string {
  const dir = mkdtempSync(join(tmpdir(), "fw-outbox-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the device with no broker listening until it has stored `readings` readings. */
async function offlineWakes(flashDir: string, readings: number) {
  const port = await freePort(); // nothing listens there
  const run = await runFirmware({ port, flashDir, timeScale: 1000, settings: { INTERVAL_S: 5, AWAKE_MAX_S: 1 } });
  let standbys = 0;
  run.fleet.on("standby", () => standbys++);
  await until(`${readings} offline wakes`, () => standbys >= readings, 300_000);
  const id = run.fleet.devices[0]!.id;
  await run.stop();
  return id;
}

function telemetry(messages: Received[], id: string) {
  return messages.filter((m) => m.topic === `sensors/${id}/telemetry`).map((m) => m.body);
}

describe("flash outbox", () => {
  test("a damaged entry is skipped and reported as corrupt; the others are delivered", async () => {
    const flashDir = tempFlash();
    const id = await offlineWakes(flashDir, 3);
    // flip one digit inside reading 2's record ([[seq,boot,...values],checksum]): still JSON, checksum wrong
    const [file] = readdirSync(flashDir).filter((f) => f.endsWith(".flash"));
    const path = join(flashDir, file!);
    const image = readFileSync(path);
    const marker = Buffer.from("[[2,2,");
    let at = image.indexOf(marker);
    expect(at).toBeGreaterThanOrEqual(0);
    for (; at >= 0; at = image.indexOf(marker, at + 1)) {
      const end = image.indexOf(Buffer.from("],"), at);
      const digit = image[end - 1]!;
      expect(digit >= 0x30 && digit <= 0x39).toBe(true);
      image[end - 1] = digit === 0x39 ? 0x30 : digit + 1;
    }
    writeFileSync(path, image);

    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const obs = await observe(broker.port);
    cleanups.push(() => obs.client.endAsync());
    const run = await runFirmware({ port: broker.port, flashDir, timeScale: 200, settings: { INTERVAL_S: 5, AWAKE_MAX_S: 20 } });
    cleanups.push(() => run.stop());
    await until("readings 1, 3, 4 and 5", () => telemetry(obs.messages, id).length >= 4);
    const bodies = telemetry(obs.messages, id);
    expect(bodies.map((b) => b.seq).slice(0, 4)).toEqual([1, 3, 4, 5]);
    expect(bodies.find((b) => b.seq === 4)!.corrupt).toBe(1); // counted once, in the next reading
    expect(bodies.find((b) => b.seq === 5)!.corrupt).toBe(0); // the damaged slot was removed
    expect(run.logs.join("\n")).toMatch(/checksum mismatch; entry skipped/);
  });

  test(
    "broker away for 66 wakes: the ring keeps the newest 64, drops the oldest and reports how many",
    async () => {
      const flashDir = tempFlash();
      const id = await offlineWakes(flashDir, 66);
      const broker = await startBroker();
      cleanups.push(() => broker.close());
      const obs = await observe(broker.port);
      cleanups.push(() => obs.client.endAsync());
      const run = await runFirmware({ port: broker.port, flashDir, timeScale: 200, settings: { INTERVAL_S: 5, AWAKE_MAX_S: 20 } });
      cleanups.push(() => run.stop());
      // 66 stored offline + 1 on this wake = 67; the 3 oldest did not fit into 64 slots
      await until("64 readings", () => telemetry(obs.messages, id).length >= 64, 60_000);
      const bodies = telemetry(obs.messages, id);
      expect(bodies.map((b) => b.seq).slice(0, 64)).toEqual(Array.from({ length: 64 }, (_, i) => i + 4));
      const dropped = bodies.slice(0, 64).reduce((n, b) => n + b.dropped, 0);
      expect(dropped).toBe(3);
    },
    400_000,
  );
});
