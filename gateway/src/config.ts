/**
 * Gateway configuration: defaults < JSON file (GATEWAY_CONFIG=path) < environment variables,
 * validated once at start. Every bad value is reported on its own line; server.ts exits non-zero.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { validateTopicFilter } from "./topics.ts";

const port = z.number().int().min(0).max(65535);
const positiveInt = z.number().int().positive();

const topicFilter = z.string().superRefine((f, ctx) => {
  try {
    validateTopicFilter(f);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
  }
});

const tokenSchema = z.strictObject({
  /** Shown in logs instead of the secret. */
  name: z.string().min(1),
  token: z.string().min(16, "tokens must be at least 16 characters"),
  /** MQTT filters this token may stream and query, e.g. ["sensors/kitchen-1/#"]. */
  read: z.array(topicFilter).min(1),
  /** May send commands (to devices whose topics its read filters cover). */
  write: z.boolean().default(false),
});
export type TokenConfig = z.infer<typeof tokenSchema>;

const authSchema = z.discriminatedUnion("mode", [
  /** Anyone may read and write: for local demos only, and logged loudly at start. */
  z.strictObject({ mode: z.literal("open") }),
  z.strictObject({ mode: z.literal("tokens"), tokens: z.array(tokenSchema).min(1) }),
]);
export type AuthConfig = z.infer<typeof authSchema>;

export const configSchema = z.strictObject({
  host: z.string().min(1).default("0.0.0.0"),
  port: port.default(8080),
  mqtt: z
    .strictObject({
      /** Embedded broker listener (ignored when `url` names an external broker). */
      host: z.string().min(1).default("0.0.0.0"),
      port: port.default(1883),
      /** External broker, e.g. mqtt://127.0.0.1:1883; unset = start the embedded broker. */
      url: z.url({ protocol: /^mqtts?$/ }).optional(),
      username: z.string().optional(),
      password: z.string().optional(),
      /** Fixed so the broker keeps the gateway's persistent session across restarts. */
      clientId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default("sensors-gateway"),
    })
    .prefault({}),
  dataDir: z.string().min(1).default("./data"),
  history: z
    .strictObject({
      maxEvents: positiveInt.default(100_000),
      maxAgeMs: positiveInt.default(7 * 24 * 3600_000),
      /** See history/sqlite.ts for why "normal" is the default. */
      synchronous: z.enum(["normal", "full"]).default("normal"),
    })
    .prefault({}),
  sse: z
    .strictObject({
      heartbeatMs: positiveInt.default(15_000),
      retryMs: positiveInt.default(2_000),
      maxQueueEvents: positiveInt.default(1_000),
      maxQueueBytes: positiveInt.default(1024 * 1024),
      replayPageSize: positiveInt.max(10_000).default(500),
    })
    .prefault({}),
  auth: authSchema.default({ mode: "open" }),
  /** Options for the embedded broker (gateway/src/broker): who may connect and what they may do. */
  broker: z
    .strictObject({
      auth: z
        .discriminatedUnion("mode", [
          /** Any client may connect and publish anywhere: local demos and tests only. */
          z.strictObject({ mode: z.literal("open") }),
          z.strictObject({
            mode: z.literal("devices"),
            /** Default `<dataDir>/mqtt-credentials.json` (written by `npm run provision`). */
            credentialsFile: z.string().optional(),
            serviceUsers: z.array(z.strictObject({ username: z.string().min(1), password: z.string().min(1) })).optional(),
          }),
        ])
        .default({ mode: "devices" }),
    })
    .prefault({}),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type GatewayConfig = z.infer<typeof configSchema>;
export type GatewayConfigInput = z.input<typeof configSchema>;

export class ErrBadConfig extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid gateway configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ErrBadConfig";
  }
}

/** Environment variable → config path, and how to read it. */
const ENV: Array<[string, string[], "int" | "string"]> = [
  ["HOST", ["host"], "string"],
  ["PORT", ["port"], "int"],
  ["MQTT_HOST", ["mqtt", "host"], "string"],
  ["MQTT_PORT", ["mqtt", "port"], "int"],
  ["MQTT_URL", ["mqtt", "url"], "string"],
  ["MQTT_USERNAME", ["mqtt", "username"], "string"],
  ["MQTT_PASSWORD", ["mqtt", "password"], "string"],
  ["MQTT_CLIENT_ID", ["mqtt", "clientId"], "string"],
  ["MQTT_AUTH", ["broker", "auth", "mode"], "string"],
  ["AUTH_MODE", ["auth", "mode"], "string"],
  ["DATA_DIR", ["dataDir"], "string"],
  ["HISTORY_MAX_EVENTS", ["history", "maxEvents"], "int"],
  ["HISTORY_MAX_AGE_MS", ["history", "maxAgeMs"], "int"],
  ["HEARTBEAT_MS", ["sse", "heartbeatMs"], "int"],
  ["SSE_MAX_QUEUE_EVENTS", ["sse", "maxQueueEvents"], "int"],
  ["SSE_MAX_QUEUE_BYTES", ["sse", "maxQueueBytes"], "int"],
  ["LOG_LEVEL", ["logLevel"], "string"],
];

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]] = value;
}

/**
 * Validates a config object (e.g. from a test) and fills defaults.
 * @example parseConfig({ port: 0, mqtt: { port: 0 }, dataDir: tmp })
 */
export function parseConfig(input: unknown): GatewayConfig {
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    throw new ErrBadConfig(
      parsed.error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`),
    );
  }
  return parsed.data;
}

/** Reads GATEWAY_CONFIG (if set) and the environment variables listed in ENV. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const problems: string[] = [];
  let raw: Record<string, unknown> = {};
  if (env.GATEWAY_CONFIG) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(env.GATEWAY_CONFIG, "utf8"));
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not a JSON object");
      raw = parsed as Record<string, unknown>;
    } catch (e) {
      problems.push(`GATEWAY_CONFIG=${env.GATEWAY_CONFIG}: ${(e as Error).message}`);
    }
  }
  for (const [name, path, type] of ENV) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    if (type === "int") {
      if (!/^-?\d+$/.test(value.trim())) {
        problems.push(`${name}=${JSON.stringify(value)}: expected an integer`);
        continue;
      }
      setPath(raw, path, Number(value));
    } else {
      setPath(raw, path, value);
    }
  }
  try {
    const config = parseConfig(raw);
    if (problems.length) throw new ErrBadConfig(problems);
    return config;
  } catch (e) {
    if (e instanceof ErrBadConfig) throw new ErrBadConfig([...problems, ...e.problems.filter((p) => !problems.includes(p))]);
    throw e;
  }
}
