/** Starts the compiled firmware in the simulator for a firmware test, with its own flash dir. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFleet, type Fleet, type FaultPlan, type FleetOptions } from "../../../simulator/src/index.ts";
import { assertFleetHealthy } from "../../helpers/fleet-health.ts";

export interface FirmwareRun {
  fleet: Fleet;
  flashDir: string;
  /** every console.log/warn/error line of every device, in order */
  logs: string[];
  stop(): Promise<void>;
}

export async function runFirmware(options: {
  /** the broker every device socket reaches (unless `brokerPorts` names its address) */
  port?: number;
  /** several brokers on 127.0.0.1: devices get MQTT_HOSTS listing them (unless the settings have one) */
  brokerPorts?: number[];
  settings?: Record<string, unknown> | ((index: number) => Record<string, unknown>);
  devices?: number;
  timeScale?: number;
  echo?: boolean;
  faults?: FaultPlan;
  /** reuse the flash images of an earlier run (its devices boot with their stored state) */
  flashDir?: string;
  seed?: number;
  battery?: FleetOptions["battery"];
  /** default the simulator's default, esp32 */
  profile?: FleetOptions["profile"];
}): Promise<FirmwareRun> {
  const ownFlash = options.flashDir === undefined;
  const flashDir = options.flashDir ?? mkdtempSync(join(tmpdir(), "fw-test-"));
  const logs: string[] = [];
  const fleet = await startFleet({
    devices: options.devices ?? 1,
    brokerUrl: options.port === undefined ? undefined : `mqtt://127.0.0.1:${options.port}`,
    brokerUrls: options.brokerPorts?.map((port) => `mqtt://127.0.0.1:${port}`),
    seed: options.seed ?? 7,
    timeScale: options.timeScale ?? 50,
    flashDir,
    eraseFlash: ownFlash,
    faults: options.faults,
    battery: options.battery,
    profile: options.profile,
    settings: options.settings ?? {},
    echo: (line: string) => {
      logs.push(line);
      if (options.echo || process.env.FW_ECHO) console.log(line);
    },
  });
  return {
    fleet,
    flashDir,
    logs,
    async stop() {
      await fleet.stop();
      if (ownFlash) rmSync(flashDir, { recursive: true, force: true });
      assertFleetHealthy(fleet);
    },
  };
}
