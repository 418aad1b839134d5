import { describe, expect, it } from "vitest";
import { newDevice, type DeviceView } from "../protocol/device-state.ts";
import { discoveryConfigs, readingObjectId } from "./discovery.ts";

const opts = { prefix: "homeassistant", origin: { name: "sleepy-sensors gateway", sw: "0.1.0" } };
const withReading = (deviceId: string, readings: Record<string, number>, battery: number | null): DeviceView => ({
  ...newDevice(deviceId),
  battery,
  lastReading: { seq: 1, t: 0, age: null, timeSource: "received", receivedAt: 0, readings },
});

describe("discoveryConfigs", () => {
  it("gives a reading named like a fixed entity its own object id, and an unknown key no device class", () => {
    const configs = discoveryConfigs(withReading("Shed_A-1", { battery: 87, soilMoisture: 30 }, 3.9), opts);
    expect(configs.map((c) => c.topic)).toEqual([
      "homeassistant/sensor/sleepy_Shed_A-1/reading_battery/config",
      "homeassistant/sensor/sleepy_Shed_A-1/soilMoisture/config",
      "homeassistant/sensor/sleepy_Shed_A-1/battery/config",
      "homeassistant/sensor/sleepy_Shed_A-1/status/config",
      "homeassistant/binary_sensor/sleepy_Shed_A-1/problem/config",
    ]);
    const soil = configs[1]!.payload;
    expect(soil).toMatchObject({ name: "Soil moisture", value_template: "{{ value_json.readings.soilMoisture }}", state_class: "measurement" });
    expect(soil).not.toHaveProperty("device_class");
    expect(soil.default_entity_id).toBe("sensor.sleepy_shed_a_1_soilmoisture");
  });

  it("has no battery entity before a battery value, and names the device by its id until a person names it", () => {
    const d = withReading("k1", { temperature: 20 }, null);
    expect(discoveryConfigs(d, opts).map((c) => c.topic)).not.toContain("homeassistant/sensor/sleepy_k1/battery/config");
    expect(discoveryConfigs(d, opts)[0]!.payload.device).toMatchObject({ identifiers: ["sleepy_k1"], name: "k1" });
    expect(discoveryConfigs({ ...d, name: "Kitchen", location: "Ground floor" }, opts)[0]!.payload.device).toMatchObject({ name: "Kitchen", suggested_area: "Ground floor" });
  });

  it("never gives two reading keys one object id", () => {
    const keys = ["battery", "reading_battery", "reading_reading_battery", "status", "reading_status", "temperature"];
    expect(new Set(keys.map(readingObjectId)).size).toBe(keys.length);
    const configs = discoveryConfigs(withReading("k1", { battery: 1, reading_battery: 2 }, 3.9), opts);
    expect(new Set(configs.map((c) => c.topic)).size).toBe(configs.length);
    expect(new Set(configs.map((c) => c.payload.unique_id)).size).toBe(configs.length);
  });

  it("status and problem follow the gateway only; readings and battery need the gateway and the device", () => {
    const configs = discoveryConfigs(withReading("k1", { temperature: 20 }, 3.9), opts);
    const byObject = Object.fromEntries(configs.map((c) => [c.topic.split("/")[3], c.payload]));
    const topics = (o: string) => (byObject[o]!.availability as Array<{ topic: string }>).map((a) => a.topic);
    for (const o of ["temperature", "battery"]) {
      expect(topics(o)).toEqual(["sleepy/gateway/status", "sensors/k1/status"]);
      expect(byObject[o]!.availability_mode).toBe("all");
    }
    for (const o of ["status", "problem"]) {
      expect(topics(o)).toEqual(["sleepy/gateway/status"]);
      expect(byObject[o]).not.toHaveProperty("availability_mode");
    }
  });

  it("keeps the entities it is given, beyond the latest reading's", () => {
    const d = withReading("k1", { temperature: 20 }, null);
    const topics = discoveryConfigs(d, opts, { readingKeys: ["humidity", "temperature"], battery: true }).map((c) => c.topic.split("/")[3]);
    expect(topics).toEqual(["humidity", "temperature", "battery", "status", "problem"]);
  });
});
