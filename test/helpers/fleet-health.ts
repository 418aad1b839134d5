/**
 * What no test may leave unnoticed in a simulated fleet (simulator/src/profile.ts, esp32 profile): a boot loop
 * (boots that never complete a wake: on a board, a device that resets forever), a settings record over the
 * runtime's read limit, a bricked device. Fleet helpers call this when they stop, so any suite fails on them.
 */
import type { Fleet } from "../../simulator/src/index.ts";

export function assertFleetHealthy(fleet: Fleet, opts: { allowBricked?: boolean } = {}): void {
  const c = fleet.counters();
  const problems: string[] = [];
  if (c.bootLoops > 0) problems.push(`${c.bootLoops} boot loop(s)`);
  if (c.settingsOverLimit > 0) problems.push(`${c.settingsOverLimit} settings record(s) over the ESP32 read limit`);
  if (c.bricked > 0 && !opts.allowBricked) problems.push(`${c.bricked} bricked device(s)`);
  if (problems.length > 0) {
    const who = fleet.devices
      .filter((d) => d.bootLoops > 0 || d.settingsOverLimit > 0 || d.bricked)
      .map((d) => d.id)
      .join(", ");
    throw new Error(`simulated fleet is unhealthy: ${problems.join("; ")} (devices: ${who}); see the device logs`);
  }
}
