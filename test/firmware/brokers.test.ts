/**
 * The broker list format (MQTT_HOSTS) and the failover start, devs/src/protocol/brokers.ts: the code the
 * firmware runs and `npm run check:settings` uses (plain TypeScript, imported here as it is).
 */
import { describe, expect, test } from "vitest";
import { firstBroker, isValidHost, MAX_BROKERS, parseBrokerList } from "../../devs/src/protocol/brokers.ts";

describe("MQTT_HOSTS parsing", () => {
  test("host[:port] entries in order, the port defaulting to MQTT_PORT, spaces around entries ignored", () => {
    expect(parseBrokerList("192.168.1.20:1884, gw.example.org ,10.0.0.3:8883", 1883)).toEqual({
      brokers: [
        { host: "192.168.1.20", port: 1884 },
        { host: "gw.example.org", port: 1883 },
        { host: "10.0.0.3", port: 8883 },
      ],
      errors: [],
    });
  });

  test("bad, duplicate and surplus entries are left out, each with its reason", () => {
    const r = parseBrokerList("a:0,b:65536,c:12x,-bad,x..y,,ok1,ok1:1883,ok2,ok3,ok4,ok5", 1883);
    expect(r.brokers.map((b) => b.host)).toEqual(["ok1", "ok2", "ok3", "ok4"]);
    expect(r.brokers).toHaveLength(MAX_BROKERS);
    expect(r.errors).toEqual([
      "entry 1 'a:0': the port must be a whole number 1..65535",
      "entry 2 'b:65536': the port must be a whole number 1..65535",
      "entry 3 'c:12x': the port must be a whole number 1..65535",
      "entry 4 '-bad': not a host name or IPv4 address",
      "entry 5 'x..y': not a host name or IPv4 address",
      "entry 6 '': empty",
      "entry 8 'ok1:1883': listed twice",
      "entry 12 'ok5': more than 4 brokers",
    ]);
  });

  test("host names: labels of letters, digits and '-', at most 63 each and 253 in all", () => {
    for (const ok of ["a", "pi-4", "192.168.1.20", "mqtt.example.org", `${"a".repeat(63)}.b`]) expect(isValidHost(ok), ok).toBe(true);
    for (const bad of ["", "a_b", "a.", ".a", "a-.b", "mqtt://x", "[::1]", `${"a".repeat(64)}.b`, `${"a.".repeat(127)}ab`]) {
      expect(isValidHost(bad), bad).toBe(false);
    }
  });
});

describe("the broker a wake tries first", () => {
  test("one broker: always it", () => {
    expect(firstBroker(1, 0, 5)).toBe(0);
    expect(firstBroker(1, -1, 0)).toBe(0);
  });

  test("the one that took the last delivery, one further per wake that delivered nothing since", () => {
    expect(firstBroker(2, 1, 0)).toBe(1);
    expect(firstBroker(2, 1, 1)).toBe(0);
    expect(firstBroker(3, 2, 2)).toBe(1);
    expect(firstBroker(3, -1, 0)).toBe(0); // nothing delivered yet: the first listed
    expect(firstBroker(2, 5, 0)).toBe(0); // an index from a longer, older list
    expect(firstBroker(2, 0, -1)).toBe(0);
  });
});
