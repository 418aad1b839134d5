import { topicMatches as matchesFilter, validateTopicFilter } from "../../src/protocol/topic-filter.ts";
import { DEVICE_TOPIC_KINDS, deviceTopic } from "../../src/protocol/topics.ts";
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

/** The MQTT topic an event is about; `command` events carry none, they concern the device's cmd topic. */
export function eventTopic(ev: StreamEvent): string | null {
  switch (ev.kind) {
    case "telemetry":
    case "status":
    case "command-ack":
      return ev.data.topic;
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

export function deviceVisible(f: ViewFilter, deviceId: string): boolean {
  if (!deviceId.toLowerCase().includes(f.device.trim().toLowerCase())) return false;
  // A device is shown when the topic filter covers any of its topics.
  return DEVICE_TOPIC_KINDS.some((kind) => matchesFilter(f.topic, deviceTopic(deviceId, kind)));
}

export function eventVisible(f: ViewFilter, ev: StreamEvent): boolean {
  const topic = eventTopic(ev);
  if (topic === null) return true;
  const deviceId = "deviceId" in ev.data ? ev.data.deviceId : "";
  return deviceId.toLowerCase().includes(f.device.trim().toLowerCase()) && matchesFilter(f.topic, topic);
}
