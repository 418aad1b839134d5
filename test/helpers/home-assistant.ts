/**
 * What Home Assistant does with MQTT discovery, for tests: a zod schema of a discovery configuration written
 * from Home Assistant's documentation (not from our code), an entity list built from the retained configs,
 * and the evaluation of the simple Jinja templates the gateway emits.
 * Sources: https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery (topic, retained, empty = removal,
 * device and origin blocks), https://www.home-assistant.io/integrations/sensor.mqtt/ and
 * /integrations/binary_sensor.mqtt/ (keys), https://www.home-assistant.io/integrations/sensor/#device-class
 * (units allowed per device class).
 */
import { z } from "zod";

/** `<discovery_prefix>/<component>/[<node_id>/]<object_id>/config`; ids are [a-zA-Z0-9_-]. */
export const DISCOVERY_TOPIC = /^homeassistant\/(sensor|binary_sensor)\/(?:([A-Za-z0-9_-]+)\/)?([A-Za-z0-9_-]+)\/config$/;

/** Units Home Assistant accepts for the device classes we may meet (sensor docs, "Device class"). */
export const UNITS_BY_CLASS: Record<string, string[]> = {
  temperature: ["°C", "°F", "K"],
  humidity: ["%"],
  battery: ["%"],
  voltage: ["V", "mV", "µV", "kV", "MV"],
  pressure: ["Pa", "kPa", "hPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"],
  carbon_dioxide: ["ppm"],
  illuminance: ["lx"],
};

const availability = z.strictObject({
  topic: z.string().min(1),
  value_template: z.string().optional(),
  payload_available: z.string().optional(),
  payload_not_available: z.string().optional(),
});

const device = z
  .strictObject({
    identifiers: z.array(z.string().min(1)).min(1),
    name: z.string().min(1),
    model: z.string().optional(),
    manufacturer: z.string().optional(),
    sw_version: z.string().optional(),
    hw_version: z.string().optional(),
    suggested_area: z.string().optional(),
    via_device: z.string().optional(),
    configuration_url: z.string().optional(),
  });

const common = {
  name: z.string().min(1).nullable(),
  unique_id: z.string().min(1),
  // `object_id` is deprecated (Home Assistant 2025.10, ignored from 2026.4): strictObject refuses it
  default_entity_id: z.string().regex(/^(sensor|binary_sensor)\.[a-z0-9_]+$/).optional(),
  state_topic: z.string().min(1),
  value_template: z.string().optional(),
  availability: z.array(availability).min(1).optional(),
  availability_topic: z.string().optional(),
  availability_mode: z.enum(["all", "any", "latest"]).optional(),
  device,
  origin: z.strictObject({ name: z.string().min(1), sw: z.string().optional(), url: z.string().optional() }),
  entity_category: z.enum(["config", "diagnostic"]).optional(),
  expire_after: z.number().int().positive().optional(),
  icon: z.string().optional(),
};

export const sensorConfigSchema = z
  .strictObject({
    ...common,
    device_class: z.string().optional(),
    unit_of_measurement: z.string().optional(),
    state_class: z.enum(["measurement", "total", "total_increasing"]).optional(),
    options: z.array(z.string()).min(1).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.availability && c.availability_topic) ctx.addIssue({ code: "custom", message: "availability and availability_topic must not be used together" });
    if (c.device_class === "enum") {
      if (!c.options) ctx.addIssue({ code: "custom", message: "an enum sensor lists its options" });
      if (c.unit_of_measurement || c.state_class) ctx.addIssue({ code: "custom", message: "an enum sensor has no unit or state class" });
    } else if (c.device_class) {
      const units = UNITS_BY_CLASS[c.device_class];
      if (!units) ctx.addIssue({ code: "custom", message: `device class ${c.device_class} not known to this test` });
      else if (!units.includes(c.unit_of_measurement ?? "")) ctx.addIssue({ code: "custom", message: `${c.unit_of_measurement} is not a unit of ${c.device_class}` });
    }
  });

export const binarySensorConfigSchema = z.strictObject({
  ...common,
  device_class: z.enum(["problem", "battery", "connectivity", "running"]).optional(),
  payload_on: z.string().optional(),
  payload_off: z.string().optional(),
});

export interface Entity {
  component: "sensor" | "binary_sensor";
  nodeId: string | undefined;
  objectId: string;
  config: Record<string, any>;
}

/** Validates one retained discovery message; throws with zod's description when it is not a valid config. */
export function parseDiscovery(topic: string, payload: string): Entity {
  const m = DISCOVERY_TOPIC.exec(topic);
  if (!m) throw new Error(`not a discovery topic: ${topic}`);
  const component = m[1] as Entity["component"];
  const json: unknown = JSON.parse(payload);
  const config = (component === "sensor" ? sensorConfigSchema : binarySensorConfigSchema).parse(json);
  if (config.default_entity_id && !config.default_entity_id.startsWith(`${component}.`)) throw new Error(`${topic}: default_entity_id of another component`);
  return { component, nodeId: m[2], objectId: m[3]!, config };
}

/**
 * Evaluates the templates the gateway emits, as Jinja would: `{{ value_json.a.b }}`, and
 * `{{ 'X' if value_json.a == 'v' else 'Y' }}` / `{{ 'X' if value_json.a > 0 else 'Y' }}`. Anything else throws:
 * a new template form needs this evaluator to learn it first.
 */
/**
 * Whether an entity is available, as Home Assistant decides it from its availability list and
 * availability_mode (https://www.home-assistant.io/integrations/sensor.mqtt/#availability_mode): `all` needs
 * every topic available, `any` one of them; the default, `latest`, needs message times, so only one topic is
 * supported here. Undefined while a topic has no retained message yet.
 */
export function isAvailable(config: Record<string, any>, retained: ReadonlyMap<string, string>): boolean | undefined {
  const list = config.availability as Array<{ topic: string; value_template?: string; payload_available?: string }>;
  const states: boolean[] = [];
  for (const a of list) {
    const payload = retained.get(a.topic);
    if (payload === undefined) return undefined;
    const value = a.value_template ? renderTemplate(a.value_template, payload) : payload;
    states.push(value === (a.payload_available ?? "online"));
  }
  const mode = config.availability_mode ?? "latest";
  if (mode === "all") return states.every(Boolean);
  if (mode === "any") return states.some(Boolean);
  if (states.length > 1) throw new Error("availability_mode latest with several topics is not known to this test");
  return states[0];
}

export function renderTemplate(template: string, payload: string): string {
  const value = JSON.parse(payload);
  const path = (p: string) => p.split(".").slice(1).reduce((v: any, k) => (v === undefined || v === null ? undefined : v[k]), value);
  const plain = /^\{\{ (value_json(?:\.[A-Za-z0-9_]+)+) \}\}$/.exec(template);
  if (plain) {
    const v = path(plain[1]!);
    if (v === undefined) throw new Error(`template ${template}: no such value in ${payload}`);
    return v === null ? "None" : String(v); // Jinja renders null as None
  }
  const cond = /^\{\{ '([^']*)' if (value_json(?:\.[A-Za-z0-9_]+)+) (==|>) ('[^']*'|-?\d+(?:\.\d+)?) else '([^']*)' \}\}$/.exec(template);
  if (cond) {
    const [, yes, p, op, rhs, no] = cond;
    const v = path(p!);
    const r = rhs!.startsWith("'") ? rhs!.slice(1, -1) : Number(rhs);
    return (op === "==" ? v === r : v > r) ? yes! : no!;
  }
  throw new Error(`template form not known to this test: ${template}`);
}
