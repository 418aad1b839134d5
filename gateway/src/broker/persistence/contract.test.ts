import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

describe("aedes-persistence's abstract contract suite (50 tests)", () => {
  it.each([
    ["the bare SqlitePersistence", "bare"],
    ["the decorated stack aedes runs on", "stack"],
  ])("passes on %s", (_name, store) => {
    const suite = join(import.meta.dirname, "contract.abstract.ts");
    const run = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-reporter=tap", suite], {
      env: { ...process.env, CONTRACT_STORE: store },
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
