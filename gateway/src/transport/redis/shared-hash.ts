/**
 * A Redis hash every gateway of one Redis reads and writes: state set through the API that must be one for the
 * whole fleet and is not an event (alert rules: alerts/rule-store.ts). Not trimmed by retention, unlike the log.
 */
import type { Redis } from "ioredis";

export class SharedHash {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {}

  /** Every field and its value. Rejects while Redis is unreachable. */
  async entries(): Promise<Map<string, string>> {
    return new Map(Object.entries(await this.redis.hgetall(this.key)));
  }

  async set(field: string, value: string): Promise<void> {
    await this.redis.hset(this.key, field, value);
  }

  /** True when the field was there. */
  async delete(field: string): Promise<boolean> {
    return (await this.redis.hdel(this.key, field)) > 0;
  }
}
