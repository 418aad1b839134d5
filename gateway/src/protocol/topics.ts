/**
 * The topics of docs/protocol.md ("Topics"), built and parsed only here on the Node side. The firmware's
 * DeviceScript copy is devs/src/protocol/topics.ts (test/firmware/protocol-agreement.test.ts).
 */
import { isDeviceId } from "./ids.ts";
import { topicMatches } from "./topic-filter.ts";

export const TOPIC_ROOT = "sensors";

/** What follows `sensors/{id}/`: device → gateway (telemetry, status, cmd/ack) and gateway → device (cmd). */
export const DEVICE_TOPIC_KINDS = ["telemetry", "status", "cmd", "cmd/ack"] as const;
export type DeviceTopicKind = (typeof DEVICE_TOPIC_KINDS)[number];

export const deviceTopic = (deviceId: string, kind: DeviceTopicKind): string => `${TOPIC_ROOT}/${deviceId}/${kind}`;

/**
 * Topics of the events the gateway derives (SSE and its filters only, never published on MQTT): summaries,
 * alerts and what a person set about a device. Under the device's root, so `sensors/{id}/#` sees them too.
 */
export const GATEWAY_EVENT_TOPIC_KINDS = ["summary", "alert", "device"] as const;
export type GatewayEventTopicKind = (typeof GATEWAY_EVENT_TOPIC_KINDS)[number];
export const gatewayEventTopic = (deviceId: string, kind: GatewayEventTopicKind): string => `${TOPIC_ROOT}/${deviceId}/${kind}`;

/** Splits `sensors/{id}/{kind}`; undefined for any other topic. */
export function parseDeviceTopic(topic: string): { deviceId: string; kind: DeviceTopicKind } | undefined {
  const parts = topic.split("/");
  if (parts[0] !== TOPIC_ROOT || parts.length < 3 || parts.length > 4) return undefined;
  const deviceId = parts[1]!;
  if (!isDeviceId(deviceId)) return undefined;
  const kind = parts.slice(2).join("/") as DeviceTopicKind;
  return DEVICE_TOPIC_KINDS.includes(kind) ? { deviceId, kind } : undefined;
}

/** What the gateway subscribes to: every device → gateway topic (all QoS 1). */
export const GATEWAY_SUBSCRIPTIONS = [
  `${TOPIC_ROOT}/+/telemetry`,
  `${TOPIC_ROOT}/+/status`,
  `${TOPIC_ROOT}/+/cmd/ack`,
] as const;

/** A device's broker rights (embedded broker and hardware/mosquitto/acl): publish under its own root, read its commands. */
export const devicePublishFilter = (deviceId: string): string => `${TOPIC_ROOT}/${deviceId}/#`;
export const deviceSubscribeTopic = (deviceId: string): string => deviceTopic(deviceId, "cmd");

/** `sensors/{id}/#` in MQTT semantics (it also matches `sensors/{id}`), as Mosquitto's ACL applies it. */
export const deviceMayPublish = (deviceId: string, topic: string): boolean => topicMatches(devicePublishFilter(deviceId), topic);

/**
 * What the gateway itself publishes for other tools (docs/protocol.md "Topics the gateway publishes"), outside
 * `sensors/`: a device may publish under its own `sensors/{id}/#`, so nothing there could be trusted as the
 * gateway's word. Devices have no right under this root (broker/device-auth.ts, hardware/mosquitto/acl).
 */
export const GATEWAY_PUBLISH_ROOT = "sleepy";
/** Retained "online" (birth) / "offline" (the gateway's Last Will). */
export const gatewayStatusTopic = `${GATEWAY_PUBLISH_ROOT}/gateway/status`;
/** Retained JSON of a device's state (homeassistant/state.ts), what Home Assistant's entities read. */
export const deviceStateTopic = (deviceId: string): string => `${GATEWAY_PUBLISH_ROOT}/devices/${deviceId}/state`;
/** Retained JSON of the latest change of the alert of one rule for one device (alerts/mqtt-alerts.ts). */
export const alertTopic = (deviceId: string, ruleId: string): string => `${GATEWAY_PUBLISH_ROOT}/alerts/${deviceId}/${ruleId}`;
