import { afterEach, describe, expect, it } from "vitest";
import { mosquittoAvailable, startMosquitto, type RunningMosquitto } from "../helpers/mosquitto.ts";
import { connect, endAllClients, recordMessages, waitFor } from "./support.ts";

const hasMosquitto = mosquittoAvailable();
let mosq: RunningMosquitto | undefined;
afterEach(async () => {
  await endAllClients();
  await mosq?.close();
  mosq = undefined;
});

describe.skipIf(!hasMosquitto)("test/helpers/mosquitto.ts", () => {
  it("starts on a free loopback port and restarts on the same port, keeping retained messages", async () => {
    mosq = await startMosquitto();
    const firstPid = mosq.pid();
    const pub = await connect(mosq.url);
    await pub.publishAsync("sensors/d1/status", '{"v":1,"state":"online"}', { qos: 1, retain: true });
    await pub.endAsync();
    await mosq.restart();
    expect(mosq.pid()).not.toBe(firstPid);
    const sub = await connect(mosq.url);
    const received = recordMessages(sub);
    await sub.subscribeAsync("sensors/+/status", { qos: 1 });
    await waitFor(() => received.length === 1, "the retained status");
    expect(received[0]).toMatchObject({ payload: '{"v":1,"state":"online"}', retain: true });
  });

  it("stop() ends the process by pid and close() is idempotent", async () => {
    mosq = await startMosquitto();
    const pid = mosq.pid()!;
    await mosq.stop();
    expect(mosq.pid()).toBeUndefined();
    expect(() => process.kill(pid, 0)).toThrow(); // no such process any more
    await mosq.close();
    await mosq.close();
  });
});
