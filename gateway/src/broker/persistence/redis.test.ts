import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redisAvailable, startRedis, type RunningRedis } from "../../../../test/helpers/redis.ts";
import { RedisPersistence } from "./redis.ts";

const hasRedis = redisAvailable();

describe.skipIf(!hasRedis)("RedisPersistence", () => {
  let redis: RunningRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis?.close());

  it.each([
    ["the bare RedisPersistence", "bare"],
    ["the decorated stack aedes runs on", "stack"],
  ])("passes aedes-persistence's abstract contract suite (50 tests) on %s", (_name, store) => {
    const suite = join(import.meta.dirname, "contract.abstract.ts");
    const run = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-reporter=tap", suite], {
      env: { ...process.env, CONTRACT_STORE: store, CONTRACT_REDIS_URL: redis.url },
      encoding: "utf8",
      timeout: 120_000,
    });
    const summary = Object.fromEntries(
      [...run.stdout.matchAll(/^# (tests|pass|fail) (\d+)$/gm)].map((m) => [m[1], Number(m[2])]),
    );
    expect(summary, run.stdout.slice(-4000) + run.stderr).toEqual({ tests: 50, pass: 50, fail: 0 });
    expect(run.status).toBe(0);
  });

  it("is shared: a node sees the subscriptions, queued messages and wills another node wrote", async () => {
    const prefix = `shared-${randomUUID()}:`;
    const nodeA = new RedisPersistence({ url: redis.url, prefix });
    const nodeB = new RedisPersistence({ url: redis.url, prefix });
    await nodeA.setup({ id: "node-a" });
    await nodeB.setup({ id: "node-b" });
    const client = { id: "gateway" };
    expect(await nodeB.subscriptionsByTopic("sensors/d1/telemetry")).toEqual([]); // B caches the empty table
    await nodeA.addSubscriptions(client, [{ topic: "sensors/+/telemetry", qos: 1 }]);
    expect(await nodeB.subscriptionsByTopic("sensors/d1/telemetry")).toMatchObject([{ clientId: "gateway", qos: 1 }]);

    const packet = { cmd: "publish", topic: "sensors/d1/telemetry", payload: Buffer.from("r1"), qos: 1, retain: false, dup: false, brokerId: "node-b", brokerCounter: 7 };
    await nodeB.outgoingEnqueueCombi([{ clientId: "gateway", qos: 1 }], packet);
    const queued = [];
    for await (const p of nodeA.outgoingStream(client)) queued.push(p as { payload: Buffer; brokerId: string });
    expect(queued.map((p) => [p.payload.toString(), p.brokerId])).toEqual([["r1", "node-b"]]);

    await nodeA.putWill({ id: "d1" }, { cmd: "publish", topic: "sensors/d1/status", payload: Buffer.from("offline"), qos: 1, retain: true });
    const willsWhileAAlive = [];
    for await (const w of nodeB.streamWill({ "node-a": Date.now(), "node-b": Date.now() })) willsWhileAAlive.push(w);
    expect(willsWhileAAlive).toEqual([]);
    const willsAfterADied = [];
    for await (const w of nodeB.streamWill({ "node-b": Date.now() })) willsAfterADied.push(w as { clientId: string; brokerId: string });
    expect(willsAfterADied.map((w) => [w.clientId, w.brokerId])).toEqual([["d1", "node-a"]]);
    await Promise.all([nodeA.destroy(), nodeB.destroy()]);
  });

  it("a PUBREL replaces its own flow's PUBLISH, not an older PUBREL (as SqlitePersistence)", async () => {
    const store = new RedisPersistence({ url: redis.url, prefix: `pubrel-${randomUUID()}:` });
    await store.setup({ id: "b1" });
    const client = { id: "subscriber" };
    const publish = (counter: number) => ({
      cmd: "publish", topic: "sensors/d/telemetry", payload: Buffer.from(`#${counter}`), qos: 2, retain: false,
      dup: false, brokerId: "b1", brokerCounter: counter,
    });
    for (const counter of [1, 2, 3]) {
      await store.outgoingEnqueue({ clientId: client.id }, publish(counter));
      await store.outgoingUpdate(client, { ...publish(counter), messageId: counter });
      await store.outgoingUpdate(client, { cmd: "pubrel", messageId: counter });
    }
    const queued: Array<{ cmd: string; messageId?: number }> = [];
    for await (const packet of store.outgoingStream(client)) queued.push(packet as { cmd: string; messageId?: number });
    expect(queued.map((p) => `${p.cmd}:${p.messageId}`).sort()).toEqual(["pubrel:1", "pubrel:2", "pubrel:3"]);
    await store.destroy();
  });
});
