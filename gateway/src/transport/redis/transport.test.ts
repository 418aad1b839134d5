import { createParser } from "eventsource-parser";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { redisAvailable, startRedis, type RunningRedis } from "../../../../test/helpers/redis.ts";
import { waitUntil } from "../../../../test/helpers/wait.ts";
import { createMetrics, type Metrics } from "../../ops/metrics.ts";
import { status, telemetry, transportContract, type TransportHarness } from "../contract.ts";
import { WebStreamSink } from "../hub/sink.ts";
import { openDatabase } from "../sqlite/db.ts";
import type { NewEvent, StoredEvent } from "../transport.ts";
import Database from "better-sqlite3";
import { Redis } from "ioredis";
import { ErrTransportClosed } from "../transport.ts";
import { ErrRedisBehind, type RedisLog } from "./log.ts";
import { ErrReplicaBehind, RedisTransport } from "./transport.ts";

const HUB = { heartbeatMs: 60_000, retryMs: 1_000, maxQueueEvents: 1_000, maxQueueBytes: 1 << 20 };
const KEEP_ALL = { maxEvents: 1_000_000, maxAgeMs: Number.MAX_SAFE_INTEGER };
const hasRedis = redisAvailable();
let prefixes = 0;

interface Replica extends TransportHarness {
  transport: RedisTransport;
  metrics: Metrics;
  dir: string;
}

/** A gateway's RedisTransport with its own local replica in `dir`, on the Redis at `url`, keys under `prefix`. */
async function openReplica(
  url: string,
  prefix: string,
  dir = mkdtempSync(join(tmpdir(), "transport-redis-")),
  replayPageSize = 4,
  mqttClientId?: string,
): Promise<Replica> {
  const db = openDatabase(dir);
  const metrics = createMetrics();
  let transport: RedisTransport;
  try {
    transport = await RedisTransport.open(
      db,
      { url, keyPrefix: prefix, retention: KEEP_ALL, summaryRetention: { "1m": 0, "1h": 0, "1d": 0 }, sse: { ...HUB, replayPageSize }, applyTimeoutMs: 5_000, connectTimeoutMs: 1_000, mqttClientId },
      metrics,
      pino({ level: "silent" }),
    );
  } catch (err) {
    db.close();
    throw err;
  }
  let shut = false;
  const close = async () => {
    if (shut) return;
    shut = true;
    await transport.close();
    db.close();
  };
  return {
    transport,
    metrics,
    dir,
    trim: async (keep) => {
      const retention = { maxEvents: keep, maxAgeMs: Number.MAX_SAFE_INTEGER };
      await transport.trimShared(Date.now(), retention);
      transport.pruneReplica(Date.now(), retention);
    },
    reopen: async () => {
      await close();
      return openReplica(url, prefix, dir, replayPageSize, mqttClientId);
    },
    dispose: async () => {
      await close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Fault: another process takes the write lock of the replica in `dir` (what a stuck backup would do) until released. */
function holdWriteLock(dir: string): { release(): void } {
  const other = new Database(join(dir, "gateway.sqlite"));
  other.exec("BEGIN EXCLUSIVE");
  return {
    release: () => {
      other.exec("ROLLBACK");
      other.close();
    },
  };
}

/** An SSE stream on a transport, parsed minimally: id and event name of each event. */
function stream(transport: RedisTransport, lastEventId?: number) {
  const sink = new WebStreamSink();
  transport.subscribe({ filters: ["#"], lastEventId }, sink);
  const events: Array<{ id: number; kind: string; data: Record<string, unknown> }> = [];
  const reader = sink.body.getReader();
  const parser = createParser({
    onEvent: (e) => events.push({ id: Number(e.id), kind: e.event ?? "message", data: JSON.parse(e.data) as Record<string, unknown> }),
  });
  const decoder = new TextDecoder();
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      parser.feed(decoder.decode(value, { stream: true }));
    }
  })();
  return { events, cancel: () => void reader.cancel().catch(() => {}) };
}

describe.skipIf(!hasRedis)("RedisTransport", () => {
  let redis: RunningRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.close();
  });

  transportContract("RedisTransport", (opts) => openReplica(redis.url, `contract${++prefixes}:`, undefined, opts.replayPageSize));

  describe("two gateways on one Redis", () => {
    const open: Replica[] = [];
    const streams: Array<{ cancel(): void }> = [];
    const replica = async (prefix: string, dir?: string) => {
      const r = await openReplica(redis.url, prefix, dir);
      open.push(r);
      return r;
    };
    const watch = (t: RedisTransport, lastEventId?: number) => {
      const s = stream(t, lastEventId);
      streams.push(s);
      return s;
    };
    afterEach(async () => {
      for (const s of streams.splice(0)) s.cancel();
      for (const r of open.splice(0)) await r.dispose();
    });

    it("gives the same reading received by both one id; a copy of a status with the same dedupeKey takes none", async () => {
      const prefix = `two${++prefixes}:`;
      const [a, b] = [await replica(prefix), await replica(prefix)];
      const results = await Promise.all([a.transport.dispatch(telemetry("d", 1)), b.transport.dispatch(telemetry("d", 1))]);
      expect(results.filter((r) => r !== undefined)).toHaveLength(1);
      const withKey = (e: NewEvent): NewEvent => ({ ...e, dedupeKey: "k1" });
      const statuses = await Promise.all([a.transport.dispatch(withKey(status("d", "online", 5))), b.transport.dispatch(withKey(status("d", "online", 5)))]);
      expect(statuses.filter((r) => r !== undefined).map((r) => r!.id)).toEqual([2]);
      for (const r of [a, b]) {
        await waitUntil(() => r.transport.device("d")?.statusEventId === 2, { message: "both replicas applied the status" });
        expect(r.transport.readings("d", {}, 10).map((e) => e.id)).toEqual([1]);
      }
    });

    it("interleaved dispatches on both: strictly increasing ids, every stream on either sees every id once, in order", async () => {
      const prefix = `two${++prefixes}:`;
      const [a, b] = [await replica(prefix), await replica(prefix)];
      const onA = watch(a.transport);
      const onB = watch(b.transport);
      const send = async (r: Replica, deviceId: string) => {
        const ids: number[] = [];
        for (let seq = 1; seq <= 25; seq++) ids.push((await r.transport.dispatch(telemetry(deviceId, seq)))!.id);
        return ids;
      };
      const [idsA, idsB] = await Promise.all([send(a, "a"), send(b, "b")]);
      for (const ids of [idsA, idsB]) expect(ids).toEqual([...ids].sort((x, y) => x - y));
      const all = Array.from({ length: 50 }, (_, i) => i + 1);
      expect([...idsA, ...idsB].sort((x, y) => x - y)).toEqual(all);
      for (const s of [onA, onB]) {
        await waitUntil(() => s.events.length >= 50, { message: "50 events on the stream" });
        expect(s.events.map((e) => e.id)).toEqual(all);
      }
      expect(b.transport.readings("a", {}, 100)).toEqual(a.transport.readings("a", {}, 100));
      expect(a.transport.devices()).toEqual(b.transport.devices());
    });

    it("resumes a stream on the other gateway with Last-Event-ID", async () => {
      const prefix = `two${++prefixes}:`;
      const [a, b] = [await replica(prefix), await replica(prefix)];
      for (let seq = 1; seq <= 5; seq++) await a.transport.dispatch(telemetry("d", seq));
      const first = watch(a.transport, 0);
      await waitUntil(() => first.events.length === 5, { message: "5 events on gateway a" });
      first.cancel();
      const resumed = watch(b.transport, first.events[2]!.id);
      await a.transport.dispatch(telemetry("d", 6));
      await waitUntil(() => resumed.events.length === 3, { message: "ids 4..6 on gateway b" });
      expect(resumed.events.map((e) => [e.kind, e.id])).toEqual([["telemetry", 4], ["telemetry", 5], ["telemetry", 6]]);
    });

    it("a Last-Event-ID ahead of a lagging replica waits for it, then continues without a reset", async () => {
      const prefix = `two${++prefixes}:`;
      const [a, b] = [await replica(prefix), await replica(prefix)];
      await b.transport.dispatch(telemetry("d", 1));
      // Fault: another process holds b's replica file locked, so b cannot apply what a appends
      const lock = holdWriteLock(b.dir);
      for (let seq = 2; seq <= 5; seq++) await a.transport.dispatch(telemetry("d", seq));
      await waitUntil(() => !b.transport.healthy(), { message: "b unhealthy while it cannot apply", timeoutMs: 15_000 });
      expect(b.transport.problem()).toBe("the local replica cannot apply the log");
      const s = watch(b.transport, 4); // a client that saw id 4 on gateway a
      lock.release();
      await waitUntil(() => s.events.length >= 1, { message: "the stream to continue", timeoutMs: 15_000 });
      await a.transport.dispatch(telemetry("d", 6));
      await waitUntil(() => s.events.length === 2, { message: "ids 5 and 6" });
      expect(s.events.map((e) => [e.kind, e.id])).toEqual([["telemetry", 5], ["telemetry", 6]]);
      // nothing skipped: b applied every id in order once it could
      expect(b.transport.readings("d", {}, 10).map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(b.transport.healthy()).toBe(true);
    });

    it("an entry this gateway cannot read stops its replica at that id, reported as such (not as an outage)", async () => {
      const prefix = `two${++prefixes}:`;
      const a = await replica(prefix);
      await a.transport.dispatch(telemetry("d", 1));
      // what a broken or newer writer could leave: id 2 whose event is not JSON
      const r = a.transport["redis"];
      await r.xadd(`${prefix}log`, "2-0", "e", "{not json", "r", "0", "p", (await r.get(`${prefix}epoch`))!);
      await r.set(`${prefix}id`, 2);
      await waitUntil(() => !a.transport.healthy(), { message: "unhealthy at the bad entry" });
      expect(a.transport.problem()).toBe("the local replica cannot apply the log");
      expect(a.transport.readings("d", {}, 10).map((e) => e.id)).toEqual([1]); // waits at id 2, skips nothing
    });

    it("the leader lease: renewal never extends another holder's lease; a stopped leader hands over at once", async () => {
      const prefix = `lease${++prefixes}:`;
      const a = await replica(prefix);
      await waitUntil(() => a.transport.isLeader(), { message: "a leads" });
      const log = a.transport["log"] as RedisLog;
      const r = a.transport["redis"];
      await r.set("other-lease", "someone", "PX", 1_000);
      expect(await log.holdLease("other-lease", "me", 60_000)).toBe(false);
      expect(await r.pttl("other-lease")).toBeLessThanOrEqual(1_000); // not extended to 60 s
      const b = await replica(prefix);
      await waitUntil(() => !b.transport["retentionRunning"], { message: "b's first renewal done" });
      await b.transport["retention"]();
      expect(b.transport.isLeader()).toBe(false); // a holds it
      // a stops (Redis lost data, as far as a knows): it releases the lease and ends its streams
      const s = watch(a.transport);
      a.transport["stop"](new ErrRedisBehind(0, 1));
      expect(a.transport.isLeader()).toBe(false);
      await waitUntil(async () => (await r.get(`${prefix}lease:leader`)) === null, { message: "the lease released" });
      await waitUntil(async () => {
        await b.transport["retention"]();
        return b.transport.isLeader();
      }, { message: "b leads" });
      expect(() => watch(a.transport)).toThrow(ErrTransportClosed);
      void s;
    });

    it("a fresh replica takes the trimmed log's boundary: a trimmed Last-Event-ID gets `reset`", async () => {
      const prefix = `two${++prefixes}:`;
      const a = await replica(prefix);
      for (let seq = 1; seq <= 8; seq++) await a.transport.dispatch(telemetry("d", seq));
      expect(await a.transport.trimShared(Date.now(), { maxEvents: 3, maxAgeMs: Number.MAX_SAFE_INTEGER })).toBe(5);
      const fresh = await replica(prefix);
      expect(fresh.transport.readings("d", {}, 10).map((e) => e.id)).toEqual([6, 7, 8]);
      const s = watch(fresh.transport, 2);
      await waitUntil(() => s.events.length === 4, { message: "reset + ids 6..8" });
      expect(s.events[0]).toMatchObject({ kind: "reset", id: 5, data: { reason: "history_evicted", requestedId: 2, earliestId: 6 } });
      expect(s.events.slice(1).map((e) => e.id)).toEqual([6, 7, 8]);
      // the trimmed readings' de-duplication keys went with them: memory is bounded by retention
      expect(await a.transport["redis"].zcard(`${prefix}seen`)).toBe(3);
    });

    it("refuses a replica that was away longer than retention, saying what to do", async () => {
      const prefix = `two${++prefixes}:`;
      const away = await replica(prefix);
      await away.transport.dispatch(telemetry("d", 1));
      const dir = away.dir;
      await away.transport.close();
      const b = await replica(prefix);
      for (let seq = 2; seq <= 10; seq++) await b.transport.dispatch(telemetry("d", seq));
      await b.transport.trimShared(Date.now(), { maxEvents: 2, maxAgeMs: Number.MAX_SAFE_INTEGER });
      const reopened = openReplica(redis.url, prefix, dir);
      await expect(reopened).rejects.toThrow(ErrReplicaBehind);
      await expect(reopened).rejects.toThrow(/empty dataDir/);
    });
  });

  it("refuses a second gateway with the same MQTT client id; the same replica restarting keeps its claim", async () => {
    const prefix = `claim${++prefixes}:`;
    const first = await openReplica(redis.url, prefix, undefined, 4, "gw-1");
    try {
      const other = mkdtempSync(join(tmpdir(), "transport-redis-"));
      await expect(openReplica(redis.url, prefix, other, 4, "gw-1")).rejects.toThrow(/MQTT client id "gw-1" is in use/);
      rmSync(other, { recursive: true, force: true });
      const log = first.transport["log"] as RedisLog;
      // a restart of the same replica (the claim of the crashed run has not expired yet) is the same holder
      expect(await log.holdLease(log.keys.client("gw-1"), first.transport["projection"].replicaId(), 30_000)).toBe(true);
      const second = await openReplica(redis.url, prefix, mkdtempSync(join(tmpdir(), "transport-redis-")), 4, "gw-2");
      await second.dispose();
    } finally {
      await first.dispose();
    }
    const after = await openReplica(redis.url, prefix, undefined, 4, "gw-1"); // released on close
    await after.dispose();
  });

  it("a gateway whose MQTT client id claim another gateway took stops, and says so", async () => {
    const prefix = `claim${++prefixes}:`;
    const r = await openReplica(redis.url, prefix, undefined, 4, "gw-lost");
    try {
      const fatal: Error[] = [];
      r.transport.onFatal((err) => fatal.push(err));
      // the claim expired while this one was stalled, and another gateway claimed the id
      await r.transport["redis"].set(`${prefix}lease:mqtt-client:gw-lost`, "another-replica", "PX", 30_000);
      // the next renewal (one run at a time: the first one since open may still be going)
      await waitUntil(async () => {
        await r.transport["retention"]();
        return !r.transport.healthy();
      }, { message: "the renewal to find the claim lost" });
      expect(r.transport.problem()).toMatch(/MQTT client id "gw-lost" is in use/);
      expect(fatal.map((e) => e.name)).toEqual(["ErrClientIdInUse"]);
      expect(await r.transport["redis"].get(`${prefix}lease:mqtt-client:gw-lost`)).toBe("another-replica"); // not released
    } finally {
      await r.dispose();
    }
  });

  describe("Redis outages", () => {
    let own: RunningRedis;
    const open: Replica[] = [];
    beforeAll(async () => {
      own = await startRedis();
    });
    afterEach(async () => {
      for (const r of open.splice(0)) await r.dispose();
    });
    afterAll(async () => {
      await own?.close();
    });

    it("killed: dispatch rejects and healthy() is false; restarted on its AOF: resumes, nothing lost, no id reused", async () => {
      const a = await openReplica(own.url, "outage:");
      open.push(a);
      const s = stream(a.transport, 0);
      const before: StoredEvent[] = [];
      for (let seq = 1; seq <= 5; seq++) before.push((await a.transport.dispatch(telemetry("d", seq)))!);
      await own.kill();
      await expect(a.transport.dispatch(telemetry("d", 6))).rejects.toThrow();
      await waitUntil(() => !a.transport.healthy(), { message: "healthy() false" });
      expect(await a.metrics.redisUp.get()).toMatchObject({ values: [{ value: 0 }] });
      await own.start();
      await waitUntil(() => a.transport.healthy(), { message: "healthy() again" });
      // the broker redelivers what was not acknowledged: it is stored now, with the next id
      expect((await a.transport.dispatch(telemetry("d", 6)))!.id).toBe(6);
      expect(await a.transport.dispatch(telemetry("d", 5))).toBeUndefined(); // de-duplication survived too
      const other = await openReplica(own.url, "outage:");
      open.push(other);
      expect(other.transport.readings("d", {}, 10).map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6]);
      await waitUntil(() => s.events.length === 6, { message: "the stream saw all 6" });
      expect(s.events.map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6]);
      s.cancel();
    });

    it("at maxmemory (OOM): appends fail visibly until Redis takes writes again, then it is healthy by itself", async () => {
      const a = await openReplica(own.url, "oom:");
      open.push(a);
      await a.transport.dispatch(telemetry("d", 1));
      const admin = new Redis(own.url);
      try {
        await admin.config("SET", "maxmemory-policy", "noeviction");
        await admin.config("SET", "maxmemory", "1");
        await expect(a.transport.dispatch(telemetry("d", 2))).rejects.toThrow(/OOM/);
        expect(a.transport.healthy()).toBe(false);
        expect(a.transport.problem()).toMatch(/^redis does not take appends: OOM/);
        expect(await a.metrics.redisUp.get()).toMatchObject({ values: [{ value: 0 }] });
        expect(await a.metrics.redisAppendFailures.get()).toMatchObject({ values: [{ value: 1 }] });
        await admin.config("SET", "maxmemory", "0");
        await waitUntil(() => a.transport.healthy(), { message: "healthy again (the probe write went through)" });
        expect((await a.transport.dispatch(telemetry("d", 2)))!.id).toBe(2);
      } finally {
        await admin.config("SET", "maxmemory", "0");
        admin.disconnect();
      }
    });

    it("a Redis that stops answering (half-open: SIGSTOP) makes it unhealthy within seconds; after SIGCONT it goes on", async () => {
      const a = await openReplica(own.url, "paused:");
      open.push(a);
      await a.transport.dispatch(telemetry("d", 1));
      own.pause();
      try {
        const started = performance.now();
        await expect(a.transport.dispatch(telemetry("d", 2))).rejects.toThrow(/timed out/i);
        expect(performance.now() - started).toBeLessThan(9_000);
        await waitUntil(() => !a.transport.healthy(), { message: "unhealthy", timeoutMs: 15_000 });
      } finally {
        own.resume();
      }
      await waitUntil(() => a.transport.healthy(), { message: "healthy after SIGCONT", timeoutMs: 20_000 });
      // the timed-out append may have run after all: either way the reading is stored once
      await a.transport.dispatch(telemetry("d", 2));
      await a.transport.dispatch(telemetry("d", 3));
      expect(a.transport.readings("d", {}, 10).map((e) => (JSON.parse(e.data) as { seq: number }).seq)).toEqual([1, 2, 3]);
    }, 60_000);

    it("flushed while a replica runs and a fresh gateway appends past its last id: the replica refuses (new epoch)", async () => {
      const a = await openReplica(own.url, "flushed:");
      open.push(a);
      for (let seq = 1; seq <= 2; seq++) await a.transport.dispatch(telemetry("d", seq));
      const admin = new Redis(own.url);
      await admin.flushall();
      admin.disconnect();
      const fresh = await openReplica(own.url, "flushed:");
      open.push(fresh);
      for (let seq = 1; seq <= 4; seq++) await fresh.transport.dispatch(telemetry("e", seq)); // ids 1..4 again
      await waitUntil(() => !a.transport.healthy(), { message: "a refuses" });
      expect(a.transport.problem()).toMatch(/not the one this gateway's replica was built from/);
      expect(a.transport.readings("e", {}, 10)).toEqual([]); // it applied none of the other log's events
    });

    it("a wrong password is reported as such", async () => {
      const wrong = own.url.replace(`:${own.password}@`, ":wrong@");
      await expect(openReplica(wrong, "pw:")).rejects.toThrow(/WRONGPASS/);
    });

    it("wiped (empty data dir): the running gateway stops storing and a restarted one refuses, with the reason", async () => {
      const a = await openReplica(own.url, "wiped:");
      open.push(a);
      for (let seq = 1; seq <= 3; seq++) await a.transport.dispatch(telemetry("d", seq));
      await own.kill();
      await own.start({ wiped: true });
      await waitUntil(async () => {
        await a.transport.dispatch(telemetry("d", 4)).catch((e: Error) => e);
        return !a.transport.healthy() && a.transport.problem()?.includes("Redis lost data");
      }, { message: "the running gateway to refuse" });
      await expect(a.transport.dispatch(telemetry("d", 4))).rejects.toThrow(ErrRedisBehind);
      expect(await a.transport["redis"].get("wiped:id")).toBeNull(); // nothing reused an id
      const dir = a.dir;
      await a.transport.close();
      await expect(openReplica(own.url, "wiped:", dir)).rejects.toThrow(/Redis lost data.*refuses to run/s);
    });
  });
});
