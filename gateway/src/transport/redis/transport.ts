/**
 * The scaled-out Transport: Redis (log.ts) is the event log and the id sequencer shared by every gateway; each
 * gateway is a projection of that log into its own SQLite replica (sqlite/projection.ts, the same apply step as
 * the one-process mode), which answers readings, devices, series and SSE replay. A tail loop reads the log in id
 * order (XREAD, not pub/sub, so no instance misses an id), applies each batch in one transaction and only then
 * publishes it to the local SSE hub: as in SqliteTransport, a live event is always already in the log a replay
 * reads. dispatch() appends through Redis and resolves once this instance's replica applied the event
 * (read-your-writes on the instance asked).
 */
import { randomBytes, randomInt } from "node:crypto";
import { Redis } from "ioredis";
import type { AlertTable } from "../sqlite/alerts.ts";
import type { CommandView } from "../sqlite/commands.ts";
import type { DeviceView } from "../../protocol/device-state.ts";
import type { Logger } from "../../ops/log.ts";
import type { Metrics } from "../../ops/metrics.ts";
import { Hub, type HubOptions } from "../hub/hub.ts";
import type { Db } from "../sqlite/db.ts";
import { Projection, type ProjectionOptions } from "../sqlite/projection.ts";
import { SqliteEventLog } from "../sqlite/event-log.ts";
import type { SqliteSummaries } from "../sqlite/summaries.ts";
import {
  deviceDeleted,
  ErrAppliedLate,
  ErrTransportClosed,
  type NewEvent,
  type ReadingsQuery,
  type SseSink,
  type StoredEvent,
  type StoredListener,
  type StreamRequest,
  type Transport,
} from "../transport.ts";
import { ErrBadEntry, ErrRedisBehind, ErrRedisReplaced, RedisLog, type LogEntry } from "./log.ts";
import { SharedHash } from "./shared-hash.ts";

const PRUNE_EVERY_MS = 10_000;
const LEASE_MS = 30_000;
/** The holder stops acting as leader this long before its lease could expire in Redis. */
const LEASE_MARGIN_MS = 5_000;
const TAIL_BATCH = 512;
const TAIL_BLOCK_MS = 2_000;
const RETRY_MS = 250;
/**
 * A command without an answer for this long means the connection is dead (a Redis host that lost power leaves
 * a half-open TCP connection: no error, no reply): it fails, the connection is made again, healthy() says so.
 */
const COMMAND_TIMEOUT_MS = 5_000;
/** TCP keepalive on both connections, so the kernel notices a dead peer of an idle connection too. */
const KEEPALIVE_MS = 5_000;
/** While appends fail, a write is tried this often: the first that succeeds makes this instance healthy again. */
const PROBE_MS = 1_000;

export interface RedisTransportOptions extends ProjectionOptions {
  /** redis://[user:password@]host:port[/db] */
  url: string;
  /** Prefix of every key, so gateway fleets (or tests) can share one Redis. */
  keyPrefix: string;
  sse: HubOptions;
  /** How long dispatch() waits for the local replica to apply its event before rejecting (default 10 s). */
  applyTimeoutMs?: number;
  /** How long opening waits for Redis (default 5 s). */
  connectTimeoutMs?: number;
  /**
   * This gateway's MQTT client id: claimed in Redis while it runs, because two gateways with one id would share
   * one broker session (each would get part of the messages and keep taking the session from the other).
   */
  mqttClientId?: string;
}

/** Another running gateway of this Redis uses the same MQTT client id. */
export class ErrClientIdInUse extends Error {
  readonly code = "mqtt_client_id_in_use";
  constructor(clientId: string) {
    super(
      `MQTT client id "${clientId}" is in use by another running gateway of this Redis: give each gateway its own ` +
        `(mqtt.clientId, MQTT_CLIENT_ID), so that each has its own broker session and receives every message.`,
    );
    this.name = "ErrClientIdInUse";
  }
}

/** This replica cannot continue from the shared log: it misses ids that retention deleted there. */
export class ErrReplicaBehind extends Error {
  readonly code = "replica_behind";
  constructor(localLatest: number, evictedThrough: number) {
    super(
      `this gateway's local replica (its dataDir) ends at event id ${localLatest}, but Redis' log was trimmed through id ` +
        `${evictedThrough}: the gateway was away longer than history retention and cannot catch up. Start it with an ` +
        `empty dataDir: it then copies what Redis still has (clients resuming from older ids get a reset).`,
    );
    this.name = "ErrReplicaBehind";
  }
}

interface Waiter {
  id: number;
  receivedMono?: number;
  resolve: (stored: StoredEvent | undefined) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

export class RedisTransport implements Transport {
  /** Buckets of every reading, derived from the log in this replica. */
  readonly summaries: SqliteSummaries;
  private readonly hub: Hub;
  private readonly listeners: StoredListener[] = [];
  private readonly waiters = new Set<Waiter>();
  private readonly pruneTimer: NodeJS.Timeout;
  private readonly instance = randomBytes(8).toString("hex");
  private tailUp = true;
  private applyFailing = false;
  /** Why the last append failed while Redis was connected (OOM, a timeout), until an append or a probe succeeds. */
  private appendFailure: string | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  /** Until when (performance.now(): NTP may step the wall clock) this instance holds the leader lease. */
  private leaderUntil = 0;
  /** What the leadership listeners were last told. */
  private leading = false;
  private readonly leadershipListeners: Array<(leader: boolean) => void> = [];
  /**
   * Set when this instance must not go on (ErrRedisBehind, ErrRedisReplaced, ErrReplicaBehind, ErrClientIdInUse):
   * it gives up its leases and streams, healthy() is false and dispatch rejects; it stays up so /healthz says why.
   */
  private fatal: Error | undefined;
  private retentionRunning = false;
  private closed = false;
  private readonly tailDone: Promise<void>;

  private constructor(
    private readonly projection: Projection,
    private readonly redis: Redis,
    private readonly reader: Redis,
    private readonly log: RedisLog,
    /** The epoch of the Redis log this replica follows (log.ts). */
    private readonly epoch: number,
    /** The newest id this replica applied. */
    private lastApplied: number,
    private readonly opts: RedisTransportOptions,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    this.summaries = projection.summaries;
    this.hub = new Hub(opts.sse, projection.eventLog, metrics);
    redis.on("ready", () => this.reportHealth());
    redis.on("close", () => this.reportHealth());
    this.reportHealth();
    this.tailDone = this.tail();
    void this.retention();
    this.pruneTimer = setInterval(() => void this.retention(), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
  }

  /**
   * Connects, checks that this replica and Redis agree, and resolves once the replica caught up with the log.
   * Rejects with ErrRedisBehind (Redis lost data) or ErrReplicaBehind (the replica is older than the log).
   * @example
   * const transport = await RedisTransport.open(openDatabase(dataDir), { url: "redis://127.0.0.1:6379", keyPrefix: "sensors:", ...}, metrics, log);
   */
  static async open(db: Db, opts: RedisTransportOptions, metrics: Metrics, logger: Logger): Promise<RedisTransport> {
    // No offline queue and no retries: while Redis is unreachable a dispatch fails at once (the MQTT message
    // stays unacknowledged in the broker) instead of piling up in memory.
    const connection = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: opts.connectTimeoutMs ?? 5_000,
      commandTimeout: COMMAND_TIMEOUT_MS,
      keepAlive: KEEPALIVE_MS,
      retryStrategy: (attempt: number) => Math.min(attempt * 100, 1_000),
    };
    const redis = new Redis(opts.url, connection);
    // reported by healthy(), metrics and the tail's log line, not once per retry
    let authError: string | undefined;
    const onError = (err: Error) => {
      if (/WRONGPASS|NOAUTH|NOPERM/.test(err.message)) authError = err.message;
    };
    redis.on("error", onError);
    // the reader's XREAD blocks TAIL_BLOCK_MS by design
    const reader = redis.duplicate({ commandTimeout: TAIL_BLOCK_MS + COMMAND_TIMEOUT_MS });
    reader.on("error", onError);
    try {
      await Promise.all([redis.connect(), reader.connect()]);
    } catch (err) {
      redis.disconnect();
      reader.disconnect();
      // ioredis reports a refused password as "Connection is closed": say what Redis said
      throw new Error(`cannot reach Redis at ${redactUrl(opts.url)}: ${authError ?? (err as Error).message}`);
    }
    let projection: Projection | undefined;
    let transport: RedisTransport | undefined;
    try {
      const log = new RedisLog(redis, opts.keyPrefix);
      projection = new Projection(db, opts, metrics, logger);
      if (opts.mqttClientId !== undefined && !(await log.holdLease(log.keys.client(opts.mqttClientId), projection.replicaId(), LEASE_MS))) {
        throw new ErrClientIdInUse(opts.mqttClientId);
      }
      const local = projection.eventLog.bounds().latestId;
      const shared = await log.state();
      if (shared.latestId < local) throw new ErrRedisBehind(shared.latestId, local);
      const epoch = await log.epoch(randomInt(2 ** 47));
      if (projection.followedEpoch(epoch, local === 0) !== epoch) throw new ErrRedisReplaced();
      let from = local;
      if (local === 0 && shared.evictedThrough > 0) {
        projection.eventLog.recordEvicted(shared.evictedThrough); // a fresh replica starts where the log does
        from = shared.evictedThrough;
      } else if (local < shared.evictedThrough) throw new ErrReplicaBehind(local, shared.evictedThrough);
      transport = new RedisTransport(projection, redis, reader, log, epoch, from, opts, metrics, logger);
      await transport.appliedThrough(shared.latestId, undefined, Number.POSITIVE_INFINITY); // however long the log
      logger.info({ latestId: shared.latestId, replicaFrom: from }, "redis log replica caught up");
      return transport;
    } catch (err) {
      if (transport) await transport.close();
      else {
        projection?.close();
        redis.disconnect();
        reader.disconnect();
      }
      throw err;
    }
  }

  async dispatch(event: NewEvent, receivedMono = performance.now()): Promise<StoredEvent | undefined> {
    if (this.closed) throw new ErrTransportClosed();
    if (this.fatal) throw this.fatal;
    let appended: { id: number; isNew: boolean };
    try {
      appended = await this.log.append(event, this.lastApplied, this.epoch);
    } catch (err) {
      if (err instanceof ErrRedisBehind || err instanceof ErrRedisReplaced) this.stop(err);
      else this.appendFailed(err as Error);
      throw err;
    }
    if (this.appendFailure !== undefined) this.appendWorks();
    if (!appended.isNew) return undefined;
    this.metrics.eventsStored.inc({ kind: event.kind });
    return this.appliedThrough(appended.id, receivedMono);
  }

  /**
   * Resolves once the replica applied `id`, with that event (undefined when id is 0 or retention took it);
   * rejects after `timeoutMs`.
   */
  private appliedThrough(id: number, receivedMono?: number, timeoutMs = this.opts.applyTimeoutMs ?? 10_000): Promise<StoredEvent | undefined> {
    if (id <= this.lastApplied) return Promise.resolve(this.localEvent(id));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { id, receivedMono, resolve, reject, timer: undefined };
      if (Number.isFinite(timeoutMs)) {
        waiter.timer = setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new ErrAppliedLate(id, timeoutMs));
        }, timeoutMs);
      }
      this.waiters.add(waiter);
    });
  }

  private localEvent(id: number): StoredEvent | undefined {
    const [event] = this.projection.eventLog.after(id - 1, 1);
    return event?.id === id ? event : undefined;
  }

  /**
   * An append failed although this instance may look connected (Redis at maxmemory answers OOM; a dead host
   * times out): unhealthy until a write goes through again, so the bridge does not reconnect for redelivery
   * into the same failure. A probe write finds out, since no MQTT message is taken meanwhile.
   */
  private appendFailed(err: Error): void {
    this.metrics.redisAppendFailures.inc();
    if (/timed out/i.test(err.message)) this.redis.disconnect(true); // a half-open connection never answers again
    if (this.appendFailure === undefined) this.logger.error({ err: err.message }, "redis does not take appends: events are not acknowledged");
    this.appendFailure = err.message;
    this.reportHealth();
    this.probeTimer ??= setInterval(() => {
      this.redis.set(`${this.log.keys.stream}:probe:${this.instance}`, "1", "PX", PROBE_MS).then(
        () => this.appendWorks(),
        () => {},
      );
    }, PROBE_MS);
    this.probeTimer.unref();
  }

  private appendWorks(): void {
    if (this.appendFailure === undefined) return;
    this.logger.info("redis takes appends again");
    this.appendFailure = undefined;
    clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    this.reportHealth();
  }

  /** Reads the log from the last applied id, forever: reconnects after an outage and resumes where it stopped. */
  private async tail(): Promise<void> {
    let checkCounter = false;
    while (!this.closed && !this.fatal) {
      let entries: LogEntry[];
      try {
        if (checkCounter) {
          // Redis came back: it must still have every id this replica applied (AOF), or ids would be reused.
          const { latestId } = await this.log.state(this.reader);
          if (latestId < this.lastApplied) return this.stop(new ErrRedisBehind(latestId, this.lastApplied));
          checkCounter = false;
        }
        entries = await this.log.read(this.reader, this.lastApplied, TAIL_BATCH, TAIL_BLOCK_MS);
      } catch (err) {
        if (this.closed) return;
        if (err instanceof ErrBadEntry) {
          // not an outage: the replica waits at this id (skipping it would lose an event) until a gateway that
          // can read it replaces this one
          this.applyFailed(err, err.id);
          await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
          continue;
        }
        if (/timed out/i.test((err as Error).message)) this.reader.disconnect(true); // half-open: make it again
        if (this.tailUp) this.logger.error({ err: (err as Error).message }, "redis unreachable: events are not acknowledged until it is back");
        this.tailUp = false;
        this.reportHealth();
        checkCounter = true;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        continue;
      }
      if (!this.tailUp) this.logger.info("redis reachable again: resuming the log");
      this.tailUp = true;
      this.reportHealth();
      if (entries.length > 0 && !this.applyEntries(entries)) await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  /** Applies a batch in one transaction, then publishes it in id order. False when it must be tried again. */
  private applyEntries(entries: LogEntry[]): boolean {
    const batch: Array<{ event: NewEvent; id: number }> = [];
    let next = this.lastApplied;
    for (const { id, event, epoch } of entries) {
      if (id <= next) continue;
      if (epoch !== undefined && epoch !== this.epoch) {
        this.stop(new ErrRedisReplaced()); // Redis was flushed and a gateway has appended since
        return false;
      }
      if (id !== next + 1) {
        // ids are dense (log.ts): the missing ones were trimmed before this replica applied them. A replica that
        // has applied nothing yet only starts later (the leader trimmed since it read the boundary).
        if (this.projection.eventLog.bounds().latestId === 0) this.projection.eventLog.recordEvicted(id - 1);
        else {
          this.stop(new ErrReplicaBehind(next, id - 1));
          return false;
        }
      }
      batch.push({ event, id });
      next = id;
    }
    let stored: StoredEvent[];
    try {
      stored = this.projection.applyAll(batch);
    } catch (err) {
      this.applyFailed(err as Error, batch[0]?.id);
      return false;
    }
    if (this.applyFailing) this.logger.info({ through: next }, "the local replica applies the redis log again");
    this.applyFailing = false;
    this.lastApplied = next;
    const now = performance.now();
    const mono = new Map<number, number | undefined>();
    for (const w of this.waiters) if (w.id <= next) mono.set(w.id, w.receivedMono);
    for (const event of stored) this.hub.publish(event, mono.get(event.id) ?? now);
    for (let i = 0; i < stored.length; i++) for (const listener of this.listeners) listener(batch[i]!.event, stored[i]!);
    const first = batch[0]?.id ?? next + 1;
    for (const w of this.waiters) {
      if (w.id > next) continue;
      this.waiters.delete(w);
      clearTimeout(w.timer);
      w.resolve(stored[w.id - first] ?? this.localEvent(w.id));
    }
    return true;
  }

  private applyFailed(err: Error, from: number | undefined): void {
    // once per failure, not per retry (a full disk would flood the log)
    if (!this.applyFailing) this.logger.error({ err: err.message, from }, "cannot apply the redis log to the local replica; retrying");
    this.applyFailing = true;
    this.reportHealth();
  }

  /**
   * This instance must not go on: it says why in the log, /healthz turns unhealthy, dispatches reject, and it
   * gives up what others need: the leases (another gateway leads, or takes the client id) and its SSE streams
   * (browsers reconnect, through the load balancer, to a healthy gateway).
   */
  private stop(err: Error): void {
    if (this.fatal) return;
    this.fatal = err;
    this.leaderUntil = 0;
    clearInterval(this.pruneTimer);
    clearInterval(this.probeTimer);
    this.reportHealth();
    this.noteLeadership();
    this.logger.fatal({ code: (err as { code?: string }).code }, err.message);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiters.clear();
    this.hub.close();
    void this.releaseLeases();
    for (const listener of this.fatalListeners) listener(err);
  }

  /** Called once if this instance must stop (see stop()): the owner of the MQTT session ends it. */
  onFatal(listener: (err: Error) => void): void {
    this.fatalListeners.push(listener);
  }
  private readonly fatalListeners: Array<(err: Error) => void> = [];

  private async releaseLeases(): Promise<void> {
    const releases = [this.log.releaseLease(this.log.keys.leaderLease, this.instance)];
    // a client id this instance lost is another's now: only ours is released (the script checks the holder)
    if (this.opts.mqttClientId !== undefined) releases.push(this.log.releaseLease(this.log.keys.client(this.opts.mqttClientId), this.projection.replicaId()));
    await Promise.allSettled(releases); // best effort: they expire anyway
  }

  /**
   * The one instance at a time (a Redis lease, renewed every PRUNE_EVERY_MS) that trims the shared log and turns
   * summary changes into events: work that must happen once, not once per gateway.
   */
  isLeader(): boolean {
    return !this.fatal && !this.closed && performance.now() < this.leaderUntil;
  }

  /**
   * Called with true when this instance becomes the leader and false when it stops being it (lease lost or not
   * renewed, fatal error, close): for work that must run on one gateway only, e.g. what it publishes to MQTT.
   */
  onLeadership(listener: (leader: boolean) => void): void {
    this.leadershipListeners.push(listener);
  }

  private noteLeadership(): void {
    const leader = this.isLeader();
    if (leader === this.leading) return;
    this.leading = leader;
    this.logger.info({ leader }, leader ? "this gateway is the leader" : "this gateway is no longer the leader");
    for (const listener of this.leadershipListeners) {
      try {
        listener(leader);
      } catch (err) {
        this.logger.error({ err }, "leadership listener failed");
      }
    }
  }

  /** History retention: the shared log by the leader, then this replica as in SQLite mode. One run at a time. */
  private async retention(): Promise<void> {
    if (this.retentionRunning) return;
    this.retentionRunning = true;
    try {
      await this.retain(Date.now());
    } finally {
      this.retentionRunning = false;
    }
  }

  private async retain(now: number): Promise<void> {
    const gone = () => this.closed || this.fatal !== undefined;
    if (gone()) return;
    this.noteLeadership(); // a lease that ran out while the last renewal hung
    const clientId = this.opts.mqttClientId;
    if (clientId !== undefined) {
      try {
        // lost (this instance was away longer than the lease and another gateway took the id): both would
        // take the broker session from each other, so this one stops
        if (!(await this.log.holdLease(this.log.keys.client(clientId), this.projection.replicaId(), LEASE_MS))) return this.stop(new ErrClientIdInUse(clientId));
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, "cannot renew the MQTT client id claim");
      }
    }
    if (gone()) return;
    try {
      const asked = performance.now(); // the lease runs from before the request, whatever its latency
      if (await this.log.holdLease(this.log.keys.leaderLease, this.instance, LEASE_MS)) {
        this.leaderUntil = gone() ? 0 : asked + LEASE_MS - LEASE_MARGIN_MS;
        if (!gone()) await this.trimShared(now);
      } else this.leaderUntil = 0;
    } catch (err) {
      this.leaderUntil = 0;
      this.logger.warn({ err: (err as Error).message }, "redis log retention failed");
    }
    this.noteLeadership();
    if (gone()) return;
    try {
      this.projection.prune(now);
    } catch (err) {
      this.logger.error({ err }, "history retention failed");
    }
  }

  /** Retention on the shared log now (the lease holder's step; tests call it to trim). */
  async trimShared(now = Date.now(), retention = this.opts.retention): Promise<number> {
    return this.log.trim(retention.maxEvents, now - retention.maxAgeMs);
  }

  /** Retention on this replica now, with `retention` instead of the configured one. */
  pruneReplica(now = Date.now(), retention = this.opts.retention): void {
    new SqliteEventLog(this.projection.db, retention).prune(now);
  }

  /**
   * The admin token of every gateway on this Redis: the first gateway's (its `candidate`), so one login works on
   * all of them. A secret: Redis must require a password when reachable from the network (config.ts checks).
   */
  sharedAdminToken(candidate: string): Promise<string> {
    return this.log.shared(this.log.keys.adminToken, candidate);
  }

  onStored(listener: StoredListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /**
   * A Last-Event-ID this replica has not applied yet but Redis has assigned (the client came from a gateway that
   * is ahead) waits for the replica instead of a reset; an id Redis never assigned gets the hub's `unknown_id`.
   */
  subscribe(request: StreamRequest, sink: SseSink): void {
    if (this.closed || this.fatal) throw new ErrTransportClosed();
    const wanted = request.lastEventId;
    if (wanted === undefined || wanted <= this.lastApplied) return void this.hub.subscribe(request, sink);
    void this.log
      .state()
      // Redis unreachable: the id may well be assigned (another gateway saw it), so wait as a dispatch would
      .then(({ latestId }) => wanted <= latestId, () => true)
      .then((assigned) => (assigned ? this.appliedThrough(wanted) : undefined))
      .catch(() => undefined) // the replica too slow: the hub decides with what it has
      .then(() => {
        if (!this.closed) return void this.hub.subscribe(request, sink);
        sink.open({ writable: () => {}, gone: () => {} });
        sink.end();
      });
  }

  readings(deviceId: string, query: ReadingsQuery, limit: number): StoredEvent[] {
    return this.projection.eventLog.readings(deviceId, query, limit);
  }

  /** A command as the command events made it (transport/sqlite/commands.ts). */
  command(id: string): CommandView | undefined {
    return this.projection.commandTable.get(id);
  }

  /** Alerts as the alert events made them (transport/sqlite/alerts.ts). */
  get alertTable(): AlertTable {
    return this.projection.alertTable;
  }

  async forgetDevice(deviceId: string): Promise<boolean> {
    if (!this.device(deviceId)) return false;
    await this.dispatch(deviceDeleted(deviceId, Date.now()));
    return true;
  }

  /** A hash in this Redis that every gateway reads and writes (what is set through the API, e.g. alert rules). */
  sharedHash(name: string): SharedHash {
    return new SharedHash(this.redis, this.log.keys.hash(name));
  }

  devices(): DeviceView[] {
    return this.projection.deviceTable.list();
  }

  device(deviceId: string): DeviceView | undefined {
    return this.projection.deviceTable.get(deviceId);
  }

  /** The local replica answers (the `db` of /healthz; healthy() covers Redis too). */
  replicaHealthy(): boolean {
    return this.projection.healthy();
  }

  /** Redis answers, the tail is reading it, and the replica is open and applying it. */
  healthy(): boolean {
    return (
      !this.fatal &&
      !this.closed &&
      this.redis.status === "ready" &&
      this.tailUp &&
      this.appendFailure === undefined &&
      !this.applyFailing &&
      this.projection.healthy()
    );
  }

  private reportHealth(): void {
    this.metrics.redisUp.set(this.healthy() ? 1 : 0);
  }

  /** Why healthy() is false, for /healthz and the logs. */
  problem(): string | undefined {
    if (this.fatal) return this.fatal.message;
    if (this.redis.status !== "ready" || !this.tailUp) return "redis unreachable";
    if (this.appendFailure !== undefined) return `redis does not take appends: ${this.appendFailure}`;
    if (this.applyFailing) return "the local replica cannot apply the log";
    return undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pruneTimer);
    this.noteLeadership();
    clearInterval(this.probeTimer);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new ErrTransportClosed());
    }
    this.waiters.clear();
    this.hub.close();
    this.reader.disconnect(); // ends the blocked XREAD
    await this.tailDone;
    if (!this.fatal) await this.releaseLeases(); // a fatal instance released them when it stopped
    this.redis.disconnect();
    this.metrics.redisUp.set(0);
    this.projection.close();
  }
}

/** The URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(invalid URL)";
  }
}
