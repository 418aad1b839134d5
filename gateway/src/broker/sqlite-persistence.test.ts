import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

describe("SqlitePersistence", () => {
  it("passes aedes-persistence's abstract contract suite (50 tests)", () => {
    const suite = join(import.meta.dirname, "sqlite-persistence.abstract.ts");
    const run = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-reporter=tap", suite], {
      encoding: "utf8",
      timeout: 120_000,
    });
    const summary = Object.fromEntries(
      [...run.stdout.matchAll(/^# (tests|pass|fail) (\d+)$/gm)].map((m) => [m[1], Number(m[2])]),
    );
    expect(summary, run.stdout.slice(-4000) + run.stderr).toEqual({ tests: 50, pass: 50, fail: 0 });
    expect(run.status).toBe(0);
  });
});
