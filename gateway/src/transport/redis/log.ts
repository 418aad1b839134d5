/**
 * The shared event log in Redis: one id counter, one stream whose entry ids are the event ids (`<id>-0`), and the
 * de-duplication memory, changed only by the two Lua scripts below so that the check, the id and the append are
 * one atomic step whichever gateway runs them (Redis runs a script with nothing in between).
 *
 * Ids are dense: every id the counter gives out is in the stream until retention trims it, so "the entry after
 * N is not N + 1" means trimmed, and retention by count is simple arithmetic.
 */
import { Redis } from "ioredis";
import type { NewEvent } from "../transport.ts";

/**
 * KEYS: counter, stream, seen, epoch. ARGV: event JSON, receivedAt, de-duplication member ('' = none), floor,
 * epoch. Returns {1, id} for a new event, {0, id} for a copy of an event already in the log. The floor is the
 * highest id the caller has seen: a counter below it means Redis lost data, and appending would reuse ids. The
 * epoch is the caller's: another one (or none) means this is not the log the caller's replica was built from
 * (flushed, replaced), even when the counter has since grown past the floor. Each entry carries the epoch, so
 * a replica tailing a flushed log notices too.
 * The stream is written before the counter: a failed XADD leaves no burnt id behind (scripts do not roll back).
 */
const APPEND = `
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last < tonumber(ARGV[4]) then return redis.error_reply('BEHIND ' .. last) end
if redis.call('GET', KEYS[4]) ~= ARGV[5] then return redis.error_reply('EPOCH') end
if ARGV[3] ~= '' then
  local seen = redis.call('ZSCORE', KEYS[3], ARGV[3])
  if seen then return {0, tonumber(seen)} end
end
local id = last + 1
redis.call('XADD', KEYS[2], id .. '-0', 'e', ARGV[1], 'r', ARGV[2], 'p', ARGV[5])
redis.call('SET', KEYS[1], id)
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[3], id, ARGV[3]) end
return {1, id}
`;

/**
 * KEYS: stream, seen, evicted. ARGV: through. Deletes every entry ≤ through exactly (MINID without `~`), forgets
 * their de-duplication keys with them (so that memory is bounded by retention too) and records the boundary.
 */
const TRIM = `
local through = tonumber(ARGV[1])
if through <= tonumber(redis.call('GET', KEYS[3]) or '0') then return 0 end
local n = redis.call('XTRIM', KEYS[1], 'MINID', (through + 1) .. '-0')
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', through)
redis.call('SET', KEYS[3], through)
return n
`;

/**
 * KEYS: lease. ARGV: holder, ttl ms. Takes the lease when free, renews it when `holder` has it: 1; else 0.
 * One script, so a lease that expires and goes to another between the check and the renewal is never extended.
 */
const HOLD = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 1 end
return 0
`;

/** KEYS: lease. ARGV: holder. Deletes the lease only if `holder` has it. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

type LogRedis = Redis & {
  releaseLease(key: string, holder: string): Promise<number>;
  holdLease(key: string, holder: string, ttlMs: number): Promise<0 | 1>;
  appendEvent(counter: string, stream: string, seen: string, epoch: string, event: string, receivedAt: number, member: string, floor: number, epochValue: number): Promise<[0 | 1, number]>;
  trimLog(stream: string, seen: string, evicted: string, through: number): Promise<number>;
};

export class ErrRedisBehind extends Error {
  readonly code = "redis_behind";
  constructor(redisLatest: number, seen: number) {
    super(
      `Redis' event id counter is ${redisLatest} but this gateway has already seen id ${seen}: Redis lost data (started ` +
        `without its append-only file, or flushed). New events would reuse ids browsers already hold, so this gateway ` +
        `refuses to run. Restore Redis' data directory; or, to start over, empty Redis and the dataDir of every gateway.`,
    );
    this.name = "ErrRedisBehind";
  }
}

/** Redis' log is not the one this replica was built from: Redis was flushed or replaced (a new epoch). */
export class ErrRedisReplaced extends Error {
  readonly code = "redis_replaced";
  constructor() {
    super(
      `Redis' event log is not the one this gateway's replica was built from (Redis was flushed, or another Redis ` +
        `answers at this address): its ids mean other events. This gateway refuses to run. Restore Redis' data; or, ` +
        `to start over, empty Redis and the dataDir of every gateway.`,
    );
    this.name = "ErrRedisReplaced";
  }
}

/** The de-duplication identity of an event in the shared log; undefined when it has none (every copy is new). */
export function dedupeMember(event: NewEvent): string | undefined {
  // device ids are single topic levels (no '/'), so the member is unambiguous
  if (event.kind === "telemetry") return `${event.deviceId}/seq/${event.seq}`;
  return event.dedupeKey === undefined ? undefined : `${event.deviceId}/${event.kind}/${event.dedupeKey}`;
}

export interface LogEntry {
  id: number;
  /** The log's epoch when it was appended (undefined: appended before epochs existed). */
  epoch: number | undefined;
  event: NewEvent;
  receivedAt: number;
}

export class RedisLog {
  readonly keys;
  private readonly redis: LogRedis;

  constructor(redis: Redis, prefix: string) {
    this.keys = {
      counter: `${prefix}id`,
      stream: `${prefix}log`,
      seen: `${prefix}seen`,
      evicted: `${prefix}evicted`,
      epoch: `${prefix}epoch`,
      leaderLease: `${prefix}lease:leader`,
      client: (clientId: string) => `${prefix}lease:mqtt-client:${clientId}`,
      adminToken: `${prefix}admin-token`,
      hash: (name: string) => `${prefix}hash:${name}`,
    };
    redis.defineCommand("appendEvent", { numberOfKeys: 4, lua: APPEND });
    redis.defineCommand("trimLog", { numberOfKeys: 3, lua: TRIM });
    redis.defineCommand("holdLease", { numberOfKeys: 1, lua: HOLD });
    redis.defineCommand("releaseLease", { numberOfKeys: 1, lua: RELEASE });
    this.redis = redis as LogRedis;
  }

  /**
   * Appends unless a copy is in the log: `{ id, isNew }`. Rejects with ErrRedisBehind when Redis is behind
   * `floor`, ErrRedisReplaced when its epoch is not `epoch`.
   */
  async append(event: NewEvent, floor: number, epoch: number): Promise<{ id: number; isNew: boolean }> {
    const { counter, stream, seen } = this.keys;
    try {
      const member = dedupeMember(event) ?? "";
      const [isNew, id] = await this.redis.appendEvent(counter, stream, seen, this.keys.epoch, JSON.stringify(event), event.receivedAt, member, floor, epoch);
      return { id, isNew: isNew === 1 };
    } catch (err) {
      const behind = /^BEHIND (\d+)/.exec((err as Error).message);
      if (behind) throw new ErrRedisBehind(Number(behind[1]), floor);
      if (/^EPOCH/.test((err as Error).message)) throw new ErrRedisReplaced();
      throw err;
    }
  }

  /** The epoch of this log: a random number the first gateway sets, gone with the data when Redis loses it. */
  async epoch(candidate: number): Promise<number> {
    return Number(await this.shared(this.keys.epoch, String(candidate)));
  }

  /** The counter (latest id ever assigned) and the evicted boundary. */
  async state(redis: Redis = this.redis): Promise<{ latestId: number; evictedThrough: number }> {
    const [latest, evicted] = await redis.mget(this.keys.counter, this.keys.evicted);
    return { latestId: Number(latest ?? 0), evictedThrough: Number(evicted ?? 0) };
  }

  /**
   * Entries after `afterId`, oldest first, waiting up to `blockMs` for one; on `reader`, a connection of its own
   * (a blocked XREAD holds its connection).
   */
  async read(reader: Redis, afterId: number, count: number, blockMs: number): Promise<LogEntry[]> {
    const reply = await reader.xread("COUNT", count, "BLOCK", blockMs, "STREAMS", this.keys.stream, `${afterId}-0`);
    if (!reply) return [];
    return reply[0]![1].map(([sid, fields]) => toEntry(sid, fields));
  }

  /**
   * History retention on the shared log: keeps the newest `maxEvents` and nothing received before `olderThan`.
   * Returns the entries deleted.
   */
  async trim(maxEvents: number, olderThan: number): Promise<number> {
    const { latestId, evictedThrough } = await this.state();
    let through = Math.max(evictedThrough, latestId - maxEvents);
    // by age: walk the oldest entries (their `r` field) while they are too old
    for (let page = await this.range(through, 256); page.length > 0; page = await this.range(through, 256)) {
      const old = page.filter((e) => e.receivedAt < olderThan);
      if (old.length > 0) through = old[old.length - 1]!.id;
      if (old.length < page.length) break;
    }
    if (through <= evictedThrough) return 0;
    return this.redis.trimLog(this.keys.stream, this.keys.seen, this.keys.evicted, through);
  }

  /** A short lease (the leader's, an MQTT client id), renewed by its holder; true when `holder` has it. */
  async holdLease(key: string, holder: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.holdLease(key, holder, ttlMs)) === 1;
  }

  /** The value at `key`, set to `candidate` first if it has none: the first writer's value, for everyone. */
  async shared(key: string, candidate: string): Promise<string> {
    await this.redis.set(key, candidate, "NX");
    return (await this.redis.get(key)) ?? candidate;
  }

  /** Gives a lease up (on shutdown: the next leader need not wait for it to expire). */
  async releaseLease(key: string, holder: string): Promise<void> {
    await this.redis.releaseLease(key, holder);
  }

  private async range(afterId: number, count: number): Promise<LogEntry[]> {
    const entries = await this.redis.xrange(this.keys.stream, `(${afterId}-0`, "+", "COUNT", count);
    return entries.map(([sid, fields]) => toEntry(sid, fields));
  }
}

/** An entry as stored; throws ErrBadEntry when it is not one this gateway can read. */
function toEntry(sid: string, fields: string[]): LogEntry {
  const id = Number(sid.slice(0, sid.indexOf("-")));
  const field = (name: string) => {
    const i = fields.indexOf(name);
    return i < 0 ? undefined : fields[i + 1];
  };
  const epoch = field("p");
  try {
    return { id, epoch: epoch === undefined ? undefined : Number(epoch), event: JSON.parse(field("e") ?? "") as NewEvent, receivedAt: Number(field("r")) };
  } catch (err) {
    throw new ErrBadEntry(id, (err as Error).message);
  }
}

/** An entry of the shared log this gateway cannot read (written by a newer or broken gateway). */
export class ErrBadEntry extends Error {
  readonly code = "bad_log_entry";
  constructor(readonly id: number, detail: string) {
    super(`event ${id} in the Redis log cannot be read by this gateway (${detail}): replicas wait at it`);
    this.name = "ErrBadEntry";
  }
}
