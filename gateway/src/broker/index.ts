export {
  startEmbeddedBroker,
  EmbeddedBroker,
  ErrBrokerClosed,
  type EmbeddedBrokerOptions,
  type DeliveredEvent,
  type ClientEvent,
  type BrokerCounters,
} from "./embedded.ts";
export type { DeviceAuthOptions, ServiceCredential } from "./device-auth.ts";
export type { BrokerLogger } from "./logger.ts";
export { isValidDeviceId, DEVICE_ID_PATTERN } from "./device-id.ts";
