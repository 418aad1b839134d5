import type { StreamEvent } from "./types.ts";

/** MQTT 3.1.1 §4.7: `#` only last and alone in its level, `+` alone in its level. */
export function isValidFilter(filter: string): boolean {
  if (filter === "") return false;
  const levels = filter.split("/");
  return levels.every(
    (l, i) => (l === "#" ? i === levels.length - 1 : l === "+" || (!l.includes("#") && !l.includes("+"))),
  );
}

/** MQTT wildcard match (`+` one level, `#` this level and below, also the parent itself). */
export function matchesFilter(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/** The MQTT topic an event is about; `command` events carry none, they concern the device's cmd topic. */
export function eventTopic(ev: StreamEvent): string | null {
  switch (ev.kind) {
    case "telemetry":
    case "status":
    case "command-ack":
      return ev.data.topic;
    case "command":
      return `sensors/${ev.data.deviceId}/cmd`;
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
  return ["telemetry", "status", "cmd", "cmd/ack"].some((leaf) => matchesFilter(f.topic, `sensors/${deviceId}/${leaf}`));
}

export function eventVisible(f: ViewFilter, ev: StreamEvent): boolean {
  const topic = eventTopic(ev);
  if (topic === null) return true;
  const deviceId = "deviceId" in ev.data ? ev.data.deviceId : "";
  return deviceId.toLowerCase().includes(f.device.trim().toLowerCase()) && matchesFilter(f.topic, topic);
}
