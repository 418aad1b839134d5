/**
 * Home Assistant MQTT discovery configurations for one device, built from its state (protocol/device-state.ts).
 * Pure: home-assistant.ts decides when to publish them. The schema is Home Assistant's documented one:
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
 * Availability: `status` and `problem` are the gateway's knowledge, so they follow the gateway's own retained
 * `sleepy/gateway/status` (its Last Will says offline): they must stay available when the device goes offline,
 * that is when they matter. Readings and battery need both (availability_mode all): the gateway, and the device's
 * own retained `sensors/<id>/status`, where only `offline` is unavailable (a sleeping battery sensor is asleep,
 * not gone: its last values stay shown).
 * The reading entities are every key seen since the device was last deleted (seen-entities.ts), not only the
 * latest reading's: a reading that misses a key (a sensor fault) must not remove the entity and its settings.
 */
import { DEVICE_STATUSES, type DeviceView } from "../protocol/device-state.ts";
import { deviceStateTopic, deviceTopic, gatewayStatusTopic } from "../protocol/topics.ts";

export interface DiscoveryOptions {
  /** Home Assistant's discovery_prefix (its default is "homeassistant"). */
  prefix: string;
  /** `origin` block: who publishes the configurations. */
  origin: { name: string; sw: string };
}

export interface DiscoveryConfig {
  topic: string;
  /** The JSON payload; home-assistant.ts serializes it. */
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

/**
 * Object ids of the entities other than readings: a reading key with the same name is prefixed `reading_`, and
 * so is a key that starts with `reading_` (else `reading_battery` and `battery` would share one entity).
 */
const FIXED_OBJECTS = ["battery", "status", "problem"];
export const readingObjectId = (key: string): string => (FIXED_OBJECTS.includes(key) || key.startsWith("reading_") ? `reading_${key}` : key);

/** The entities a device has: its reading keys and whether it has a battery entity. */
export interface DeviceEntities {
  readingKeys: readonly string[];
  battery: boolean;
}

/** The entities the device's latest reading alone calls for. */
export const entitiesOf = (d: DeviceView): DeviceEntities => ({ readingKeys: Object.keys(d.lastReading?.readings ?? {}), battery: d.battery !== null });

const gatewayAvailability = { topic: gatewayStatusTopic, payload_available: "online", payload_not_available: "offline" };

/** Every discovery configuration the device should have now, by topic. */
export function discoveryConfigs(d: DeviceView, opts: DiscoveryOptions, entities: DeviceEntities = entitiesOf(d)): DiscoveryConfig[] {
  const id = d.deviceId;
  const stateTopic = deviceStateTopic(id);
  const deviceAvailability = {
    topic: deviceTopic(id, "status"),
    value_template: "{{ 'offline' if value_json.state == 'offline' else 'online' }}",
    payload_available: "online",
    payload_not_available: "offline",
  };
  /** Readings and battery: the device's values, shown while the gateway and the device are both there. */
  const measured = { availability: [gatewayAvailability, deviceAvailability], availability_mode: "all" };
  /** Status and problem: the gateway's knowledge of the device, shown while the gateway is there. */
  const known = { availability: [gatewayAvailability] };
  const common = {
    state_topic: stateTopic,
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
  for (const key of [...entities.readingKeys].sort()) {
    configs.push(
      entity("sensor", readingObjectId(key), {
        name: title(key),
        value_template: `{{ value_json.readings.${key} }}`,
        state_class: "measurement",
        ...READING_CLASSES[key],
        ...measured,
      }),
    );
  }
  if (entities.battery) {
    configs.push(
      entity("sensor", "battery", {
        name: "Battery",
        value_template: "{{ value_json.battery }}",
        device_class: "voltage",
        unit_of_measurement: "V",
        state_class: "measurement",
        entity_category: "diagnostic",
        ...measured,
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
      ...known,
    }),
  );
  configs.push(
    entity("binary_sensor", "problem", {
      name: "Problem",
      value_template: "{{ 'ON' if value_json.alertsFiring > 0 else 'OFF' }}",
      device_class: "problem",
      ...known,
    }),
  );
  return configs;
}
