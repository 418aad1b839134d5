import { filtersOverlap, topicFilterProblem, topicMatches } from "../protocol/topic-filter.ts";

/**
 * What a client other than a device may not do (devices have their fixed ACL in device-auth.ts): service users,
 * and every client in open mode. The broker's own service login (EmbeddedBroker.serviceCredentials) is exempt,
 * so the gateway's bridge keeps working whatever the rules say.
 *
 * @example
 * // a dashboard login that may read readings but never send commands or read the command acks
 * deny: [{ username: "dashboard", publish: ["sensors/+/cmd"], subscribe: ["sensors/+/cmd/ack"] }]
 */
export interface DenyRule {
  /** The username it applies to, exactly; "*" (the default) for every client the rules apply to. */
  username?: string;
  /** MQTT filters. A PUBLISH to a matching topic closes the connection: MQTT 3.1.1 has no PUBLISH refusal. */
  publish?: string[];
  /**
   * MQTT filters. A subscription that could receive a matching topic gets 0x80 in SUBACK, and no matching
   * message is forwarded to the client (not even from a subscription stored before the rule existed).
   */
  subscribe?: string[];
}

export class ErrInvalidDenyRule extends Error {
  override name = "ErrInvalidDenyRule";
}

export interface DenyRules {
  /** The index of the first rule denying `username` a PUBLISH to `topic`, or undefined. */
  publish(username: string | undefined, topic: string): number | undefined;
  /** The index of the first rule denying `username` the subscription `filter`, or undefined. */
  subscribe(username: string | undefined, filter: string): number | undefined;
  /** The index of the first rule denying `username` a message on `topic`, or undefined. */
  forward(username: string | undefined, topic: string): number | undefined;
}

const KEYS = new Set(["username", "publish", "subscribe"]);

/** Validates the rules (throws ErrInvalidDenyRule naming the bad entry, e.g. `auth.deny[1].publish[0]`). */
export function compileDenyRules(rules: unknown, where = "auth.deny"): DenyRules {
  if (rules === undefined) rules = [];
  if (!Array.isArray(rules)) throw new ErrInvalidDenyRule(`${where}: expected an array of rules`);
  const compiled = rules.map((rule: unknown, i) => checkRule(rule, `${where}[${i}]`));
  const find = (username: string | undefined, test: (rule: Required<DenyRule>) => boolean) => {
    const index = compiled.findIndex((rule) => (rule.username === "*" || rule.username === username) && test(rule));
    return index === -1 ? undefined : index;
  };
  return {
    publish: (username, topic) => find(username, (rule) => rule.publish.some((f) => topicMatches(f, topic))),
    subscribe: (username, filter) => find(username, (rule) => rule.subscribe.some((f) => filtersOverlap(f, filter))),
    forward: (username, topic) => find(username, (rule) => rule.subscribe.some((f) => topicMatches(f, topic))),
  };
}

function checkRule(rule: unknown, where: string): Required<DenyRule> {
  if (typeof rule !== "object" || rule === null || Array.isArray(rule)) {
    throw new ErrInvalidDenyRule(`${where}: expected an object { username?, publish?, subscribe? }`);
  }
  for (const key of Object.keys(rule)) {
    if (!KEYS.has(key)) throw new ErrInvalidDenyRule(`${where}: unknown key ${JSON.stringify(key)} (expected username, publish, subscribe)`);
  }
  const { username = "*", publish = [], subscribe = [] } = rule as Record<string, unknown>;
  if (typeof username !== "string" || username.length === 0) {
    throw new ErrInvalidDenyRule(`${where}.username: expected a non-empty string, or "*" for every user`);
  }
  const filters = checkFilters(publish, `${where}.publish`);
  const subscribeFilters = checkFilters(subscribe, `${where}.subscribe`);
  if (filters.length === 0 && subscribeFilters.length === 0) {
    throw new ErrInvalidDenyRule(`${where}: denies nothing (give publish and/or subscribe filters)`);
  }
  return { username, publish: filters, subscribe: subscribeFilters };
}

function checkFilters(filters: unknown, where: string): string[] {
  if (!Array.isArray(filters)) throw new ErrInvalidDenyRule(`${where}: expected an array of MQTT topic filters`);
  return filters.map((filter: unknown, i) => {
    const problem = typeof filter === "string" ? topicFilterProblem(filter) : "not a string";
    if (problem !== undefined) {
      throw new ErrInvalidDenyRule(`${where}[${i}]: ${JSON.stringify(filter)} is not a valid MQTT topic filter (${problem})`);
    }
    return filter as string;
  });
}
