/**
 * Broker nodes (issue 12): two embedded brokers, each its own process (`gateway/src/broker/server.ts`, the
 * `npm run broker` entry point), sharing one real redis-server (RedisPersistence + mqemitter-redis). A publish
 * on one node reaches subscribers on the other; a persistent session moves between nodes with its queued
 * messages; a kill -9'd node's wills are published by the survivor; and the compiled firmware with both nodes
 * in MQTT_HOSTS moves to the survivor when its node is killed, losing no reading.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../helpers/ports.ts";
import { redisAvailable, startRedis, type RunningRedis } from "../helpers/redis.ts";
import { waitUntil } from "../helpers/wait.ts";
import { runFirmware } from "../firmware/helpers/fleet.ts";
import { RawClient } from "./raw-client.ts";
import { connectToBroker } from "../../gateway/src/bridge/broker-connection.ts";

const hasRedis = redisAvailable();
const SERVER = join(import.meta.dirname, "../../gateway/src/broker/server.ts");
const HEARTBEAT_MS = 500;

interface BrokerNode {
  name: string;
  /** aedes' broker id, as the node prints it */
  id: string;
  port: number;
  url: string;
  output(): string;
  /** SIGKILL, resolves once the process is gone. */
  kill(): Promise<void>;
}

const nodes: ChildProcess[] = [];
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => {
  for (const child of nodes) if (child.exitCode === null) child.kill("SIGKILL");
});

/** One broker node process on a free port; open broker auth (the devices of the simulator have no passwords). */
async function startNode(name: string, redis: RunningRedis, dataDir: string): Promise<BrokerNode> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", SERVER], {
    env: {
      ...process.env,
      MQTT_HOST: "127.0.0.1",
      MQTT_PORT: String(port),
      MQTT_AUTH: "open",
      DATA_DIR: dataDir,
      REDIS_URL: redis.url,
      BROKER_STORE: "redis",
      BROKER_HEARTBEAT_MS: String(HEARTBEAT_MS),
      LOG_LEVEL: "warn",
      GATEWAY_CONFIG: "",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  nodes.push(child);
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
  });
  await waitUntil(() => output.includes("Broker node ") || child.exitCode !== null, { timeoutMs: 20_000, message: `node ${name} listening` });
  if (!output.includes("Broker node ")) throw new Error(`broker node ${name} did not start:\n${output}`);
  return {
    name,
    id: /Broker node (\S+) on/.exec(output)![1]!,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    output: () => output,
    async kill() {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

async function client(url: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...opts });
  cleanups.push(() => c.endAsync(true));
  return c;
}

describe.skipIf(!hasRedis)("broker nodes sharing Redis", () => {
  let redis: RunningRedis;
  let dataDir: string;
  let a: BrokerNode;
  let b: BrokerNode;
  beforeAll(async () => {
    redis = await startRedis();
    dataDir = mkdtempSync(join(tmpdir(), "broker-nodes-"));
  });
  afterAll(async () => {
    await redis?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  afterEach(async () => {
    // every case starts on an empty Redis: no session or will of an earlier case
    const { Redis } = await import("ioredis");
    const r = new Redis(redis.url);
    await r.flushall();
    r.disconnect();
  });

  async function startBoth(): Promise<void> {
    a = await startNode("A", redis, dataDir);
    b = await startNode("B", redis, dataDir);
  }

  it("a subscriber on node B gets a QoS 1 publish made on node A", async () => {
    await startBoth();
    const subscriber = await client(b.url, { clientId: "sub-b" });
    const received: string[] = [];
    subscriber.on("message", (topic, payload) => received.push(`${topic} ${payload.toString()}`));
    await subscriber.subscribeAsync("sensors/+/telemetry", { qos: 1 });
    const publisher = await client(a.url, { clientId: "pub-a" });
    // mqemitter-redis subscribes to the channel asynchronously: publish until the first copy arrives
    await waitUntil(
      async () => {
        await publisher.publishAsync("sensors/d1/telemetry", "ping", { qos: 1 });
        return received.length > 0;
      },
      { timeoutMs: 10_000, intervalMs: 100, message: "the first publish from A on B" },
    );
    await publisher.publishAsync("sensors/d2/telemetry", '{"seq":1}', { qos: 1 });
    await waitUntil(() => received.some((r) => r.startsWith("sensors/d2/")), { message: "the QoS 1 message on B" });
    expect(received.filter((r) => r.startsWith("sensors/d2/"))).toEqual(['sensors/d2/telemetry {"seq":1}']);
  }, 60_000);

  it("a persistent session made on A, away while B takes publishes, reconnects to B and gets them", async () => {
    await startBoth();
    const first = await client(a.url, { clientId: "gateway-1", clean: false });
    await first.subscribeAsync("sensors/+/telemetry", { qos: 1 });
    await first.endAsync();

    const publisher = await client(b.url, { clientId: "pub-b" });
    for (let seq = 1; seq <= 5; seq++) await publisher.publishAsync("sensors/d1/telemetry", JSON.stringify({ seq }), { qos: 1 });

    const received: number[] = [];
    const again = mqtt.connect(b.url, { clientId: "gateway-1", clean: false, reconnectPeriod: 0 });
    cleanups.push(() => again.endAsync(true));
    again.on("message", (_topic, payload) => received.push(JSON.parse(payload.toString()).seq));
    const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
      again.once("connect", resolve);
      again.once("error", reject);
    });
    expect(connack.sessionPresent).toBe(true);
    // At least once: the last one may also come live, when B's copy through Redis pub/sub arrives after the
    // reconnect (mqemitter-redis delivers asynchronously); readings are de-duplicated on (device, seq) anyway.
    await waitUntil(() => new Set(received).size === 5, { message: "the 5 queued messages from B" });
    expect([...new Set(received)].sort()).toEqual([1, 2, 3, 4, 5]);
  }, 60_000);

  it("a QoS 2 flow cut by kill -9 after PUBREC on A is finished on B by the PUBREL (the message is passed on once)", async () => {
    await startBoth();
    const subscriber = await client(b.url, { clientId: "sub-qos2" });
    const received: string[] = [];
    subscriber.on("message", (topic, payload) => received.push(`${topic} ${payload.toString()}`));
    await subscriber.subscribeAsync("sensors/+/telemetry", { qos: 2 });
    // The device: a bare client that stops the flow after PUBREC (aedes passes a QoS 2 message on at PUBREL)
    const onA = await RawClient.connect(a.port, "d-qos2", { clean: false });
    onA.send({ cmd: "publish", topic: "sensors/d-qos2/telemetry", payload: Buffer.from('{"seq":1}'), qos: 2, messageId: 7, retain: false, dup: false });
    await onA.next("pubrec");
    await a.kill();
    const onB = await RawClient.connect(b.port, "d-qos2", { clean: false });
    cleanups.push(() => onB.drop());
    onB.send({ cmd: "pubrel", messageId: 7 });
    expect((await onB.next("pubcomp")).messageId).toBe(7);
    await waitUntil(() => received.length > 0, { message: "the QoS 2 message on B's subscriber" });
    expect(received).toEqual(['sensors/d-qos2/telemetry {"seq":1}']);
  }, 60_000);

  it("kill -9 of a node: the survivor publishes the Last Will of a client that was connected to it", async () => {
    await startBoth();
    const watcher = await client(b.url, { clientId: "watch-b" });
    const wills: string[] = [];
    watcher.on("message", (topic, payload) => topic.endsWith("/status") && wills.push(`${topic} ${payload.toString()}`));
    await watcher.subscribeAsync("sensors/+/status", { qos: 1 });
    // a device that only knows node A (no failover): its will says it is gone
    const device = mqtt.connect(a.url, {
      clientId: "d-will",
      reconnectPeriod: 0,
      will: { topic: "sensors/d-will/status", payload: Buffer.from("offline"), qos: 1, retain: false },
    });
    device.on("error", () => {});
    cleanups.push(() => device.endAsync(true));
    await new Promise((resolve) => device.once("connect", resolve));
    // B has heard A's heartbeat (aedes' `$SYS/<id>/heartbeat`, through Redis): the will waits for A to fall silent
    const heartbeats: string[] = [];
    watcher.on("message", (topic, payload) => topic.endsWith("/heartbeat") && heartbeats.push(payload.toString()));
    await watcher.subscribeAsync("$SYS/+/heartbeat", { qos: 0 });
    await waitUntil(() => heartbeats.includes(a.id), { message: "A's heartbeat seen on B" });
    expect(wills).toEqual([]);
    const killedAt = Date.now();
    await a.kill();
    await waitUntil(() => wills.length > 0, { timeoutMs: 15 * HEARTBEAT_MS, message: "the will published by B" });
    console.log(`broker nodes: will of d-will published by B ${Date.now() - killedAt} ms after A's kill -9 (heartbeat ${HEARTBEAT_MS} ms)`);
    expect(wills).toEqual(["sensors/d-will/status offline"]);
  }, 60_000);

  it("the firmware with both nodes in MQTT_HOSTS: kill -9 of its node, devices move to the other, 0 readings lost", async () => {
    await startBoth();
    // The gateway's side: a persistent session (clean=false, QoS 1) on A that fails over to B like the devices,
    // with the gateway's own connect options (bridge/broker-connection.ts, MQTT_URL listing both nodes)
    const arrivals: Array<{ device: string; seq: number }> = [];
    const gateway = connectToBroker({ urls: [a.url, b.url] }, { clientId: "sensors-gateway", clean: false });
    gateway.on("error", () => {});
    cleanups.push(() => gateway.endAsync(true));
    gateway.on("message", (topic, payload) => {
      arrivals.push({ device: topic.split("/")[1]!, seq: JSON.parse(payload.toString()).seq });
    });
    await new Promise((resolve) => gateway.once("connect", resolve));
    await gateway.subscribeAsync("sensors/+/telemetry", { qos: 1 });

    const run = await runFirmware({ brokerPorts: [a.port, b.port], devices: 3, seed: 21, settings: { INTERVAL_S: 5 } });
    cleanups.push(() => run.stop()); // also asserts: no boot loop (fleet-health)
    const ids = run.fleet.devices.map((d) => d.id);
    const seqsOf = (id: string) => new Set(arrivals.filter((r) => r.device === id).map((r) => r.seq));
    await waitUntil(() => ids.every((id) => seqsOf(id).size >= 2), { timeoutMs: 60_000, message: "2 readings per device through A" });

    // kill A under a PUBLISH: a device is mid-flight, the gateway's session is on A too
    let inFlight: { device: string; seq: number } | undefined;
    run.fleet.on("publish", (e) => {
      if (inFlight || !e.topic.endsWith("/telemetry")) return;
      inFlight = { device: e.device.id, seq: JSON.parse(e.payload.toString()).seq };
      void a.kill();
    });
    await waitUntil(() => inFlight, { timeoutMs: 30_000, message: "A killed under a PUBLISH" });
    await a.kill();
    const killedAt = Date.now();
    const connectsToB = () => run.logs.filter((l) => l.includes(`mqtt: connected to 127.0.0.1:${b.port}`)).length;
    const before = new Map(ids.map((id) => [id, seqsOf(id).size]));
    await waitUntil(() => ids.every((id) => seqsOf(id).size >= before.get(id)! + 3), {
      timeoutMs: 90_000,
      message: "3 more readings per device after the kill (through B)",
    });
    console.log(`broker nodes: devices on B after the kill: ${connectsToB()} connect(s) to B, ${Date.now() - killedAt} ms for 3 readings each`);
    expect(connectsToB()).toBeGreaterThanOrEqual(ids.length);

    // every reading a device stored in flash arrives at the gateway's session ((device, seq) de-duplicated)
    const stored = new Map<string, number[]>();
    for (const line of run.logs) {
      const m = /^\[([^\]]+)\] reading seq=(\d+) /.exec(line);
      if (m) stored.set(m[1]!, [...(stored.get(m[1]!) ?? []), Number(m[2])]);
    }
    await waitUntil(() => ids.every((id) => (stored.get(id) ?? []).every((seq) => seqsOf(id).has(seq))), {
      timeoutMs: 60_000,
      message: "every stored reading delivered",
    });
    for (const id of ids) {
      const seqs = [...seqsOf(id)].sort((x, y) => x - y);
      expect(seqs, `${id}: seqs without gaps`).toEqual(seqs.map((_, i) => i + 1));
      const duplicates = arrivals.filter((r) => r.device === id).length - seqs.length;
      console.log(`broker nodes: ${id} ${seqs.length} readings, 0 lost, ${duplicates} duplicate(s) removed by (device, seq)`);
    }
    expect(seqsOf(inFlight!.device).has(inFlight!.seq), `the reading in flight at the kill (${inFlight!.device} seq ${inFlight!.seq})`).toBe(true);
  }, 240_000);
});
