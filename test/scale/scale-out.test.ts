/**
 * Issue 12 "Proof": what users run for several gateway processes, on loopback. The compiled `server.js
 * --workers 3` (its embedded broker, three workers in Redis mode on one redis-server with AOF + fsync per write),
 * Debian's nginx with the shipped config rendered for the three workers, devices running the compiled firmware
 * in the simulator, and one SSE client through nginx that behaves like EventSource (reconnects with
 * Last-Event-ID when its stream ends).
 * - kill -9 the worker serving the stream mid-stream: the client resumes through nginx on another process;
 * - kill -9 Redis and restart it on the same AOF: nothing lost, no id reused;
 * and over the whole run every reading the devices sent arrives exactly once (by device, seq), with ids
 * strictly increasing. Not covered: a second broker node (the embedded broker is one process; failover between
 * brokers is test/gateway/failover*).
 */
import { mkdtempSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../../simulator/src/index.ts";
import { redisAvailable, startRedis, type RunningRedis } from "../helpers/redis.ts";
import { connectSse, type SseClient } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";
import { startCompiledWorkers, type CompiledWorkers } from "./compiled-gateway.ts";
import { nginxAvailable, startNginx, type RunningNginx } from "./nginx.ts";

const WORKERS = 3;
const ready = redisAvailable() && nginxAvailable();

interface Reading {
  id: number;
  deviceId: string;
  seq: number;
}

/** An SSE reader through nginx that reconnects with Last-Event-ID whenever its stream ends, as EventSource does. */
class ResumingReader {
  readonly readings: Reading[] = [];
  /** The instance (X-Gateway-Instance) of each stream it opened, in order. */
  readonly instances: string[] = [];
  private current: SseClient | undefined;
  private stopped = false;
  private lastId: number | undefined;
  readonly done: Promise<void>;

  constructor(private readonly url: string, private readonly token: string) {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let sse: SseClient;
      try {
        sse = await connectSse(this.url, { topics: ["sensors/+/telemetry"], token: this.token, lastEventId: this.lastId });
      } catch {
        await new Promise((r) => setTimeout(r, 200)); // EventSource's retry: nginx answered 502, or no worker yet
        continue;
      }
      this.current = sse;
      this.instances.push(sse.response.headers.get("x-gateway-instance") ?? "(none)");
      let taken = 0;
      const take = () => {
        for (const e of sse.events.slice(taken)) {
          if (e.event !== "telemetry") continue;
          this.lastId = Number(e.id);
          this.readings.push({ id: Number(e.id), deviceId: e.json.deviceId, seq: e.json.seq });
        }
        taken = sse.events.length;
      };
      while (!this.stopped) {
        take();
        const ended = await Promise.race([sse.ended.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 50))]);
        if (ended) break;
      }
      take();
      sse.close();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.close();
    await this.done;
  }
}

describe.skipIf(!ready)(`server.js --workers ${WORKERS} behind nginx, on Redis, with firmware devices`, () => {
  let redis: RunningRedis;
  let workers: CompiledWorkers;
  let proxy: RunningNginx;
  let fleet: Fleet;
  let reader: ResumingReader;
  /** (device, seq) of every telemetry PUBLISH a device sent (re-sends included once). */
  const sent = new Set<string>();
  const healthy = async (port: number) => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200;

  beforeAll(async () => {
    redis = await startRedis();
    workers = await startCompiledWorkers(WORKERS, redis.url);
    proxy = await startNginx({ gateways: workers.ports.map((p) => `127.0.0.1:${p}`) });
    reader = new ResumingReader(proxy.url, workers.adminToken);
    fleet = await startFleet({
      devices: 3,
      brokerUrl: workers.mqttUrl,
      seed: 12,
      timeScale: 20,
      flashDir: mkdtempSync(join(tmpdir(), "scale-out-flash-")),
      eraseFlash: true,
      settings: { INTERVAL_S: 10 },
    });
    fleet.on("publish", (e) => {
      if (!e.topic.endsWith("/telemetry")) return;
      const { seq } = JSON.parse(e.payload.toString()) as { seq: number };
      sent.add(`${e.device.id}/${seq}`);
    });
  }, 120_000);

  afterAll(async () => {
    await reader?.stop();
    await fleet?.stop();
    await proxy?.stop();
    await workers?.stop();
    await redis?.close();
  });

  const readingsSoFar = () => reader.readings.length;
  const moreReadings = (n: number, message: string) =>
    waitUntil(() => reader.readings.length >= n, { timeoutMs: 90_000, message }).catch((e: Error) => {
      throw new Error(`${e.message} (have ${reader.readings.length}); supervisor output tail:\n${workers.output().slice(-4000)}`);
    });
  const pidOf = (instance: string): number => workers.workerPid(Number(instance.split(":").at(-1)));

  it("names the serving worker in X-Gateway-Instance, and streams the devices' readings", async () => {
    await moreReadings(6, "6 readings through nginx");
    expect(reader.instances[0]).toBe(`${hostname()}:${reader.instances[0]!.split(":").at(-1)}`);
    expect(workers.ports).toContain(Number(reader.instances[0]!.split(":").at(-1)));
  });

  it("kill -9 of the worker serving the stream: the client resumes through nginx on another process", async () => {
    const victimInstance = reader.instances.at(-1)!;
    const victim = pidOf(victimInstance);
    const streamsBefore = reader.instances.length;
    process.kill(victim, "SIGKILL");
    await waitUntil(() => reader.instances.length > streamsBefore, { timeoutMs: 30_000, message: "the reader reconnected" });
    const before = readingsSoFar();
    await moreReadings(before + 6, "6 more readings after the worker died");
    const resumedOn = reader.instances.at(-1)!;
    // another worker, or the victim's port already served by its restarted process: never the dead pid
    if (resumedOn === victimInstance) expect(pidOf(resumedOn)).not.toBe(victim);
    expect(() => process.kill(victim, 0)).toThrow();
  });

  it("kill -9 of Redis and a restart on the same AOF: the stream goes on, no id reused", async () => {
    await redis.kill();
    // the devices keep publishing; the workers cannot store and so do not acknowledge: the broker keeps them
    await redis.start();
    const before = readingsSoFar();
    await moreReadings(before + 6, "6 more readings after Redis came back");
    await waitUntil(async () => (await Promise.all(workers.ports.map(healthy))).every(Boolean), { timeoutMs: 30_000, message: "every worker healthy again" });
  });

  it("over the whole run: every reading the devices sent exactly once, ids strictly increasing", async () => {
    await fleet.stop();
    await waitUntil(() => [...sent].every((k) => reader.readings.some((r) => `${r.deviceId}/${r.seq}` === k)), {
      timeoutMs: 60_000,
      message: "every sent reading on the stream",
    }).catch((e: Error) => {
      const seen = new Set(reader.readings.map((r) => `${r.deviceId}/${r.seq}`));
      throw new Error(`${e.message}; missing: ${[...sent].filter((k) => !seen.has(k)).join(", ")}`);
    });
    const keys = reader.readings.map((r) => `${r.deviceId}/${r.seq}`);
    expect(new Set(keys).size, "no reading twice").toBe(keys.length);
    expect(new Set(keys)).toEqual(sent);
    const ids = reader.readings.map((r) => r.id);
    for (let i = 1; i < ids.length; i++) expect(ids[i]!, `id ${ids[i]} after ${ids[i - 1]}`).toBeGreaterThan(ids[i - 1]!);
    expect(reader.instances.length).toBeGreaterThanOrEqual(2);
  });
});
