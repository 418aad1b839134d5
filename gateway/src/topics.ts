/**
 * MQTT topic filters with the exact semantics of MQTT 3.1.1 §4.7:
 * `+` matches one whole level, `#` matches the parent and any number of levels and must be last,
 * wildcards never share a level with other characters, and filters starting with a wildcard do
 * not match topics starting with `$` (§4.7.2).
 */

export class ErrInvalidTopicFilter extends Error {
  readonly code = "invalid_topic_filter";
  constructor(readonly filter: string, reason: string) {
    super(`invalid topic filter ${JSON.stringify(filter)}: ${reason}`);
    this.name = "ErrInvalidTopicFilter";
  }
}

const MAX_TOPIC_BYTES = 65535; // §1.5.3: UTF-8 strings are length-prefixed with 16 bits

/** Throws ErrInvalidTopicFilter when `filter` is not a valid MQTT subscription filter. */
export function validateTopicFilter(filter: string): void {
  if (filter.length === 0) throw new ErrInvalidTopicFilter(filter, "empty");
  if (Buffer.byteLength(filter) > MAX_TOPIC_BYTES) throw new ErrInvalidTopicFilter(filter, "too long");
  if (filter.includes("\u0000")) throw new ErrInvalidTopicFilter(filter, "contains NUL");
  const levels = filter.split("/");
  levels.forEach((level, i) => {
    if (level.includes("#") && (level !== "#" || i !== levels.length - 1)) {
      throw new ErrInvalidTopicFilter(filter, "'#' must be a whole level and the last one");
    }
    if (level.includes("+") && level !== "+") {
      throw new ErrInvalidTopicFilter(filter, "'+' must be a whole level");
    }
  });
}

/** True when the (wildcard-free) `topic` matches the valid `filter`. */
export function topicMatches(filter: string, topic: string): boolean {
  return levelsMatch(filter.split("/"), topic.split("/"));
}

/** topicMatches on pre-split levels, for hot paths that match one topic against many filters. */
export function levelsMatch(f: readonly string[], t: readonly string[]): boolean {
  if (t[0]?.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true; // also matches the parent level: "a/#" matches "a"
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * True when every topic matched by `inner` is also matched by `outer` (both valid filters).
 * Used to check that a requested stream filter stays inside a token's read filters.
 */
export function filterCovers(outer: string, inner: string): boolean {
  const o = outer.split("/");
  const n = inner.split("/");
  for (let i = 0; i < o.length; i++) {
    if (o[i] === "#") return !(i === 0 && n[0]?.startsWith("$"));
    if (i >= n.length) return false;
    if (n[i] === "#") return false; // inner reaches deeper than a non-# outer
    if (o[i] === "+") {
      if (i === 0 && n[0].startsWith("$")) return false;
      continue;
    }
    if (n[i] === "+" || n[i] !== o[i]) return false;
  }
  return o.length === n.length;
}

/** True when `filters` is non-empty and some filter matches `topic`. */
export function anyMatches(filters: readonly string[], topic: string): boolean {
  for (const f of filters) if (topicMatches(f, topic)) return true;
  return false;
}

export type DeviceTopicKind = "telemetry" | "status" | "cmd" | "cmd/ack";

const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Validates a device id (docs/protocol.md "Identity"). */
export function isDeviceId(id: string): boolean {
  return DEVICE_ID.test(id);
}

/** Splits `sensors/{id}/{kind}`; undefined for any other topic. */
export function parseDeviceTopic(topic: string): { deviceId: string; kind: DeviceTopicKind } | undefined {
  const parts = topic.split("/");
  if (parts[0] !== "sensors" || parts.length < 3 || parts.length > 4) return undefined;
  const deviceId = parts[1];
  if (!isDeviceId(deviceId)) return undefined;
  const kind = parts.slice(2).join("/");
  if (kind === "telemetry" || kind === "status" || kind === "cmd" || kind === "cmd/ack") return { deviceId, kind };
  return undefined;
}

export const deviceTopic = (deviceId: string, kind: DeviceTopicKind): string => `sensors/${deviceId}/${kind}`;
