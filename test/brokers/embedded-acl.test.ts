import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { generatePassword } from "../../gateway/src/broker/index.ts";
import { startEmbeddedBroker, type BrokerLogger, type DenyRule } from "../../gateway/src/broker/index.ts";
import { startEmbeddedUnderTest, type EmbeddedUnderTest, type Login } from "./brokers-under-test.ts";
import { RawClient } from "./raw-client.ts";
import { closed, connect, connectRecording, endAllClients, recordMessages, refusedCode, subscribeCodes, waitFor } from "./support.ts";

/**
 * Rules only the embedded broker has (issue 10), over TCP with real credentials: a device cannot take over or
 * disturb another device's session, deny rules for service users and open-mode clients, and the read rules on
 * subscriptions stored before them. auth-acl.test.ts has the rules shared with Mosquitto.
 */
afterEach(endAllClients);
const portOf = (broker: EmbeddedUnderTest) => Number(new URL(broker.url()).port);

describe("embedded broker: a device cannot take over or disturb another device's session", () => {
  let broker: EmbeddedUnderTest;
  beforeAll(async () => {
    broker = await startEmbeddedUnderTest(["dev-a", "dev-b"]);
  });
  afterAll(() => broker.close());

  it("refuses dev-a with client id dev-b (CONNACK 5): dev-b stays connected and its unacknowledged command stays its own", async () => {
    const disconnected: string[] = [];
    broker.embedded().on("clientDisconnected", ({ clientId }) => disconnected.push(clientId));
    const refusedBefore = broker.embedded().counters.connectRefused;
    const b = broker.device("dev-b");
    const victim = await RawClient.connect(portOf(broker), "dev-b", { clean: false, username: b.username, password: b.password });
    victim.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "sensors/dev-b/cmd", qos: 1 }] });
    expect((await victim.next("suback")).granted).toEqual([1]);
    const gateway = await connect(broker.url(), broker.gateway());
    await gateway.publishAsync("sensors/dev-b/cmd", '{"id":"c-1","op":"ping"}', { qos: 1 });
    const inFlight = await victim.next("publish"); // no PUBACK: it stays queued in dev-b's session

    const a = broker.device("dev-a");
    const impostor = await RawClient.open(portOf(broker), { clientId: "dev-b", clean: false, username: a.username, password: a.password });
    expect(impostor.connack.returnCode).toBe(5);
    await impostor.client.closed();
    expect(impostor.client.packets).toEqual([]); // nothing of dev-b's session after the CONNACK
    expect(broker.embedded().counters.connectRefused).toBe(refusedBefore + 1);

    // The same connection of dev-b, still subscribed.
    await gateway.publishAsync("sensors/dev-b/cmd", '{"id":"c-2","op":"ping"}', { qos: 1 });
    expect((await victim.next("publish")).payload.toString()).toBe('{"id":"c-2","op":"ping"}');
    expect(disconnected).toEqual([]);
    // Both unacknowledged commands come again on dev-b's next connect, with their packet ids [MQTT-4.4.0-1].
    await victim.drop();
    const again = await RawClient.connect(portOf(broker), "dev-b", { clean: false, username: b.username, password: b.password });
    const resent = [await again.next("publish"), await again.next("publish")];
    expect(resent.map((p) => p.payload.toString())).toEqual(['{"id":"c-1","op":"ping"}', '{"id":"c-2","op":"ping"}']);
    expect(resent[0]!.messageId).toBe(inFlight.messageId);
    for (const p of resent) again.send({ cmd: "puback", messageId: p.messageId! });
    await again.drop();
  });

  it("a refused CONNECT with dev-b's client id leaves dev-b's QoS 2 de-duplication alone (a resent PUBLISH is delivered once)", async () => {
    // Regression: aedes' close() of the refused connection ran cleanIncoming("dev-b") for its clean session.
    const gateway = await connect(broker.url(), broker.gateway());
    const received = recordMessages(gateway);
    await gateway.subscribeAsync("sensors/dev-b/telemetry", { qos: 2 });
    const b = broker.device("dev-b");
    const device = await RawClient.connect(portOf(broker), "dev-b", { clean: false, username: b.username, password: b.password });
    const reading = { cmd: "publish", topic: "sensors/dev-b/telemetry", payload: Buffer.from('{"v":1,"seq":7}'), qos: 2, messageId: 7, retain: false } as const;
    device.send({ ...reading, dup: false });
    await device.next("pubrec");

    const forger = await RawClient.open(portOf(broker), { clientId: "dev-b", clean: true, username: "dev-b", password: "wrong" });
    expect(forger.connack.returnCode).toBe(4);
    await forger.client.closed();

    device.send({ ...reading, dup: true }); // as after a lost PUBREC [MQTT-4.3.3-2]: the broker must not deliver it again
    await device.next("pubrec");
    device.send({ cmd: "pubrel", messageId: 7 });
    await device.next("pubcomp");
    // The next reading as QoS 2 too, so it reaches the gateway after any second copy of seq 7 would have.
    device.send({ ...reading, payload: Buffer.from('{"v":1,"seq":8}'), messageId: 8, dup: false });
    await device.next("pubrec");
    await waitFor(() => received.some((m) => m.payload.includes('"seq":8')), "the next reading");
    expect(received.map((m) => m.payload)).toEqual(['{"v":1,"seq":7}', '{"v":1,"seq":8}']);
    await device.drop();
  });
});

describe("embedded broker: deny rules for service users", () => {
  const dashboard = { username: "dashboard", password: generatePassword() };
  const ops = { username: "ops", password: generatePassword() };
  const deny: DenyRule[] = [
    { username: "dashboard", publish: ["sensors/+/cmd"], subscribe: ["sensors/+/cmd/ack"] },
    { username: "*", publish: ["admin/#"] },
  ];
  const logged: Array<{ level: string; obj: object; msg?: string }> = [];
  const record = (level: string) => (obj: object, msg?: string) => void logged.push({ level, obj, msg });
  const logger: BrokerLogger = { debug: () => {}, info: record("info"), warn: record("warn"), error: record("error") };
  let broker: EmbeddedUnderTest;
  beforeAll(async () => {
    broker = await startEmbeddedUnderTest(["dev-a"], { serviceUsers: [dashboard, ops], deny, logger });
  });
  afterAll(() => broker.close());
  const login = (user: { username: string; password: string }, clientId = user.username): Login => ({ ...user, clientId });
  const counters = () => ({ ...broker.embedded().counters });

  it("grants a user's other subscriptions and refuses the denied ones with 0x80, also a wider filter that covers them", async () => {
    const before = counters();
    const client = await connect(broker.url(), login(dashboard));
    const filters = ["sensors/+/telemetry", "sensors/+/cmd/ack", "sensors/dev-a/cmd/ack", "sensors/#", "#", "sensors/+/status"];
    expect(await subscribeCodes(client, filters, 1)).toEqual([1, 128, 128, 128, 128, 1]);
    expect(counters().subscribeDenied).toBe(before.subscribeDenied + 4);
    expect(client.connected).toBe(true);
    // A rule for one username does not touch another user.
    const other = await connect(broker.url(), login(ops));
    expect(await subscribeCodes(other, ["sensors/+/cmd/ack", "#"], 1)).toEqual([1, 1]);
  });

  it("a denied publish (QoS 0 or 1) closes the connection and reaches no subscriber; another user's goes through", async () => {
    const device = await connect(broker.url(), { ...broker.device("dev-a"), clean: false });
    const received = recordMessages(device);
    await device.subscribeAsync("sensors/dev-a/cmd", { qos: 1 });
    const before = counters();
    for (const qos of [0, 1] as const) {
      const client = await connect(broker.url(), login(dashboard));
      client.publish("sensors/dev-a/cmd", `{"id":"forged-${qos}","op":"ping"}`, { qos });
      await closed(client);
    }
    expect(counters().publishDenied).toBe(before.publishDenied + 2);
    const allowed = await connect(broker.url(), login(ops));
    await allowed.publishAsync("sensors/dev-a/cmd", '{"id":"c-ops","op":"ping"}', { qos: 1 });
    await waitFor(() => received.some((m) => m.payload.includes("c-ops")), "the command from ops");
    expect(received.map((m) => m.payload)).toEqual(['{"id":"c-ops","op":"ping"}']);
  });

  it('a "*" rule applies to every service user but never to the broker\'s own login', async () => {
    const gateway = await connect(broker.url(), broker.gateway());
    const received = recordMessages(gateway);
    await gateway.subscribeAsync("admin/#", { qos: 1 });
    for (const user of [ops, dashboard]) {
      const client = await connect(broker.url(), login(user));
      client.publish("admin/reboot", "forged", { qos: 1 });
      await closed(client);
    }
    const own = await connect(broker.url(), { ...broker.gateway(), clientId: "gateway-2" });
    await own.publishAsync("admin/reboot", "from-gateway", { qos: 1 });
    await waitFor(() => received.length > 0, "the gateway's own message");
    expect(received.map((m) => m.payload)).toEqual(["from-gateway"]);
  });

  it("refuses a user whose will is on a topic it may not publish to (CONNACK 5)", async () => {
    const will = { topic: "sensors/dev-a/cmd", payload: Buffer.from('{"id":"w","op":"ping"}'), qos: 1 as const, retain: false };
    expect(await refusedCode(broker.url(), { ...login(dashboard), will })).toBe(5);
    const allowed = await connect(broker.url(), { ...login(ops), will });
    expect(allowed.connected).toBe(true);
  });

  it("does not store a refused filter sent next to an allowed one: nothing is queued for it", async () => {
    const sleeper = await connect(broker.url(), { ...login(dashboard, "dashboard-sleeper"), clean: false });
    expect(await subscribeCodes(sleeper, ["sensors/+/telemetry", "sensors/+/cmd/ack"], 1)).toEqual([1, 128]);
    await sleeper.endAsync();
    const device = await connect(broker.url(), broker.device("dev-a"));
    await device.publishAsync("sensors/dev-a/cmd/ack", '{"v":1,"id":"c-1","ok":true}', { qos: 1 });
    await device.publishAsync("sensors/dev-a/telemetry", '{"v":1,"seq":1}', { qos: 1 });
    const [, received] = await connectRecording(broker.url(), { ...login(dashboard, "dashboard-sleeper"), clean: false });
    // Queued in publish order: an ack queued for the session would come before the reading.
    await waitFor(() => received.length > 0, "the queued reading");
    expect(received.map((m) => m.topic)).toEqual(["sensors/dev-a/telemetry"]);
  });

  it("logs each refusal with the rule that made it, and never a password", async () => {
    const client = await connect(broker.url(), login(dashboard));
    client.publish("sensors/dev-a/cmd", "forged", { qos: 1 });
    await closed(client);
    await refusedCode(broker.url(), { ...login(dashboard), password: "wrong-password" });
    expect(logged).toContainEqual({
      level: "warn",
      obj: { clientId: "dashboard", username: "dashboard", topic: "sensors/dev-a/cmd", by: "auth.deny[0]" },
      msg: "mqtt publish denied",
    });
    expect(logged.map((l) => l.msg)).toEqual(expect.arrayContaining(["mqtt subscribe denied", "mqtt connect refused"]));
    const text = JSON.stringify(logged);
    for (const secret of [dashboard.password, ops.password, "wrong-password", broker.gateway().password]) {
      expect(text).not.toContain(secret);
    }
  });
});

describe("embedded broker: deny rules in open mode", () => {
  let broker: EmbeddedUnderTest;
  beforeAll(async () => {
    broker = await startEmbeddedUnderTest([], { mode: "open", deny: [{ publish: ["sensors/+/cmd"], subscribe: ["sensors/+/cmd"] }] });
  });
  afterAll(() => broker.close());

  it("apply to every client but the broker's own login, also one that only claims its username", async () => {
    const anonymous = await connect(broker.url(), { clientId: "anyone" });
    expect(await subscribeCodes(anonymous, ["sensors/+/cmd", "sensors/+/telemetry"], 1)).toEqual([128, 1]);
    anonymous.publish("sensors/d1/cmd", "forged", { qos: 1 });
    await closed(anonymous);
    const claimed = await connect(broker.url(), { clientId: "claimed", username: broker.gateway().username, password: "guess" });
    claimed.publish("sensors/d1/cmd", "forged", { qos: 1 });
    await closed(claimed);

    const gateway = await connect(broker.url(), broker.gateway());
    expect(await subscribeCodes(gateway, ["sensors/+/cmd"], 1)).toEqual([1]);
    const received = recordMessages(gateway);
    await gateway.publishAsync("sensors/d1/cmd", '{"id":"c-1","op":"ping"}', { qos: 1 });
    await waitFor(() => received.length > 0, "the gateway's command");
    expect(received.map((m) => m.payload)).toEqual(['{"id":"c-1","op":"ping"}']);
    expect(broker.embedded().counters).toMatchObject({ subscribeDenied: 1, publishDenied: 2 });
  });

  it("[MQTT-3.1.3-8] refuse an empty client id without clean session (0x02) here too, and accept it with one", async () => {
    const persistent = await RawClient.open(portOf(broker), { clientId: "", clean: false });
    expect(persistent.connack.returnCode).toBe(2);
    await persistent.client.closed();
    const clean = await RawClient.open(portOf(broker), { clientId: "", clean: true });
    expect(clean.connack.returnCode).toBe(0);
    await clean.client.drop();
  });
});

describe("embedded broker: a subscription stored before the rules gets none of the messages they exclude", () => {
  let broker: EmbeddedUnderTest | undefined;
  afterEach(async () => {
    await broker?.close();
    broker = undefined;
  });

  it("a device's session from open mode, resumed under device auth, receives only its own commands", async () => {
    broker = await startEmbeddedUnderTest(["dev-a", "dev-b"], { mode: "open" });
    const early = await connect(broker.url(), { clientId: "dev-a", clean: false });
    await early.subscribeAsync(["#", "sensors/dev-b/cmd"], { qos: 1 });
    await early.endAsync();
    await broker.restart({ mode: "devices" });

    const gateway = await connect(broker.url(), broker.gateway());
    await gateway.publishAsync("sensors/dev-b/cmd", '{"id":"c-b","op":"ping"}', { qos: 1 });
    await gateway.publishAsync("sensors/dev-a/cmd", '{"id":"c-a","op":"ping"}', { qos: 1 });
    const [, received] = await connectRecording(broker.url(), { ...broker.device("dev-a"), clean: false });
    await waitFor(() => received.some((m) => m.payload.includes("c-a")), "dev-a's own command");
    expect(received.map((m) => m.payload)).toEqual(['{"id":"c-a","op":"ping"}']);
    expect(broker.embedded().counters.forwardDenied).toBeGreaterThan(0);
  });

  it("a deny rule added later also holds for a user's stored subscription", async () => {
    const dashboard = { username: "dashboard", password: generatePassword() };
    broker = await startEmbeddedUnderTest(["dev-a"], { serviceUsers: [dashboard] });
    const early = await connect(broker.url(), { ...dashboard, clientId: "dashboard", clean: false });
    await early.subscribeAsync("sensors/#", { qos: 1 });
    await early.endAsync();
    await broker.restart({ serviceUsers: [dashboard], deny: [{ username: "dashboard", subscribe: ["sensors/+/cmd/ack"] }] });

    const device = await connect(broker.url(), broker.device("dev-a"));
    await device.publishAsync("sensors/dev-a/cmd/ack", '{"v":1,"id":"c-1","ok":true}', { qos: 1 });
    await device.publishAsync("sensors/dev-a/telemetry", '{"v":1,"seq":1}', { qos: 1 });
    const [, received] = await connectRecording(broker.url(), { ...dashboard, clientId: "dashboard", clean: false });
    await waitFor(() => received.length > 0, "the queued reading");
    expect(received.map((m) => m.topic)).toEqual(["sensors/dev-a/telemetry"]);
  });
});

describe("embedded broker: deny rules are checked before anything starts", () => {
  it.each([
    [[{ publish: ["sensors/#/cmd"] }], 'auth.deny[0].publish[0]: "sensors/#/cmd" is not a valid MQTT topic filter ("#" must be a whole level and the last one)'],
    [[{ subscribe: ["ok/#"] }, { subscribe: ["a+/b"] }], 'auth.deny[1].subscribe[0]: "a+/b" is not a valid MQTT topic filter ("+" must be a whole level)'],
    [[{ username: "dashboard" }], "auth.deny[0]: denies nothing (give publish and/or subscribe filters)"],
    [[{ user: "dashboard", publish: ["a"] }], 'auth.deny[0]: unknown key "user" (expected username, publish, subscribe)'],
  ])("%j fails the start with ErrInvalidDenyRule, before the data dir or the port", async (rules, message) => {
    const dataDir = join(tmpdir(), `never-created-${randomUUID()}`);
    const start = startEmbeddedBroker({ host: "127.0.0.1", port: 0, dataDir, auth: { mode: "devices", deny: rules as DenyRule[] } });
    await expect(start).rejects.toThrow(expect.objectContaining({ name: "ErrInvalidDenyRule", message }));
    expect(existsSync(dataDir)).toBe(false);
  });
});
