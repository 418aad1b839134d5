/**
 * The harness of the suites that run the fixture program (fixture-firmware.ts): builds it once per file, gives
 * the file a temp flash root, stops every fleet a test registered in `fleets` after it, and cleans up.
 *
 * @example
 * const fx = useFixtureFleets("sim-flash-");
 * const fleet = await startFleet({ ..., bytecodePath: fx.bytecodePath, flashDir: join(fx.flashRoot, "a") });
 * fx.fleets.push(fleet);
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll } from "vitest";
import type { Fleet } from "../src/index.ts";
import { buildFixtureFirmware, removeFixtureFirmware } from "./fixture-firmware.ts";

/** The fixture never opens a socket: any broker URL will do. */
export const NO_BROKER = "mqtt://127.0.0.1:1";

export interface FixtureFleets {
  /** the built fixture program (set in beforeAll) */
  bytecodePath: string;
  /** this file's temp flash root (set in beforeAll) */
  flashRoot: string;
  /** fleets to stop after each test */
  fleets: Fleet[];
}

export function useFixtureFleets(flashPrefix: string): FixtureFleets {
  const fx: FixtureFleets = { bytecodePath: "", flashRoot: "", fleets: [] };
  beforeAll(async () => {
    fx.bytecodePath = await buildFixtureFirmware();
    fx.flashRoot = mkdtempSync(join(tmpdir(), flashPrefix));
  });
  afterEach(async () => {
    await Promise.all(fx.fleets.splice(0).map((f) => f.stop()));
  });
  afterAll(() => {
    rmSync(fx.flashRoot, { recursive: true, force: true });
    removeFixtureFirmware();
  });
  return fx;
}
