/**
 * Home Assistant MQTT discovery configurations for one device, built from its state (protocol/device-state.ts).
 * Pure: publisher.ts decides when to publish them. The schema is Home Assistant's documented one:
 * https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery (topic `<prefix>/<component>/<node_id>/
 * <object_id>/config`, retained; an empty payload removes the entity),
 * https://www.home-assistant.io/integrations/sensor.mqtt/ and /integrations/binary_sensor.mqtt/ (keys),
 * https://www.home-assistant.io/integrations/sensor/#device-class (device classes and their units).
 *
 * Entities per device (node_id `sleepy_<deviceId>`, unique_id `sleepy_<deviceId>_<object_id>`, and
 * `default_entity_id` `<component>.sleepy_<device>_<object>` slugified; not `object_id`, deprecated since Home
 * Assistant 2025.10 and ignored from 2026.4, e.g. https://github.com/home-assistant/addons/issues/4240):
 * - one `sensor` per reading key of its latest reading;
 * - `battery` (volts: device class voltage; HA's `battery` class is a percentage, which we do not know);
 * - `status` (enum: online, sleeping, overdue, offline, unknown);
 * - `problem` (binary_sensor: on while any alert of the device fires).
 * All read the gateway's retained `sleepy/devices/<id>/state` (state.ts) with a `{{ value_json.… }}` template.
 * Availability follows the device's own retained `sensors/<id>/status` (its Last Will says offline): only
 * `offline` is unavailable. A sleeping battery sensor is asleep, not gone: its last values stay shown.
 */
import { DEVICE_STATUSES, type DeviceView } from "../protocol/device-state.ts";
import { deviceStateTopic, deviceTopic } from "../protocol/topics.ts";

export interface DiscoveryOptions {
  /** Home Assistant's discovery_prefix (its default is "homeassistant"). */
  prefix: string;
  /** `origin` block: who publishes the configurations. */
  origin: { name: string; sw: string };
}

export interface DiscoveryConfig {
  topic: string;
  /** The JSON payload; publisher.ts serializes it. */
  payload: Record<string, unknown>;
}

/** What the firmware does not announce (no model or firmware version in its payloads): the gateway's words. */
export const DEVICE_MODEL = "Sleepy sensor (ESP32, DeviceScript)";
export const DEVICE_MANUFACTURER = "Sleepy sensors";

/** Device class and unit of the reading keys the firmware sends (devs/src/sensors.ts) and common others. */
const READING_CLASSES: Record<string, { device_class: string; unit_of_measurement: string }> = {
  temperature: { device_class: "temperature", unit_of_measurement: "°C" },
  humidity: { device_class: "humidity", unit_of_measurement: "%" },
  pressure: { device_class: "pressure", unit_of_measurement: "hPa" },
  co2: { device_class: "carbon_dioxide", unit_of_measurement: "ppm" },
  illuminance: { device_class: "illuminance", unit_of_measurement: "lx" },
  voltage: { device_class: "voltage", unit_of_measurement: "V" },
};

export const nodeId = (deviceId: string): string => `sleepy_${deviceId}`;
export const configTopic = (prefix: string, component: "sensor" | "binary_sensor", deviceId: string, objectId: string): string =>
  `${prefix}/${component}/${nodeId(deviceId)}/${objectId}/config`;

/** Home Assistant entity ids are lower case a-z, 0-9 and _. */
const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9_]/g, "_");

/** "temperature" → "Temperature", "soil_moisture" → "Soil moisture". */
const title = (key: string): string => {
  const words = key.replace(/_/g, " ").replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
};

/** Object ids of the entities other than readings: a reading key with the same name is prefixed `reading_`. */
const FIXED_OBJECTS = ["battery", "status", "problem"];
export const readingObjectId = (key: string): string => (FIXED_OBJECTS.includes(key) ? `reading_${key}` : key);

/** Every discovery configuration the device should have now, by topic. */
export function discoveryConfigs(d: DeviceView, opts: DiscoveryOptions): DiscoveryConfig[] {
  const id = d.deviceId;
  const stateTopic = deviceStateTopic(id);
  const common = {
    state_topic: stateTopic,
    availability: [
      {
        topic: deviceTopic(id, "status"),
        value_template: "{{ 'offline' if value_json.state == 'offline' else 'online' }}",
        payload_available: "online",
        payload_not_available: "offline",
      },
    ],
    device: {
      identifiers: [nodeId(id)],
      name: d.name ?? id,
      model: DEVICE_MODEL,
      manufacturer: DEVICE_MANUFACTURER,
      ...(d.location ? { suggested_area: d.location } : {}),
    },
    origin: opts.origin,
  };
  const entity = (component: "sensor" | "binary_sensor", objectId: string, fields: Record<string, unknown>): DiscoveryConfig => ({
    topic: configTopic(opts.prefix, component, id, objectId),
    payload: { unique_id: `${nodeId(id)}_${objectId}`, default_entity_id: `${component}.${slug(`${nodeId(id)}_${objectId}`)}`, ...fields, ...common },
  });
  const configs: DiscoveryConfig[] = [];
  for (const key of Object.keys(d.lastReading?.readings ?? {}).sort()) {
    configs.push(
      entity("sensor", readingObjectId(key), {
        name: title(key),
        value_template: `{{ value_json.readings.${key} }}`,
        state_class: "measurement",
        ...READING_CLASSES[key],
      }),
    );
  }
  if (d.battery !== null) {
    configs.push(
      entity("sensor", "battery", {
        name: "Battery",
        value_template: "{{ value_json.battery }}",
        device_class: "voltage",
        unit_of_measurement: "V",
        state_class: "measurement",
        entity_category: "diagnostic",
      }),
    );
  }
  configs.push(
    entity("sensor", "status", {
      name: "Status",
      value_template: "{{ value_json.status }}",
      device_class: "enum",
      options: [...DEVICE_STATUSES],
      entity_category: "diagnostic",
    }),
  );
  configs.push(
    entity("binary_sensor", "problem", {
      name: "Problem",
      value_template: "{{ 'ON' if value_json.alertsFiring > 0 else 'OFF' }}",
      device_class: "problem",
    }),
  );
  return configs;
}
