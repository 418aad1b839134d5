/**
 * Runs aedes-persistence's own contract suite (abstract.js, written for node:test), each test on a fresh store,
 * against the bare store or, with CONTRACT_STORE=stack, against the store as aedes gets it (stack.ts: every
 * decorator on top). The store is SqlitePersistence on a temp database, or with CONTRACT_REDIS_URL set a
 * RedisPersistence under a key prefix of its own. Run: `[CONTRACT_STORE=stack] [CONTRACT_REDIS_URL=redis://…]
 * node --import tsx --test contract.abstract.ts` (contract.test.ts and redis.test.ts run it and assert it passed).
 */
import { test } from "node:test";
import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { RedisPersistence } from "./redis.ts";
import { SqlitePersistence } from "./sqlite.ts";
import { decoratedPersistence } from "./stack.ts";
import type { BrokerStore } from "./store.ts";

const require = createRequire(import.meta.url);
const abstractPersistence = require("aedes-persistence/abstract.js") as (opts: object) => void;
const stacked = process.env.CONTRACT_STORE === "stack";
const redisUrl = process.env.CONTRACT_REDIS_URL;

abstractPersistence({
  test,
  testAsync: true,
  persistence: () => {
    const store: BrokerStore =
      redisUrl === undefined
        ? new SqlitePersistence({ dataDir: mkdtempSync(join(tmpdir(), "aedes-sqlite-abstract-")) })
        : new RedisPersistence({ url: redisUrl, prefix: `contract-${randomUUID()}:` });
    // The suite's clients have no identity in any ACL: every subscription counts as granted here.
    return stacked ? decoratedPersistence(store, () => true).store : store;
  },
});
