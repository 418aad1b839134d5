export {
  startEmbeddedBroker,
  EmbeddedBroker,
  ErrBrokerClosed,
  type EmbeddedBrokerOptions,
  type DeliveredEvent,
  type ClientEvent,
  type BrokerCounters,
} from "./embedded.ts";
export { brokerNodeOptions } from "./nodes.ts";
export { MQTT_WS_PATH, type ListenerKind } from "./listeners.ts";
export type { DeviceAuthOptions, ServiceCredential } from "./device-auth.ts";
export { ErrInvalidDenyRule, type DenyRule } from "./deny-rules.ts";
export type { BrokerLogger } from "./logger.ts";
export type { BrokerStore } from "./persistence/store.ts";
// Device credentials, for provisioning (gateway/src/provision) and tests that provision devices.
export { DeviceCredentials, defaultCredentialsFile, generatePassword, setDevicePassword } from "./credentials.ts";
// The bare store, for tests that inject faults under the decorated stack.
export { SqlitePersistence } from "./persistence/sqlite.ts";
