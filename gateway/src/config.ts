/**
 * Gateway configuration: defaults < JSON file (GATEWAY_CONFIG=path) < environment variables,
 * validated once at start. Every bad value is reported on its own line; server.ts exits non-zero.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { configRuleSchema, ErrInvalidRule, parseConfigRules } from "./alerts/rules.ts";
import { webhookTargetSchema } from "./alerts/webhooks.ts";
import { DEVICE_ID_PATTERN } from "./protocol/ids.ts";
import { validateTopicFilter } from "./protocol/topic-filter.ts";

const port = z.number().int().min(0).max(65535);
const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().min(0);
const DAY_MS = 24 * 3600_000;

/** Enough for the nodes of one broker; MQTT.js tries them one after the other on every reconnect. */
const MAX_BROKER_URLS = 5;
const brokerUrl = z.url({ protocol: /^mqtts?$/, error: "expected an mqtt:// or mqtts:// URL" });

const topicFilter = z.string().superRefine((f, ctx) => {
  try {
    validateTopicFilter(f);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
  }
});

/** A broker deny rule for clients other than devices (gateway/src/broker/deny-rules.ts). */
const denyRule = z
  .strictObject({
    /** Exact username, or "*" (default) for every such client. */
    username: z.string().min(1).optional(),
    publish: z.array(topicFilter).optional(),
    subscribe: z.array(topicFilter).optional(),
  })
  .refine((r) => (r.publish?.length ?? 0) + (r.subscribe?.length ?? 0) > 0, "a deny rule must name publish or subscribe filters");

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
  /**
   * No login: anyone who reaches the port may read and send commands. Allowed on a loopback host (the laptop
   * demo); on any other host only with `allowNetwork: true` (AUTH_ALLOW_NETWORK=true), see checkAuthExposure.
   */
  z.strictObject({ mode: z.literal("open"), allowNetwork: z.boolean().default(false) }),
  /**
   * The default. `adminToken` (default true): the gateway also accepts the admin token kept in
   * `<dataDir>/admin-token` (full read and write), created on the first start and reused afterwards
   * (http/auth.ts loadAdminToken). `tokens` are the configured ones, valid beside it.
   */
  z.strictObject({
    mode: z.literal("tokens"),
    tokens: z.array(tokenSchema).default([]),
    adminToken: z.boolean().default(true),
    /**
     * Where the admin token lives; default `<dataDir>/admin-token`. `--workers` points every worker at the
     * supervisor's file (ADMIN_TOKEN_FILE) so one token logs in to all of them.
     */
    adminTokenFile: z.string().min(1).optional(),
  }),
]);
export type AuthConfig = z.infer<typeof authSchema>;

export const configSchema = z.strictObject({
  host: z.string().min(1).default("0.0.0.0"),
  /** HTTP port; HTTPS (and HTTP/2) when `tls` is set. */
  port: port.default(8080),
  /**
   * Certificate and key (PEM files, e.g. from `npm run certs`): the gateway serves HTTPS and HTTP/2 on `port`,
   * and the embedded broker adds mqtts on `mqtt.tlsPort` (and wss on `mqtt.wssPort` if set). Reloaded when the
   * files change (tls/reloader.ts). Unset: plain HTTP and plain MQTT only, as before.
   */
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
  /** With `tls`: a plain HTTP listener on this port that redirects every request to HTTPS. */
  httpRedirectPort: port.optional(),
  mqtt: z
    .strictObject({
      /** Embedded broker listener (ignored when `url` names an external broker). */
      host: z.string().min(1).default("0.0.0.0"),
      port: port.default(1883),
      /** Embedded broker: MQTT over TLS (mqtts), only when `tls` is set; the IANA port. */
      tlsPort: port.default(8883),
      /** Embedded broker: MQTT over WebSockets (ws://host:wsPort/mqtt); off unless set. */
      wsPort: port.optional(),
      /** Embedded broker: MQTT over secure WebSockets (wss://host:wssPort/mqtt); needs `tls`; off unless set. */
      wssPort: port.optional(),
      /**
       * External broker, e.g. mqtt://127.0.0.1:1883; unset = start the embedded broker. Or a list of the nodes
       * of one broker (broker nodes sharing Redis, a cluster), up to MAX_BROKER_URLS: the gateway's clients go
       * to the next one when theirs is lost (bridge/broker-connection.ts). MQTT_URL: comma-separated. Read as
       * a list, even of one.
       */
      url: z.preprocess((v) => (typeof v === "string" ? [v] : v), z.array(brokerUrl, "expected a broker URL or a list of them").min(1, "name at least one broker").max(MAX_BROKER_URLS, `at most ${MAX_BROKER_URLS} brokers`)).optional(),
      username: z.string().optional(),
      password: z.string().optional(),
      /** Fixed so the broker keeps the gateway's persistent session across restarts. */
      clientId: z.string().regex(DEVICE_ID_PATTERN, "MQTT client ids follow the device-id rule").default("sensors-gateway"),
    })
    .prefault({}),
  dataDir: z.string().min(1).default("./data"),
  /**
   * The scaled-out mode (transport/redis, docs/architecture.md): several gateways share one event log and id
   * sequence in Redis, each with its own dataDir as a local replica and its own mqtt.clientId. Unset = the
   * one-process SQLite mode, the zero-setup default.
   */
  redis: z
    .strictObject({
      /** redis://[user:]password@host:port[/db]; Redis must require a password (it holds the admin token). */
      url: z.url({ protocol: /^rediss?$/ }),
      /** Prefix of every key, so several fleets (or tests) can share one Redis. */
      keyPrefix: z.string().default("sensors:"),
    })
    .optional(),
  history: z
    .strictObject({
      maxEvents: positiveInt.default(100_000),
      maxAgeMs: positiveInt.default(7 * 24 * 3600_000),
      /** See transport/sqlite/db.ts for why "normal" is the default. */
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
  /** HTTP auth of /api and /events; token auth unless the config says otherwise (docs/protocol.md "Auth"). */
  auth: authSchema.prefault({ mode: "tokens" }),
  /** Options for the embedded broker (gateway/src/broker): who may connect and what they may do. */
  broker: z
    .strictObject({
      auth: z
        .discriminatedUnion("mode", [
          /** Any client may connect and publish anywhere (but `deny`): local demos and tests only. */
          z.strictObject({ mode: z.literal("open"), deny: z.array(denyRule).optional() }),
          z.strictObject({
            mode: z.literal("devices"),
            /** Default `<dataDir>/mqtt-credentials.json` (written by `npm run provision`). */
            credentialsFile: z.string().optional(),
            serviceUsers: z.array(z.strictObject({ username: z.string().min(1), password: z.string().min(1) })).optional(),
            /** Limits for the service users (devices keep their fixed ACL): gateway/src/broker/deny-rules.ts. */
            deny: z.array(denyRule).optional(),
          }),
        ])
        .default({ mode: "devices" }),
      /**
       * "redis": this broker is one node of several sharing `redis` (sessions, queues, retained messages, wills;
       * publishes between nodes): gateway/src/broker/nodes.ts, `npm run broker`. Default one broker on SQLite.
       */
      store: z.enum(["sqlite", "redis"]).default("sqlite"),
      /** Broker nodes: heartbeat between nodes; a dead node's wills go out 3–7 heartbeats after it stopped. */
      heartbeatMs: positiveInt.default(5_000),
    })
    .prefault({}),
  /** Buckets of readings (transport/sqlite/summaries.ts): retention per bucket width in ms, 0 = keep. */
  summaries: z
    .strictObject({
      /** false: no buckets are kept (series answer raw only); for a comparison in gateway/bench. */
      enabled: z.boolean().default(true),
      retention: z
        .strictObject({
          "1m": nonNegativeInt.default(30 * DAY_MS),
          "1h": nonNegativeInt.default(730 * DAY_MS),
          "1d": nonNegativeInt.default(0),
        })
        .prefault({}),
      /** At most one `summary` event per device per this many ms. */
      coalesceMs: positiveInt.default(5_000),
    })
    .prefault({}),
  /** Alert rules (alerts/rules.ts; docs/protocol.md "Alerts"), the overdue clock and webhooks. */
  alerts: z
    .strictObject({
      rules: z
        .array(configRuleSchema)
        .default([])
        .transform((entries, ctx) => {
          const ids = entries.map((e) => e.id);
          const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
          if (twice.length) ctx.addIssue({ code: "custom", message: `rule ids must be unique: ${[...new Set(twice)].join(", ")}` });
          try {
            return parseConfigRules(entries);
          } catch (e) {
            if (!(e instanceof ErrInvalidRule)) throw e;
            for (const problem of e.problems) ctx.addIssue({ code: "custom", message: problem });
            return z.NEVER;
          }
        }),
      checkIntervalMs: positiveInt.default(5_000),
      webhooks: z.array(webhookTargetSchema).default([]),
      /** Publish every alert change, retained, on sleepy/alerts/<device>/<rule> (alerts/mqtt-alerts.ts). */
      mqtt: z.boolean().default(false),
    })
    .prefault({}),
  /** Home Assistant MQTT discovery (homeassistant/): off unless configured. */
  homeAssistant: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** Home Assistant's discovery_prefix (its MQTT integration's setting; "homeassistant" there by default). */
      discoveryPrefix: z
        .string()
        .regex(/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/, "the discovery prefix is topic levels of A-Z a-z 0-9 _ - (no wildcards)")
        .default("homeassistant"),
    })
    .prefault({}),
  /** Bounds of the per-device gauges, GET /api/metrics/devices (ops/device-metrics.ts): over them, series are left out and counted. */
  metrics: z
    .strictObject({
      maxDevices: positiveInt.default(500),
      maxMetrics: positiveInt.default(16),
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
const ENV: Array<[string, string[], "int" | "string" | "bool" | "list"]> = [
  ["HOST", ["host"], "string"],
  ["PORT", ["port"], "int"],
  ["MQTT_HOST", ["mqtt", "host"], "string"],
  ["MQTT_PORT", ["mqtt", "port"], "int"],
  ["MQTT_TLS_PORT", ["mqtt", "tlsPort"], "int"],
  ["MQTT_WS_PORT", ["mqtt", "wsPort"], "int"],
  ["MQTT_WSS_PORT", ["mqtt", "wssPort"], "int"],
  ["TLS_CERT", ["tls", "cert"], "string"],
  ["TLS_KEY", ["tls", "key"], "string"],
  ["HTTP_REDIRECT_PORT", ["httpRedirectPort"], "int"],
  ["MQTT_URL", ["mqtt", "url"], "list"],
  ["MQTT_USERNAME", ["mqtt", "username"], "string"],
  ["MQTT_PASSWORD", ["mqtt", "password"], "string"],
  ["MQTT_CLIENT_ID", ["mqtt", "clientId"], "string"],
  ["MQTT_AUTH", ["broker", "auth", "mode"], "string"],
  ["BROKER_STORE", ["broker", "store"], "string"],
  ["BROKER_HEARTBEAT_MS", ["broker", "heartbeatMs"], "int"],
  ["AUTH_MODE", ["auth", "mode"], "string"],
  ["AUTH_ALLOW_NETWORK", ["auth", "allowNetwork"], "bool"],
  ["ADMIN_TOKEN_FILE", ["auth", "adminTokenFile"], "string"],
  ["DATA_DIR", ["dataDir"], "string"],
  ["REDIS_URL", ["redis", "url"], "string"],
  ["HISTORY_MAX_EVENTS", ["history", "maxEvents"], "int"],
  ["HISTORY_MAX_AGE_MS", ["history", "maxAgeMs"], "int"],
  ["HEARTBEAT_MS", ["sse", "heartbeatMs"], "int"],
  ["SSE_MAX_QUEUE_EVENTS", ["sse", "maxQueueEvents"], "int"],
  ["SSE_MAX_QUEUE_BYTES", ["sse", "maxQueueBytes"], "int"],
  ["ALERTS_MQTT", ["alerts", "mqtt"], "bool"],
  ["HOME_ASSISTANT", ["homeAssistant", "enabled"], "bool"],
  ["HA_DISCOVERY_PREFIX", ["homeAssistant", "discoveryPrefix"], "string"],
  ["METRICS_MAX_DEVICES", ["metrics", "maxDevices"], "int"],
  ["METRICS_MAX_METRICS", ["metrics", "maxMetrics"], "int"],
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

/** 127.0.0.0/8, ::1 (also as [::1] or IPv4-mapped) and `localhost`: addresses only this machine reaches. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  return /^(::ffff:)?127(\.\d{1,3}){3}$/.test(h);
}

/** Two listeners of this gateway on one port would fail at start with EADDRINUSE: a config error instead. */
function portClashes(c: GatewayConfig): string[] {
  const embedded = c.mqtt.url === undefined;
  const listeners: Array<[string, number | undefined]> = [
    ["port (PORT)", c.port],
    ["httpRedirectPort (HTTP_REDIRECT_PORT)", c.tls ? c.httpRedirectPort : undefined],
    ["mqtt.port (MQTT_PORT)", embedded ? c.mqtt.port : undefined],
    ["mqtt.tlsPort (MQTT_TLS_PORT)", embedded && c.tls ? c.mqtt.tlsPort : undefined],
    ["mqtt.wsPort (MQTT_WS_PORT)", embedded ? c.mqtt.wsPort : undefined],
    ["mqtt.wssPort (MQTT_WSS_PORT)", embedded && c.tls ? c.mqtt.wssPort : undefined],
  ];
  const byPort = new Map<number, string>();
  const problems: string[] = [];
  for (const [name, p] of listeners) {
    if (p === undefined || p === 0) continue; // 0: a free port each
    const other = byPort.get(p);
    if (other !== undefined) problems.push(`${name}: port ${p} is already ${other}'s; each listener needs its own port`);
    else byPort.set(p, name);
  }
  return problems;
}

/**
 * Checks across fields that zod's per-field rules cannot see. Secure by default: open HTTP auth only on a
 * loopback host unless `auth.allowNetwork` says so explicitly; Redis only with a password.
 */
function crossFieldProblems(c: GatewayConfig): string[] {
  const problems: string[] = [];
  if (c.redis) {
    const url = new URL(c.redis.url);
    // Redis holds every event and the shared admin token, and takes writes from anyone who reaches it: a password
    // always, since on loopback too any local user (or a compromised process) could read the token or forge events.
    if (!url.password) {
      problems.push(
        `redis.url: Redis without a password would let anyone who reaches it (on ${JSON.stringify(url.hostname)}) read the ` +
          `shared admin token and rewrite the event log. Set requirepass (hardware/pi/redis/redis.conf) and put it in ` +
          `the URL: redis://:PASSWORD@host:6379`,
      );
    }
  }
  if (c.broker.store === "redis" && !c.redis) {
    problems.push(`broker.store: "redis" needs redis.url (REDIS_URL): the broker nodes share that Redis`);
  }
  if (c.auth.mode === "open" && !c.auth.allowNetwork && !isLoopbackHost(c.host)) {
    problems.push(
      `auth: open mode (no login) on host ${JSON.stringify(c.host)} would let anyone on the network read every sensor ` +
        `and send commands. Use token auth (the default: drop AUTH_MODE=open), bind to loopback (HOST=127.0.0.1), ` +
        `or accept it explicitly with auth.allowNetwork: true (AUTH_ALLOW_NETWORK=true)`,
    );
  }
  if (c.auth.mode === "tokens") {
    if (!c.auth.adminToken && c.auth.tokens.length === 0) {
      problems.push("auth.tokens: with auth.adminToken false, configure at least one token (or keep the admin token)");
    }
    const seen = new Map<string, string>();
    for (const t of c.auth.tokens) {
      const other = seen.get(t.token);
      if (other !== undefined) problems.push(`auth.tokens: "${other}" and "${t.name}" have the same token; each needs its own`);
      seen.set(t.token, t.name);
    }
  }
  // The certificate files themselves are read and checked once, by startGateway (tls/credentials.ts).
  if (!c.tls) {
    if (c.mqtt.wssPort !== undefined) problems.push("mqtt.wssPort (MQTT_WSS_PORT): wss needs a certificate, set tls.cert and tls.key (TLS_CERT, TLS_KEY)");
    if (c.httpRedirectPort !== undefined) problems.push("httpRedirectPort (HTTP_REDIRECT_PORT): redirects to HTTPS, which needs tls.cert and tls.key (TLS_CERT, TLS_KEY)");
  }
  problems.push(...portClashes(c));
  if (c.mqtt.url) problems.push(...moveBrokerLogin(c.mqtt));
  return problems;
}

/**
 * Credentials move out of the broker URLs, which are logged and printed (the password never is), into
 * mqtt.username/password. One login for every URL: MQTT.js sends the same one to each broker it tries.
 */
function moveBrokerLogin(mqtt: GatewayConfig["mqtt"]): string[] {
  const urls = mqtt.url!.map((href) => new URL(href));
  const logins = new Set(urls.map((u) => `${u.username}:${u.password}`));
  const problems: string[] = [];
  const hosts = new Set<string>();
  for (const u of urls) {
    if (hosts.has(u.host)) problems.push(`mqtt.url: ${u.host} is listed twice; list each broker once`);
    hosts.add(u.host);
  }
  if (logins.size > 1) {
    problems.push("mqtt.url: every broker URL needs the same MQTT login (or none, with mqtt.username/mqtt.password): the gateway logs in to each with one");
  } else if (!logins.has(":")) {
    if (mqtt.username !== undefined || mqtt.password !== undefined) {
      problems.push("mqtt.url: give the MQTT login either in the URL or as mqtt.username/mqtt.password, not both");
    } else {
      mqtt.username = decodeURIComponent(urls[0]!.username);
      mqtt.password = decodeURIComponent(urls[0]!.password);
      for (const u of urls) {
        u.username = "";
        u.password = "";
      }
      mqtt.url = urls.map((u) => u.href);
    }
  }
  return problems;
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
  const problems = crossFieldProblems(parsed.data);
  if (problems.length) throw new ErrBadConfig(problems);
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
      // V8's JSON errors quote the text around the fault, which may be a token: say where, not what.
      const message =
        e instanceof SyntaxError ? `not valid JSON${/position \d+/.exec(e.message)?.[0].replace(/^/, " at ") ?? ""}` : (e as Error).message;
      problems.push(`GATEWAY_CONFIG=${env.GATEWAY_CONFIG}: ${message}`);
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
    } else if (type === "bool") {
      const v = value.trim().toLowerCase();
      if (!["true", "false", "1", "0"].includes(v)) {
        problems.push(`${name}=${JSON.stringify(value)}: expected true or false`);
        continue;
      }
      setPath(raw, path, v === "true" || v === "1");
    } else if (type === "list") {
      setPath(raw, path, value.split(",").map((item) => item.trim()));
    } else {
      setPath(raw, path, value);
    }
  }
  const auth = raw.auth as Record<string, unknown> | undefined;
  // ADMIN_TOKEN_FILE alone (as --workers sets it) refines the default token auth.
  if (auth?.adminTokenFile !== undefined && auth.mode === undefined) auth.mode = "tokens";
  if (auth?.allowNetwork !== undefined && auth.mode !== "open") {
    problems.push(`auth.allowNetwork (AUTH_ALLOW_NETWORK) only applies with auth.mode "open" (AUTH_MODE=open)`);
    delete auth.allowNetwork;
    if (Object.keys(auth).length === 0) delete raw.auth;
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
