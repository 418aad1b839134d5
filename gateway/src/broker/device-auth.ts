import { timingSafeEqual, createHash } from "node:crypto";
import type { AuthenticateError, Client, PublishPacket, Subscription } from "aedes";
import { DeviceCredentials, defaultCredentialsFile } from "./credentials.ts";
import { isValidDeviceId } from "./device-id.ts";
import type { BrokerLogger } from "./logger.ts";

/**
 * Who may connect to the embedded broker and what they may do (issue 4, docs/protocol.md topics):
 * - a device logs in with username = client id = its device id and the password from the credentials file;
 *   it may publish only to `sensors/{id}/#` and subscribe only to `sensors/{id}/cmd`;
 * - a service user (the gateway's own MQTT client) has full rights with any client id.
 * The same rules ship for Mosquitto in hardware/mosquitto/acl.
 */
export type DeviceAuthOptions =
  | { mode: "open" }
  | {
      mode: "devices";
      /** Default: `<dataDir>/mqtt-credentials.json` (written by `npm run provision`). */
      credentialsFile?: string;
      /** Extra full-rights users; the broker always adds one generated at start (EmbeddedBroker.serviceCredentials). */
      serviceUsers?: ServiceCredential[];
    };

export interface ServiceCredential {
  username: string;
  password: string;
}

/** Counted refusals, for /metrics. */
export interface AuthCounters {
  connectRefused: number;
  publishDenied: number;
  subscribeDenied: number;
}

type Identity = { kind: "service" } | { kind: "device"; deviceId: string } | { kind: "open" };

// MQTT 3.1.1 §3.2.2.3 CONNACK return codes.
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;
const SERVER_UNAVAILABLE = 3;

export interface AuthHooks {
  authenticate(
    client: Client,
    username: Readonly<string | undefined>,
    password: Readonly<Buffer | undefined>,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void;
  authorizePublish(client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void): void;
  authorizeSubscribe(
    client: Client,
    sub: Subscription,
    callback: (error: Error | null, subscription?: Subscription | null) => void,
  ): void;
}

export function createAuthHooks(opts: {
  auth: DeviceAuthOptions;
  dataDir: string | undefined;
  serviceUsers: ServiceCredential[];
  counters: AuthCounters;
  logger: BrokerLogger;
}): AuthHooks {
  const { auth, counters, logger } = opts;
  const identities = new WeakMap<Client, Identity>();
  const credentialsFile =
    auth.mode === "devices"
      ? (auth.credentialsFile ?? (opts.dataDir === undefined ? undefined : defaultCredentialsFile(opts.dataDir)))
      : undefined;
  const credentials = credentialsFile === undefined ? undefined : new DeviceCredentials(credentialsFile);
  const serviceUsers = new Map(opts.serviceUsers.map((u) => [u.username, digest(u.password)]));

  function refuse(client: Client, returnCode: number, reason: string, done: (e: AuthenticateError, success: null) => void): void {
    counters.connectRefused++;
    logger.warn({ clientId: client.id, returnCode, reason }, "mqtt connect refused");
    done(Object.assign(new Error(reason), { returnCode }) as AuthenticateError, null);
  }

  return {
    authenticate(client, username, password, done) {
      if (auth.mode === "open") {
        identities.set(client, { kind: "open" });
        return done(null, true);
      }
      if (username === undefined || password === undefined) {
        return refuse(client, BAD_USERNAME_OR_PASSWORD, "username and password required", done);
      }
      const service = serviceUsers.get(username);
      if (service !== undefined) {
        if (!timingSafeEqual(service, digest(password))) {
          return refuse(client, BAD_USERNAME_OR_PASSWORD, "bad username or password", done);
        }
        identities.set(client, { kind: "service" });
        return done(null, true);
      }
      if (!isValidDeviceId(username) || credentials === undefined) {
        return refuse(client, BAD_USERNAME_OR_PASSWORD, "bad username or password", done);
      }
      credentials.verify(username, password.toString("utf8")).then(
        (ok) => {
          if (!ok) return refuse(client, BAD_USERNAME_OR_PASSWORD, "bad username or password", done);
          if (client.id !== username) {
            return refuse(client, NOT_AUTHORIZED, `client id must equal the username ${username}`, done);
          }
          const will = (client as unknown as { _will?: { topic: string } | null })._will;
          if (will && !deviceMayPublish(username, will.topic)) {
            return refuse(client, NOT_AUTHORIZED, `will topic ${will.topic} not allowed for ${username}`, done);
          }
          identities.set(client, { kind: "device", deviceId: username });
          done(null, true);
        },
        (err: unknown) => {
          // A corrupt or unreadable credentials file refuses connects; it must not crash the gateway.
          logger.error({ err, credentialsFile }, "cannot read mqtt credentials");
          refuse(client, SERVER_UNAVAILABLE, "credentials unavailable", done);
        },
      );
    },

    authorizePublish(client, packet, callback) {
      if (packet.topic.startsWith("$SYS/")) return callback(new Error("$SYS topics are reserved"));
      // client === null: a will re-published by the broker itself after a restart; it was checked at connect.
      const identity = client === null ? undefined : identities.get(client);
      if (client === null || identity?.kind !== "device") return callback(null);
      if (deviceMayPublish(identity.deviceId, packet.topic)) return callback(null);
      counters.publishDenied++;
      logger.warn({ clientId: client.id, topic: packet.topic }, "mqtt publish denied");
      // MQTT 3.1.1 cannot refuse a PUBLISH: aedes closes the connection, the message goes nowhere.
      callback(new Error(`publish to ${packet.topic} not allowed`));
    },

    authorizeSubscribe(client, sub, callback) {
      const identity = identities.get(client);
      if (identity?.kind !== "device" || sub.topic === `sensors/${identity.deviceId}/cmd`) return callback(null, sub);
      counters.subscribeDenied++;
      logger.warn({ clientId: client.id, topic: sub.topic }, "mqtt subscribe denied");
      callback(null, null); // SUBACK return code 0x80 for this filter, connection stays up
    },
  };
}

/** The filter `sensors/{id}/#` in MQTT semantics (it also matches `sensors/{id}`), as Mosquitto's ACL applies it. */
function deviceMayPublish(deviceId: string, topic: string): boolean {
  return topic === `sensors/${deviceId}` || topic.startsWith(`sensors/${deviceId}/`);
}

function digest(secret: string | Buffer): Buffer {
  return createHash("sha256").update(secret).digest();
}
