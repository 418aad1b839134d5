/** A factory-new fleet on its own temp flash dir, recorded from its first event; stop() removes the flash. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFleet, type Fleet, type FleetOptions } from "../../simulator/src/index.ts";
import { FleetRecord } from "./fleet-record.ts";
import { assertFleetHealthy } from "../helpers/fleet-health.ts";

export interface RecordedFleet {
  fleet: Fleet;
  record: FleetRecord;
  stop(): Promise<void>;
}

export async function startRecordedFleet(options: Omit<FleetOptions, "flashDir" | "eraseFlash">): Promise<RecordedFleet> {
  const flashDir = mkdtempSync(join(tmpdir(), "soak-fleet-"));
  let fleet: Fleet;
  try {
    fleet = await startFleet({ ...options, flashDir, eraseFlash: true });
  } catch (e) {
    rmSync(flashDir, { recursive: true, force: true });
    throw e;
  }
  const record = new FleetRecord();
  record.attach(fleet);
  return {
    fleet,
    record,
    async stop() {
      await fleet.stop();
      rmSync(flashDir, { recursive: true, force: true });
      assertFleetHealthy(fleet);
    },
  };
}
