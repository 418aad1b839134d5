import { describe, expect, it } from "vitest";
import { status, telemetry } from "../transport/contract.ts";
import { applyDeviceEvent, mergeDeviceView, newDevice, type DeviceEvent } from "./device-state.ts";

let nextId = 1;
const stored = (e: ReturnType<typeof telemetry>): DeviceEvent => ({ id: nextId++, ...e }) as DeviceEvent;

describe("device-state reducer (shared by the gateway and the page)", () => {
  it("a late, older reading is neither the last reading nor the battery, but still means online", () => {
    const d = newDevice("d");
    for (const e of [telemetry("d", 5, 1_000, { battery: 3.9 }), status("d", "sleeping", 2_000, 60_000), telemetry("d", 3, 2_500, { battery: 3.1 })]) {
      applyDeviceEvent(d, stored(e));
    }
    expect(d).toMatchObject({ status: "online", statusAt: 2_500, battery: 3.9, lastReading: { seq: 5 }, lastSeen: 2_500 });
  });

  it("orders status by event id, not by a wall clock that stepped back", () => {
    const d = newDevice("d");
    applyDeviceEvent(d, stored(status("d", "online", 5_000)));
    applyDeviceEvent(d, stored(status("d", "sleeping", 4_000, 60_000))); // NTP stepped the clock back 1 s
    expect(d).toMatchObject({ status: "sleeping", nextWakeAt: 64_000, statusAt: 4_000, lastSeen: 5_000 });
    const replayed = { id: 1, ...status("d", "online", 5_000) } as DeviceEvent; // an event the page already had
    applyDeviceEvent(d, replayed);
    expect(d.status).toBe("sleeping");
  });

  it("merges a snapshot without going back in time", () => {
    const live = newDevice("d");
    const stale = newDevice("d");
    applyDeviceEvent(stale, stored(status("d", "sleeping", 8_000, 60_000)));
    applyDeviceEvent(stale, stored(telemetry("d", 7, 7_000, { battery: 3.8 })));
    applyDeviceEvent(live, stored(telemetry("d", 9, 9_000, { battery: 3.5 })));
    const snapshot = structuredClone(stale);
    mergeDeviceView(live, snapshot);
    expect(live).toMatchObject({ status: "online", statusAt: 9_000, battery: 3.5, lastReading: { seq: 9 }, lastSeen: 9_000 });
    applyDeviceEvent(stale, stored(status("d", "sleeping", 10_000, 60_000)));
    mergeDeviceView(live, stale);
    expect(live).toMatchObject({ status: "sleeping", nextWakeAt: 70_000, lastSeen: 10_000, lastReading: { seq: 9 } });
  });

  it("a firing overdue alert makes a sleeping device overdue until its next report; names come from device events", () => {
    const d = newDevice("d");
    applyDeviceEvent(d, stored(status("d", "sleeping", 1_000, 60_000)));
    const overdue = (state: "firing" | "resolved") =>
      ({ id: nextId++, kind: "alert", data: { kind: "overdue", state, deviceId: "d" } }) as unknown as DeviceEvent;
    const wasSeen = d.lastSeen;
    applyDeviceEvent(d, overdue("firing"));
    expect(d).toMatchObject({ status: "overdue", nextWakeAt: 61_000, statusAt: 1_000, lastSeen: wasSeen });
    applyDeviceEvent(d, overdue("resolved")); // its rule was turned off: no report, and no longer overdue
    expect(d.status).toBe("sleeping");
    applyDeviceEvent(d, overdue("firing"));
    applyDeviceEvent(d, stored(telemetry("d", 1, 200_000)));
    applyDeviceEvent(d, overdue("resolved"));
    expect(d.status).toBe("online");
    applyDeviceEvent(d, overdue("firing")); // only a sleeping device can be overdue
    expect(d.status).toBe("online");
    applyDeviceEvent(d, { id: nextId++, kind: "device", data: { deviceId: "d", topic: "sensors/d/device", name: "Cellar", location: null, at: 1 } });
    expect(d).toMatchObject({ name: "Cellar", location: null, status: "online" });
  });
});
