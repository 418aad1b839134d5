/** Starts the compiled firmware in the simulator for a firmware test, with its own flash dir. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFleet, type Fleet } from "../../../simulator/src/index.ts";

export interface FirmwareRun {
  fleet: Fleet;
  /** every console.log/warn/error line of every device, in order */
  logs: string[];
  stop(): Promise<void>;
}

export async function runFirmware(options: {
  port: number;
  settings?: Record<string, unknown> | ((index: number) => Record<string, unknown>);
  devices?: number;
  timeScale?: number;
  echo?: boolean;
}): Promise<FirmwareRun> {
  const flashDir = mkdtempSync(join(tmpdir(), "fw-test-"));
  const logs: string[] = [];
  const fleet = await startFleet({
    devices: options.devices ?? 1,
    brokerUrl: `mqtt://127.0.0.1:${options.port}`,
    seed: 7,
    timeScale: options.timeScale ?? 50,
    flashDir,
    eraseFlash: true,
    settings: options.settings ?? {},
    echo: (line: string) => {
      logs.push(line);
      if (options.echo || process.env.FW_ECHO) console.log(line);
    },
  });
  // console.warn / console.error lines reach the host as dmesg lines prefixed "* " / "! "
  fleet.on("dmesg", (e) => {
    if (/^[!*] /.test(e.line)) logs.push(`[${e.device.id}] ${e.line}`);
  });
  return {
    fleet,
    logs,
    async stop() {
      await fleet.stop();
      rmSync(flashDir, { recursive: true, force: true });
    },
  };
}
