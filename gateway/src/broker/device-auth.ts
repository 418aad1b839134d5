import { timingSafeEqual, createHash } from "node:crypto";
import type { AedesPublishPacket, AuthenticateError, Client, ConnectPacket, PublishPacket, Subscription } from "aedes";
import { isDeviceId } from "../protocol/ids.ts";
import { deviceMayPublish, deviceSubscribeTopic } from "../protocol/topics.ts";
import { DeviceCredentials, defaultCredentialsFile } from "./credentials.ts";
import { compileDenyRules, type DenyRule } from "./deny-rules.ts";
import type { BrokerLogger } from "./logger.ts";
import type { ClientRef } from "./persistence/store.ts";

/**
 * Who may connect to the embedded broker and what they may do (issue 4, docs/protocol.md topics):
 * - a device logs in with username = client id = its device id and the password from the credentials file;
 *   it may publish only to `sensors/{id}/#` and subscribe only to `sensors/{id}/cmd`;
 * - the broker's own service login (the gateway's MQTT client) has full rights with any client id;
 * - other service users, and every client in open mode, have full rights minus the `deny` rules.
 * The device rules ship for Mosquitto too, in hardware/mosquitto/acl.
 */
export type DeviceAuthOptions =
  | { mode: "open"; deny?: DenyRule[] }
  | {
      mode: "devices";
      /** Default: `<dataDir>/mqtt-credentials.json` (written by `npm run provision`). */
      credentialsFile?: string;
      /** Extra users with any client id; the broker always adds its own (EmbeddedBroker.serviceCredentials). */
      serviceUsers?: ServiceCredential[];
      deny?: DenyRule[];
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
  /** Messages not forwarded to a client its read rules exclude (a subscription stored before, or despite, a refusal). */
  forwardDenied: number;
}

type Identity =
  | { kind: "gateway" }
  | { kind: "device"; deviceId: string }
  /** A service user or an open-mode client: deny rules apply. */
  | { kind: "user"; username: string | undefined };

// MQTT 3.1.1 §3.2.2.3 CONNACK return codes.
const IDENTIFIER_REJECTED = 2;
const SERVER_UNAVAILABLE = 3;
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;

export interface AuthHooks {
  preConnect(client: Client, packet: ConnectPacket, callback: (error: Error | null, success: boolean) => void): void;
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
  /** The packet, or null when `client` may not receive its topic. */
  authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null;
  /** authorizeSubscribe's verdict without counting or logging, for the store (persistence/granted-subscriptions.ts). */
  subscriptionGranted(client: ClientRef, topic: string): boolean;
}

/** Throws ErrInvalidDenyRule before anything starts when `auth.deny` is malformed. */
export function createAuthHooks(opts: {
  auth: DeviceAuthOptions;
  dataDir: string | undefined;
  /** The broker's own full-rights login, exempt from deny rules. */
  gateway: ServiceCredential;
  counters: AuthCounters;
  logger: BrokerLogger;
}): AuthHooks {
  const { auth, counters, logger } = opts;
  const deny = compileDenyRules(auth.deny);
  const identities = new WeakMap<Client, Identity>();
  // By the time authenticate runs, aedes has replaced an empty client id by a generated one: noted at CONNECT.
  const emptyIdRejected = new WeakSet<Client>();
  const credentialsFile =
    auth.mode === "devices"
      ? (auth.credentialsFile ?? (opts.dataDir === undefined ? undefined : defaultCredentialsFile(opts.dataDir)))
      : undefined;
  const credentials = credentialsFile === undefined ? undefined : new DeviceCredentials(credentialsFile);
  const gateway = { username: opts.gateway.username, digest: digest(opts.gateway.password) };
  const serviceUsers = new Map((auth.mode === "devices" ? (auth.serviceUsers ?? []) : []).map((u) => [u.username, digest(u.password)]));

  function refuse(client: Client, returnCode: number, reason: string, done: (e: AuthenticateError, success: null) => void): void {
    // aedes 1.2 lib/client.js close() runs cleanIncoming for a clean client even when it was never authorized:
    // a refused CONNECT carrying another client's id would wipe that session's QoS 2 de-duplication state.
    (client as { clean: boolean }).clean = false;
    counters.connectRefused++;
    logger.warn({ clientId: client.id, returnCode, reason }, "mqtt connect refused");
    done(Object.assign(new Error(reason), { returnCode }) as AuthenticateError, null);
  }

  /** Accepts a user the deny rules apply to, unless its will is on a topic they deny. */
  function acceptUser(client: Client, username: string | undefined, done: (e: AuthenticateError | null, success: boolean | null) => void): void {
    const topic = willTopic(client);
    const rule = topic === undefined ? undefined : deny.publish(username, topic);
    if (rule !== undefined) return refuse(client, NOT_AUTHORIZED, `will topic ${topic} denied by auth.deny[${rule}]`, done);
    identities.set(client, { kind: "user", username });
    done(null, true);
  }

  return {
    preConnect(client, packet, callback) {
      // [MQTT-3.1.3-8] a zero-byte client id needs CleanSession=1; MQTT 3.1 (§3.1) allows none at all.
      if (packet.clientId === "" && (!packet.clean || packet.protocolVersion === 3)) emptyIdRejected.add(client);
      callback(null, true);
    },

    authenticate(client, username, password, done) {
      if (emptyIdRejected.has(client)) {
        return refuse(client, IDENTIFIER_REJECTED, "empty client id needs a clean session and MQTT 3.1.1 [MQTT-3.1.3-8]", done);
      }
      if (username === gateway.username && password !== undefined && timingSafeEqual(gateway.digest, digest(password))) {
        identities.set(client, { kind: "gateway" });
        return done(null, true);
      }
      if (auth.mode === "open") return acceptUser(client, username, done);
      if (username === undefined || password === undefined) {
        return refuse(client, BAD_USERNAME_OR_PASSWORD, "username and password required", done);
      }
      const service = serviceUsers.get(username);
      if (service !== undefined) {
        if (!timingSafeEqual(service, digest(password))) {
          return refuse(client, BAD_USERNAME_OR_PASSWORD, "bad username or password", done);
        }
        return acceptUser(client, username, done);
      }
      if (!isDeviceId(username) || credentials === undefined) {
        return refuse(client, BAD_USERNAME_OR_PASSWORD, "bad username or password", done);
      }
      credentials.verify(username, password.toString("utf8")).then(
        (ok) => {
          if (!ok) return refuse(client, BAD_USERNAME_OR_PASSWORD, "bad username or password", done);
          // Before aedes registers the client: a refused impostor never takes over the other device's session.
          if (client.id !== username) {
            return refuse(client, NOT_AUTHORIZED, `client id must equal the username ${username}`, done);
          }
          const will = willTopic(client);
          if (will !== undefined && !deviceMayPublish(username, will)) {
            return refuse(client, NOT_AUTHORIZED, `will topic ${will} not allowed for ${username}`, done);
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
      if (client === null) return callback(null);
      const identity = identities.get(client);
      const by = deniedBy(identity, "publish", packet.topic);
      if (by === undefined) return callback(null);
      counters.publishDenied++;
      logger.warn({ clientId: client.id, username: usernameOf(identity), topic: packet.topic, by }, "mqtt publish denied");
      // MQTT 3.1.1 cannot refuse a PUBLISH: aedes closes the connection, the message goes nowhere.
      callback(new Error(`publish to ${packet.topic} not allowed`));
    },

    authorizeSubscribe(client, sub, callback) {
      const identity = identities.get(client);
      const by = deniedBy(identity, "subscribe", sub.topic);
      if (by === undefined) return callback(null, sub);
      counters.subscribeDenied++;
      logger.warn({ clientId: client.id, username: usernameOf(identity), topic: sub.topic, by }, "mqtt subscribe denied");
      callback(null, null); // SUBACK return code 0x80 for this filter, connection stays up
    },

    // The read rules, per message. A subscription stored before them (in open mode, or before a deny rule was
    // added) stays in the store when aedes' restore refuses it, and the messages queued for it would be sent.
    authorizeForward(client, packet) {
      const identity = identities.get(client);
      const by = deniedBy(identity, "forward", packet.topic);
      if (by === undefined) return packet;
      counters.forwardDenied++;
      logger.warn({ clientId: client.id, username: usernameOf(identity), topic: packet.topic, by }, "mqtt message not forwarded");
      return null;
    },

    subscriptionGranted(client, topic) {
      return deniedBy(identities.get(client as Client), "subscribe", topic) === undefined;
    },
  };

  /** What denies `identity` the action on `topic` (for the log: "device ACL", "auth.deny[2]"), or undefined. */
  function deniedBy(identity: Identity | undefined, action: "publish" | "subscribe" | "forward", topic: string): string | undefined {
    if (identity === undefined) return "no identity"; // not authenticated by this broker: nothing allowed
    if (identity.kind === "gateway") return undefined;
    if (identity.kind === "device") {
      const id = identity.deviceId;
      const allowed = action === "publish" ? deviceMayPublish(id, topic) : topic === deviceSubscribeTopic(id);
      return allowed ? undefined : "device ACL";
    }
    const rule = deny[action](identity.username, topic);
    return rule === undefined ? undefined : `auth.deny[${rule}]`;
  }
}

function willTopic(client: Client): string | undefined {
  return (client as unknown as { _will?: { topic: string } | null })._will?.topic;
}

function usernameOf(identity: Identity | undefined): string | undefined {
  return identity?.kind === "device" ? identity.deviceId : identity?.kind === "user" ? identity.username : undefined;
}

function digest(secret: string | Buffer): Buffer {
  return createHash("sha256").update(secret).digest();
}
