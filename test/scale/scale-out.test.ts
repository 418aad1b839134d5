/**
 * Issue 12 "Proof", on loopback, as one scenario with what users run: one redis-server (AOF, fsync per write),
 * two broker nodes (`npm run broker`: the compiled gateway/dist/broker/server.js, BROKER_STORE=redis), three
 * gateways (the compiled `server.js --workers 3`, MQTT_URL listing both nodes), Debian's nginx with the shipped
 * config rendered for the three, devices running the compiled firmware with both nodes in MQTT_HOSTS, and one
 * SSE client through nginx that behaves like EventSource (reconnects with Last-Event-ID when its stream ends).
 * While the devices publish:
 * 1. kill -9 of the gateway serving the stream: the client resumes through nginx on another process;
 * 2. kill -9 of the broker node the devices and gateways are on, as a device's PUBLISH leaves it: all of them
 *    move to the other node;
 * 3. kill -9 of Redis (which the gateways and the broker nodes share), as a PUBLISH leaves a device, and a
 *    restart on the same AOF.
 * Then the devices stop, and every reading they sent has arrived on the stream exactly once (by device, seq),
 * with ids strictly increasing over the whole run (so none reused after the Redis restart).
 */
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { runFirmware, type FirmwareRun } from "../firmware/helpers/fleet.ts";
import { redisAvailable, startRedis, type RunningRedis } from "../helpers/redis.ts";
import { connectSse, type SseClient } from "../helpers/sse.ts";
import { waitUntil } from "../helpers/wait.ts";
import { startCompiledBrokerNode, startCompiledWorkers, type CompiledBrokerNode, type CompiledWorkers } from "./compiled-gateway.ts";
import { nginxAvailable, startNginx, type RunningNginx } from "./nginx.ts";

const WORKERS = 3;
const DEVICES = 3;
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

describe.skipIf(!ready)(`${WORKERS} gateways (server.js --workers) on 2 broker nodes and 1 Redis, behind nginx, with firmware devices`, () => {
  let redis: RunningRedis | undefined;
  const nodes: CompiledBrokerNode[] = [];
  let workers: CompiledWorkers | undefined;
  let proxy: RunningNginx | undefined;
  let run: FirmwareRun | undefined;
  let reader: ResumingReader | undefined;

  afterAll(async () => {
    await reader?.stop();
    await run?.fleet.stop();
    await proxy?.stop();
    await workers?.stop();
    for (const node of nodes) await node.stop();
    await redis?.close();
  });

  it("kill -9 of the serving gateway, of the broker node in use, and of Redis: every reading exactly once, ids strictly increasing", async () => {
    const startedAt = Date.now();
    const step = (what: string) => console.log(`proof: ${what} at ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
    redis = await startRedis();
    const [a, b] = [await startCompiledBrokerNode(redis.url), await startCompiledBrokerNode(redis.url)];
    nodes.push(a!, b!);
    workers = await startCompiledWorkers(WORKERS, redis.url, { MQTT_URL: `${a!.url},${b!.url}` });
    const w = workers;
    proxy = await startNginx({ gateways: w.ports.map((p) => `127.0.0.1:${p}`) });
    const r = (reader = new ResumingReader(proxy.url, w.adminToken));
    run = await runFirmware({ brokerPorts: [a!.port, b!.port], devices: DEVICES, seed: 12, timeScale: 20, settings: { INTERVAL_S: 10 } });
    const fleet = run.fleet;
    const deviceIds = fleet.devices.map((d) => d.id);
    const clientIds = w.ports.map((_, i) => `sensors-gateway-${i}`);
    /** (device, seq) of every telemetry PUBLISH a device sent (re-sends counted once). */
    const sent = new Set<string>();
    /** Run once, synchronously, when the next telemetry PUBLISH leaves a device: a kill with a reading in flight. */
    let atNextPublish: ((key: string) => void) | undefined;
    fleet.on("publish", (e) => {
      if (!e.topic.endsWith("/telemetry")) return;
      const key = `${e.device.id}/${(JSON.parse(e.payload.toString()) as { seq: number }).seq}`;
      sent.add(key);
      const action = atNextPublish;
      atNextPublish = undefined;
      action?.(key);
    });
    const underPublish = (kill: () => void) =>
      new Promise<string>((resolve) => {
        atNextPublish = (key) => {
          kill();
          resolve(key);
        };
      });
    /** (device, seq) of every reading the devices took (and stored in flash) so far, by their log lines. */
    const taken = (): string[] =>
      run!.logs.flatMap((l) => {
        const m = /^\[([^\]]+)\] reading seq=(\d+) /.exec(l);
        return m ? [`${m[1]}/${m[2]}`] : [];
      });
    step("everything started");

    const onStream = (key: string) => r.readings.some((x) => `${x.deviceId}/${x.seq}` === key);
    /** Waits for a reading of every device that it took after this call, on the stream. */
    const freshFromEveryDevice = async (message: string) => {
      const before = new Set(taken());
      await waitUntil(() => deviceIds.every((id) => r.readings.some((x) => x.deviceId === id && !before.has(`${id}/${x.seq}`))), { timeoutMs: 60_000, message }).catch((e: Error) => {
        throw new Error(`${e.message} (have ${r.readings.length}); supervisor output tail:\n${w.output().slice(-4000)}`);
      });
    };
    const pidOf = (instance: string): number => w.workerPid(Number(instance.split(":").at(-1)));
    /** The node each device's last "connected to" line names, and each gateway's bridge's last "mqtt connected". */
    const deviceBroker = (id: string) => run!.logs.filter((l) => l.startsWith(`[${id}] mqtt: connected to `)).at(-1)?.split(" ")[4];
    const gatewayBroker = (clientId: string) => w.logLines().filter((l) => l.msg === "mqtt connected" && l.clientId === clientId).at(-1)?.broker;
    const health = async (port: number): Promise<{ ok?: boolean; redis?: string }> =>
      fetch(`http://127.0.0.1:${port}/healthz`).then((res) => res.json() as Promise<{ ok: boolean; redis?: string }>, () => ({}));
    const allHealthy = async () => (await Promise.all(w.ports.map(health))).every((h) => h.ok === true);

    // Readings flow through node A (first in both lists) to every gateway, and out through nginx
    await freshFromEveryDevice("a reading of every device through nginx");
    expect(deviceIds.map(deviceBroker)).toEqual(deviceIds.map(() => `127.0.0.1:${a!.port}`));
    expect(clientIds.map(gatewayBroker)).toEqual(clientIds.map(() => a!.url));

    // 1. kill -9 of the gateway serving the stream: the client resumes through nginx on another process
    const victimInstance = r.instances.at(-1)!;
    expect(w.ports).toContain(Number(victimInstance.split(":").at(-1)));
    const victim = pidOf(victimInstance);
    const streamsBefore = r.instances.length;
    process.kill(victim, "SIGKILL");
    step(`gateway ${victimInstance} (pid ${victim}) killed`);
    await waitUntil(() => r.instances.length > streamsBefore, { timeoutMs: 30_000, message: "the reader reconnected" });
    await freshFromEveryDevice("a reading of every device taken after the gateway died");
    const resumedOn = r.instances.at(-1)!;
    // another gateway, or the victim's port already served by its restarted process: never the dead pid
    if (resumedOn === victimInstance) expect(pidOf(resumedOn)).not.toBe(victim);
    expect(() => process.kill(victim, 0)).toThrow();
    step(`stream resumed on ${resumedOn}`);

    // 2. kill -9 of node A, which the devices and gateways use (the restarted gateway too): all move to node B
    await waitUntil(allHealthy, { timeoutMs: 30_000, message: "every gateway healthy, the restarted one too" });
    expect(clientIds.map(gatewayBroker)).toEqual(clientIds.map(() => a!.url));
    const inFlightAtNodeKill = await underPublish(() => void a!.kill());
    await a!.kill();
    step(`broker node A killed under the PUBLISH of ${inFlightAtNodeKill}`);
    await waitUntil(() => clientIds.every((id) => gatewayBroker(id) === b!.url), { timeoutMs: 30_000, message: "every gateway's bridge on node B" });
    step("every gateway's bridge on node B");
    await waitUntil(() => deviceIds.every((id) => deviceBroker(id) === `127.0.0.1:${b!.port}`), { timeoutMs: 30_000, message: "every device on node B" });
    await freshFromEveryDevice("a reading of every device taken after node A died");
    step("devices and gateways on node B");

    // 3. kill -9 of Redis, which the gateways and node B both use, and a restart on the same AOF
    const runId = async () => {
      const client = new Redis(redis!.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
      try {
        await client.connect();
        return /run_id:(\w+)/.exec(await client.info("server"))![1];
      } finally {
        client.disconnect();
      }
    };
    const runIdBefore = await runId();
    const idsBeforeRedis = r.readings.length;
    const inFlightAtRedisKill = await underPublish(() => void redis!.kill());
    await redis.kill();
    const takenBeforeRedis = taken().length;
    step(`Redis killed under the PUBLISH of ${inFlightAtRedisKill}`);
    // the gateways notice and stop acknowledging; node B, whose sessions are in Redis too, acknowledges nothing
    // either: the devices keep what they measure in flash until a publish of it is acknowledged
    await waitUntil(async () => (await Promise.all(w.ports.map(health))).some((h) => h.redis === "down"), { message: "a gateway reports Redis down" });
    await waitUntil(() => taken().length > takenBeforeRedis, { timeoutMs: 30_000, message: "a reading taken while Redis is down" });
    await redis.start();
    const takenWhileRedisDown = taken().slice(takenBeforeRedis);
    expect(await runId()).not.toBe(runIdBefore);
    step(`Redis restarted (${takenWhileRedisDown.length} reading(s) taken while it was down)`);
    await waitUntil(() => takenWhileRedisDown.every(onStream), { timeoutMs: 60_000, message: "the readings taken while Redis was down, on the stream" });
    await freshFromEveryDevice("a reading of every device taken after Redis came back");
    await waitUntil(allHealthy, { timeoutMs: 30_000, message: "every gateway healthy again" });
    expect(r.readings.length).toBeGreaterThan(idsBeforeRedis);

    // The devices stop; whatever they sent arrives, once, in id order
    await run.stop(); // also asserts: no boot loop (fleet-health)
    step("devices stopped");
    await waitUntil(() => [...sent].every(onStream), {
      timeoutMs: 60_000,
      message: "every sent reading on the stream",
    }).catch((e: Error) => {
      const seen = new Set(r.readings.map((x) => `${x.deviceId}/${x.seq}`));
      throw new Error(`${e.message}; missing: ${[...sent].filter((k) => !seen.has(k)).join(", ")}`);
    });
    const keys = r.readings.map((x) => `${x.deviceId}/${x.seq}`);
    expect(new Set(keys).size, "no reading twice").toBe(keys.length);
    expect(new Set(keys)).toEqual(sent);
    for (const id of deviceIds) {
      const seqs = r.readings.filter((x) => x.deviceId === id).map((x) => x.seq).sort((x, y) => x - y);
      expect(seqs, `${id}: seqs 1..n without a gap`).toEqual(seqs.map((_, i) => i + 1));
    }
    expect(keys, "the reading in flight when node A was killed").toContain(inFlightAtNodeKill);
    expect(keys, "the reading in flight when Redis was killed").toContain(inFlightAtRedisKill);
    const ids = r.readings.map((x) => x.id);
    for (let i = 1; i < ids.length; i++) expect(ids[i]!, `id ${ids[i]} after ${ids[i - 1]}`).toBeGreaterThan(ids[i - 1]!);
    expect(r.instances.length).toBeGreaterThanOrEqual(2);
    step(`${r.readings.length} readings from ${DEVICES} devices, 0 lost, 0 twice, ${r.instances.length} streams`);
  }, 180_000);
});
