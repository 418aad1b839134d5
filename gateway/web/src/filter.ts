import { topicMatches as matchesFilter, validateTopicFilter } from "../../src/protocol/topic-filter.ts";
import { DEVICE_TOPIC_KINDS, deviceTopic, GATEWAY_EVENT_TOPIC_KINDS, gatewayEventTopic } from "../../src/protocol/topics.ts";
import type { StreamEvent } from "./types.ts";

/** MQTT 3.1.1 §4.7, by the gateway's own rules (protocol/topic-filter.ts). */
export function isValidFilter(filter: string): boolean {
  try {
    validateTopicFilter(filter);
    return true;
  } catch {
    return false;
  }
}

export { matchesFilter };

/** The topic an event is filtered by; `command` events carry none, they concern the device's cmd topic. */
export function eventTopic(ev: StreamEvent): string | null {
  switch (ev.kind) {
    case "telemetry":
    case "status":
    case "command-ack":
      return ev.data.topic;
    // Events the gateway derives have topics of their own under the device's root (docs/protocol.md "GET /events").
    case "summary":
    case "alert":
    case "device":
      return gatewayEventTopic(ev.data.deviceId, ev.kind);
    case "command":
      return deviceTopic(ev.data.deviceId, "cmd");
    case "reset":
      return null;
  }
}

/** What the user typed in the filter boxes: a device id fragment and an MQTT topic filter. */
export interface ViewFilter {
  device: string;
  topic: string;
}

/** Whether the device text matches the id, or the name or location a person gave the device. */
function deviceMatches(f: ViewFilter, deviceId: string, names: readonly (string | null)[]): boolean {
  const q = f.device.trim().toLowerCase();
  return [deviceId, ...names].some((s) => s !== null && s.toLowerCase().includes(q));
}

export function deviceVisible(f: ViewFilter, deviceId: string, names: readonly (string | null)[] = []): boolean {
  if (!deviceMatches(f, deviceId, names)) return false;
  // A device is shown when the topic filter covers any of its topics.
  return (
    DEVICE_TOPIC_KINDS.some((kind) => matchesFilter(f.topic, deviceTopic(deviceId, kind))) ||
    GATEWAY_EVENT_TOPIC_KINDS.some((kind) => matchesFilter(f.topic, gatewayEventTopic(deviceId, kind)))
  );
}

export function eventVisible(f: ViewFilter, ev: StreamEvent, names: readonly (string | null)[] = []): boolean {
  const topic = eventTopic(ev);
  if (topic === null) return true;
  const deviceId = "deviceId" in ev.data ? ev.data.deviceId : "";
  return deviceMatches(f, deviceId, names) && matchesFilter(f.topic, topic);
}
