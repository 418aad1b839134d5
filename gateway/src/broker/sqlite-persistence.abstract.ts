/**
 * Runs aedes-persistence's own contract suite (abstract.js, written for node:test) against SqlitePersistence,
 * each test on a fresh temp database. Run: `node --import tsx --test gateway/src/broker/sqlite-persistence.abstract.ts`
 * (sqlite-persistence.test.ts does that and asserts it passed).
 */
import { test } from "node:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { SqlitePersistence } from "./sqlite-persistence.ts";

const require = createRequire(import.meta.url);
const abstractPersistence = require("aedes-persistence/abstract.js") as (opts: object) => void;

abstractPersistence({
  test,
  testAsync: true,
  persistence: () => new SqlitePersistence({ dataDir: mkdtempSync(join(tmpdir(), "aedes-sqlite-abstract-")) }),
});
