/**
 * Runs aedes-persistence's own contract suite (abstract.js, written for node:test), each test on a fresh temp
 * database, against the bare SqlitePersistence or, with CONTRACT_STORE=stack, against the store as aedes gets
 * it (stack.ts: every decorator on top). Run: `[CONTRACT_STORE=stack] node --import tsx --test contract.abstract.ts`
 * (contract.test.ts runs both and asserts they passed).
 */
import { test } from "node:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { SqlitePersistence } from "./sqlite.ts";
import { decoratedPersistence } from "./stack.ts";

const require = createRequire(import.meta.url);
const abstractPersistence = require("aedes-persistence/abstract.js") as (opts: object) => void;
const stacked = process.env.CONTRACT_STORE === "stack";

abstractPersistence({
  test,
  testAsync: true,
  persistence: () => {
    const store = new SqlitePersistence({ dataDir: mkdtempSync(join(tmpdir(), "aedes-sqlite-abstract-")) });
    // The suite's clients have no identity in any ACL: every subscription counts as granted here.
    return stacked ? decoratedPersistence(store, () => true).store : store;
  },
});
