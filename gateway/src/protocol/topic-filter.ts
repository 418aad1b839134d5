/**
 * MQTT topic filters with the exact semantics of MQTT 3.1.1 §4.7:
 * `+` matches one whole level, `#` matches the parent and any number of levels and must be last,
 * wildcards never share a level with other characters, and filters starting with a wildcard do
 * not match topics starting with `$` (§4.7.2). The one implementation for the gateway, its auth, and the
 * web page's filter box.
 */

export class ErrInvalidTopicFilter extends Error {
  readonly code = "invalid_topic_filter";
  constructor(readonly filter: string, reason: string) {
    super(`invalid topic filter ${JSON.stringify(filter)}: ${reason}`);
    this.name = "ErrInvalidTopicFilter";
  }
}

const MAX_TOPIC_BYTES = 65535; // §1.5.3: UTF-8 strings are length-prefixed with 16 bits
// TextEncoder, not Buffer: the web page uses these rules too.
const utf8 = new TextEncoder();

/** Why `filter` is not a valid MQTT subscription filter, or undefined when it is. */
export function topicFilterProblem(filter: string): string | undefined {
  if (filter.length === 0) return "empty"; // [MQTT-4.7.3-1]
  if (filter.includes("\u0000")) return "contains NUL"; // [MQTT-4.7.3-2]
  if (utf8.encode(filter).length > MAX_TOPIC_BYTES) return "too long";
  const levels = filter.split("/");
  for (const [i, level] of levels.entries()) {
    if (level.includes("#") && (level !== "#" || i !== levels.length - 1)) return '"#" must be a whole level and the last one';
    if (level.includes("+") && level !== "+") return '"+" must be a whole level';
  }
  return undefined;
}

/** Throws ErrInvalidTopicFilter when `filter` is not a valid MQTT subscription filter. */
export function validateTopicFilter(filter: string): void {
  const problem = topicFilterProblem(filter);
  if (problem !== undefined) throw new ErrInvalidTopicFilter(filter, problem);
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

/** Whether some topic name matches both valid filters (a subscription to `a` could receive a message for `b`). */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split("/");
  const y = b.split("/");
  if ((isWildcard(x[0]!) && y[0]!.startsWith("$")) || (isWildcard(y[0]!) && x[0]!.startsWith("$"))) return false;
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] === "#" || y[i] === "#") return true;
    if (x[i] === undefined || y[i] === undefined) return false;
    if (x[i] !== "+" && y[i] !== "+" && x[i] !== y[i]) return false;
  }
  return true;
}

const isWildcard = (level: string): boolean => level === "+" || level === "#";
