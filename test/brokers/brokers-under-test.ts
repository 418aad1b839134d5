import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  startEmbeddedBroker,
  type BrokerLogger,
  type DenyRule,
  type EmbeddedBroker,
  type ServiceCredential,
} from "../../gateway/src/broker/index.ts";
import { defaultCredentialsFile, generatePassword, setDevicePassword } from "../../gateway/src/broker/index.ts";
import { setMosquittoPassword } from "../../gateway/src/provision/mosquitto-passwd.ts";
import { startRedis, type RunningRedis } from "../helpers/redis.ts";
import { runAsConfigLine, startMosquitto, type MosquittoPaths, type RunningMosquitto } from "../helpers/mosquitto.ts";

/**
 * One face for both brokers so every auth/ACL/durability case runs on each: the embedded broker with device
 * auth and a data dir, and Mosquitto started with the shipped hardware/mosquitto config.
 */
export interface Login {
  username: string;
  password: string;
  clientId: string;
}

export interface BrokerUnderTest {
  kind: "embedded" | "mosquitto";
  url(): string;
  /** Full rights (the gateway's own login). */
  gateway(): Login;
  /** Provisioned device login: username = client id = device id. */
  device(id: string): Login;
  /** Home Assistant's login, with the rights hardware/pi/README.md "8." gives it (embedded) or the shipped ACL (Mosquitto). */
  homeAssistant(): Login;
  /** Graceful restart keeping all state on disk (same port). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Default "devices". */
  mode?: "open" | "devices";
  serviceUsers?: ServiceCredential[];
  deny?: DenyRule[];
  logger?: BrokerLogger;
  /** A broker node on this Redis (RedisPersistence + mqemitter-redis) instead of SQLite in the data dir. */
  redisUrl?: string;
}

export interface EmbeddedUnderTest extends BrokerUnderTest {
  /** The running broker itself: counters, events. */
  embedded(): EmbeddedBroker;
  /** Graceful restart on the same data dir and port, with other options if given. */
  restart(options?: EmbeddedOptions): Promise<void>;
}

/** Home Assistant's service user on the embedded broker, exactly as hardware/pi/README.md "8." configures it. */
const HOME_ASSISTANT_LOGIN = { username: "homeassistant", password: generatePassword() };
export const HOME_ASSISTANT_DENY: DenyRule = {
  username: "homeassistant",
  publish: ["sensors/#", "sleepy/#", "homeassistant/+/+/#"],
  subscribe: ["sensors/+/telemetry", "sensors/+/cmd", "sensors/+/cmd/ack", "$SYS/#"],
};

/** The embedded broker with a data dir holding the devices' credentials; device auth unless `mode: "open"`. */
export async function startEmbeddedUnderTest(deviceIds: string[], options: EmbeddedOptions = {}): Promise<EmbeddedUnderTest> {
  const dataDir = mkdtempSync(join(tmpdir(), "embedded-broker-test-"));
  const passwords = new Map<string, string>();
  for (const id of deviceIds) {
    const password = generatePassword();
    await setDevicePassword(defaultCredentialsFile(dataDir), id, password);
    passwords.set(id, password);
  }
  const start = (port: number, { mode = "devices", serviceUsers, deny, logger, redisUrl }: EmbeddedOptions) =>
    startEmbeddedBroker({
      host: "127.0.0.1",
      port,
      dataDir,
      redis: redisUrl === undefined ? undefined : { url: redisUrl },
      auth: mode === "open"
        ? { mode, deny }
        : { mode, serviceUsers: [...(serviceUsers ?? []), HOME_ASSISTANT_LOGIN], deny: [...(deny ?? []), HOME_ASSISTANT_DENY] },
      logger,
    });
  let broker: EmbeddedBroker = await start(0, options);
  return {
    kind: "embedded",
    url: () => broker.url,
    gateway: () => ({ ...broker.serviceCredentials, clientId: "gateway" }),
    device: (id) => ({ username: id, password: passwords.get(id)!, clientId: id }),
    homeAssistant: () => ({ ...HOME_ASSISTANT_LOGIN, clientId: "home-assistant" }),
    embedded: () => broker,
    async restart(next = options) {
      const port = broker.port;
      await broker.close();
      broker = await start(port, next);
    },
    async close() {
      await broker.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The embedded broker as a broker node on a redis-server of its own (started here, stopped by close()). */
export async function startEmbeddedOnRedisUnderTest(deviceIds: string[]): Promise<EmbeddedUnderTest> {
  const redis: RunningRedis = await startRedis();
  const broker = await startEmbeddedUnderTest(deviceIds, { redisUrl: redis.url });
  const restart = broker.restart.bind(broker);
  const close = broker.close.bind(broker);
  return Object.assign(broker, {
    restart: (next?: EmbeddedOptions) => restart({ ...next, redisUrl: redis.url }),
    async close() {
      await close();
      await redis.close();
    },
  });
}

export const SHIPPED_MOSQUITTO_CONF = join(import.meta.dirname, "../../hardware/mosquitto/mosquitto.conf");
export const SHIPPED_MOSQUITTO_ACL = join(import.meta.dirname, "../../hardware/mosquitto/acl");

/**
 * The shipped mosquitto.conf with only machine paths, the port and logging rewritten. Each rewrite must hit
 * exactly one line, so a renamed directive fails here instead of silently testing something else.
 */
export function adaptShippedMosquittoConfig(text: string, paths: MosquittoPaths): string {
  const rewrites: Array<[RegExp, string]> = [
    [/^pid_file .*$/m, `pid_file ${paths.dir}/mosquitto.pid`],
    [/^password_file .*$/m, `password_file ${paths.dir}/passwd`],
    [/^acl_file .*$/m, `acl_file ${paths.dir}/acl`],
    [/^persistence_location .*$/m, `persistence_location ${paths.persistenceDir}/`],
    [/^listener 1883 .*$/m, `listener ${paths.port} 127.0.0.1`],
    [/^log_dest file .*$/m, `log_dest stderr\n${runAsConfigLine()}`],
  ];
  for (const [pattern, replacement] of rewrites) {
    const hits = text.match(new RegExp(pattern.source, "gm"))?.length ?? 0;
    if (hits !== 1) throw new Error(`shipped mosquitto.conf: expected one line matching ${pattern}, found ${hits}`);
    text = text.replace(pattern, replacement);
  }
  return text;
}

export async function startShippedMosquittoUnderTest(deviceIds: string[]): Promise<BrokerUnderTest> {
  const passwords = new Map<string, string>([["gateway", generatePassword()], ["homeassistant", generatePassword()]]);
  for (const id of deviceIds) passwords.set(id, generatePassword());
  const running: RunningMosquitto = await startMosquitto({
    config: (paths) => {
      // Written by our own provision code: this is also the check that Mosquitto accepts its $7$ hashes.
      for (const [user, password] of passwords) setMosquittoPassword(join(paths.dir, "passwd"), user, password);
      return adaptShippedMosquittoConfig(readFileSync(SHIPPED_MOSQUITTO_CONF, "utf8"), paths);
    },
    files: { acl: readFileSync(SHIPPED_MOSQUITTO_ACL, "utf8") },
  });
  return {
    kind: "mosquitto",
    url: () => running.url,
    gateway: () => ({ username: "gateway", password: passwords.get("gateway")!, clientId: "gateway" }),
    device: (id) => ({ username: id, password: passwords.get(id)!, clientId: id }),
    homeAssistant: () => ({ username: "homeassistant", password: passwords.get("homeassistant")!, clientId: "home-assistant" }),
    restart: () => running.restart(),
    close: () => running.close(),
  };
}
