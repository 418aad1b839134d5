// Issue 13: the embedded broker's mqtts, ws and wss listeners with real certificates (npm run certs' code) and
// real clients (Debian's mosquitto_sub, MQTT.js), through the whole gateway.
import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { defaultCredentialsFile, setDevicePassword } from "../../gateway/src/broker/index.ts";
import { startTestGateway, tempDir, type TestGateway } from "../helpers/gateway.ts";
import { waitUntil } from "../helpers/wait.ts";
import { binaryAvailable } from "../helpers/binaries.ts";
import { hasOpenssl, makePki, type TestPki } from "./pki.ts";

const MOSQUITTO_SUB = "/usr/bin/mosquitto_sub";
const hasMosquittoSub = binaryAvailable(MOSQUITTO_SUB, "mosquitto-clients");

const clients: MqttClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});

async function connect(url: string, opts: IClientOptions): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...opts });
  clients.push(client);
  return client;
}

/** Resolves with the connection error (a refused handshake or CONNACK); fails the test if it connects. */
async function refusal(url: string, opts: IClientOptions): Promise<Error & { code?: string | number }> {
  try {
    const client = await connect(url, opts);
    throw new Error(`connected to ${url} (${client.connected})`);
  } catch (e) {
    return e as Error & { code?: string | number };
  }
}

function tlsConfig(pki: TestPki) {
  return { tls: { cert: pki.good.cert, key: pki.good.key }, mqtt: { tlsPort: 0, wsPort: 0, wssPort: 0 } };
}

describe.skipIf(!hasOpenssl)("embedded broker over TLS and WebSockets, with a real certificate", () => {
  let pki: TestPki;
  let gw: TestGateway;
  let ca: Buffer;
  beforeAll(async () => {
    pki = makePki();
    ca = readFileSync(pki.good.caCert);
    gw = await startTestGateway({ config: tlsConfig(pki) });
  });
  afterAll(async () => {
    await gw?.close();
    pki?.close();
  });

  it("listens on mqtt, mqtts, ws and wss (path /mqtt), each on its own port", () => {
    const urls = gw.broker!.urls;
    expect(Object.keys(urls).sort()).toEqual(["mqtt", "mqtts", "ws", "wss"]);
    expect(urls.mqtts).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    expect(urls.wss).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/mqtt$/);
    expect(new Set(Object.values(gw.broker!.ports)).size).toBe(4);
  });

  it.skipIf(!hasMosquittoSub)("mosquitto_sub over mqtts with --cafile receives what MQTT.js publishes over wss", async () => {
    const sub = spawn(MOSQUITTO_SUB, ["--cafile", pki.good.caCert, "-h", "127.0.0.1", "-p", String(gw.broker!.ports.mqtts), "-t", "tls/mosquitto", "-C", "1", "-i", "mosquitto-sub-tls"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    sub.stdout.on("data", (d: Buffer) => (out += d.toString()));
    sub.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => sub.once("exit", resolve));
    try {
      const pub = await connect(gw.broker!.urls.wss!, { ca, clientId: "wss-pub" });
      // mosquitto_sub prints nothing when its SUBSCRIBE is done: publish until a message reaches it.
      await waitUntil(
        async () => {
          await pub.publishAsync("tls/mosquitto", "over-wss", { qos: 1 });
          return out.includes("over-wss");
        },
        { timeoutMs: 15_000, intervalMs: 200, message: `mosquitto_sub output (so far: ${JSON.stringify(out)})` },
      );
      expect(await exited).toBe(0); // -C 1: it exits after the message
      expect(out.trim()).toBe("over-wss");
    } finally {
      sub.kill();
    }
  });

  it.skipIf(!hasMosquittoSub)("mosquitto_sub with another CA's --cafile is refused", async () => {
    const before = gw.broker!.counters.tlsHandshakeErrors;
    const sub = spawn(MOSQUITTO_SUB, ["--cafile", pki.otherCaCert, "-h", "127.0.0.1", "-p", String(gw.broker!.ports.mqtts), "-t", "tls/x", "-C", "1", "-i", "mosquitto-wrong-ca"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    sub.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => sub.once("exit", resolve));
    expect(code).not.toBe(0);
    expect(err).toMatch(/A TLS error occurred/);
    await waitUntil(() => gw.broker!.counters.tlsHandshakeErrors === before + 1, { message: "the broker's side of the failed handshake" });
  });

  it("MQTT.js over mqtts and wss (trusting the CA) and plain ws exchange messages, and mqtts shows the served certificate", async () => {
    const sub = await connect(gw.broker!.urls.mqtts!, { ca, clientId: "mqtts-sub" });
    const tlsSocket = sub.stream as TLSSocket;
    expect(tlsSocket.getPeerCertificate().serialNumber).toBe(pki.good.serial);
    expect(tlsSocket.authorized).toBe(true);
    const received: string[] = [];
    sub.on("message", (_topic, payload) => received.push(payload.toString()));
    await sub.subscribeAsync("tls/all", { qos: 1 });
    const overWss = await connect(gw.broker!.urls.wss!, { ca, clientId: "wss-client" });
    const overWs = await connect(gw.broker!.urls.ws!, { clientId: "ws-client" });
    const overTcp = await connect(gw.broker!.url, { clientId: "tcp-client" });
    await overWss.publishAsync("tls/all", "wss", { qos: 1 });
    await overWs.publishAsync("tls/all", "ws", { qos: 1 });
    await overTcp.publishAsync("tls/all", "tcp", { qos: 1 });
    await waitUntil(() => received.length === 3, { message: "three messages over mqtts" });
    expect(received.sort()).toEqual(["tcp", "ws", "wss"]);
  });

  it("a client that trusts another CA is refused on mqtts and wss, and the failed handshakes are counted", async () => {
    const before = gw.broker!.counters.tlsHandshakeErrors;
    const otherCa = readFileSync(pki.otherCaCert);
    const mqtts = await refusal(gw.broker!.urls.mqtts!, { ca: otherCa, clientId: "wrong-ca-1" });
    expect(mqtts.code).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    const wss = await refusal(gw.broker!.urls.wss!, { ca: otherCa, clientId: "wrong-ca-2" });
    expect(wss.message).toMatch(/unable to verify the first certificate/);
    // ...and without any CA (Node's public roots only), as an ESP32 would
    const publicRoots = await refusal(gw.broker!.urls.mqtts!, { clientId: "public-roots" });
    expect(publicRoots.code).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    await waitUntil(() => gw.broker!.counters.tlsHandshakeErrors >= before + 3, { message: "three counted handshake failures" });
  });

  it("a plain HTTP request to a WebSocket port gets 426, not a hang", async () => {
    const r = await fetch(`http://127.0.0.1:${gw.broker!.ports.ws}/`);
    expect(r.status).toBe(426);
    expect(await r.text()).toMatch(/\/mqtt/);
  });
});

describe.skipIf(!hasOpenssl)("every listener applies the same device auth, ACL and packet size limit", () => {
  const DEVICE = "tls-dev-a";
  const PASSWORD = "tls-dev-a-password-0123456789";
  let pki: TestPki;
  let dataDir: string;
  let gw: TestGateway;
  let ca: Buffer;
  beforeAll(async () => {
    pki = makePki();
    ca = readFileSync(pki.good.caCert);
    dataDir = tempDir();
    await setDevicePassword(defaultCredentialsFile(dataDir), DEVICE, PASSWORD);
    gw = await startTestGateway({ dataDir, config: { ...tlsConfig(pki), broker: { auth: { mode: "devices" } } } });
  });
  afterAll(async () => {
    await gw?.close();
    pki?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  for (const kind of ["mqtts", "ws", "wss"] as const) {
    it(`${kind}: a wrong password is refused; the device may publish its own topics only; an oversized packet closes the connection`, async () => {
      const url = gw.broker!.urls[kind]!;
      const counters = gw.broker!.counters;
      const refusedBefore = counters.connectRefused;
      const wrong = await refusal(url, { ca, clientId: DEVICE, username: DEVICE, password: "not-the-password" });
      expect(wrong.code).toBe(4); // CONNACK: bad user name or password
      expect(counters.connectRefused).toBe(refusedBefore + 1);

      const watcher = await connect(gw.broker!.url, { ...gw.broker!.serviceCredentials, clientId: `watch-${kind}` });
      const seen: string[] = [];
      watcher.on("message", (topic) => seen.push(topic));
      await watcher.subscribeAsync("sensors/#", { qos: 1 });

      const login = { ca, clientId: DEVICE, username: DEVICE, password: PASSWORD };
      const intruder = await connect(url, login);
      const deniedBefore = counters.publishDenied;
      const intruderClosed = new Promise<void>((resolve) => intruder.once("close", () => resolve()));
      intruder.publish("sensors/tls-dev-b/status", "{}", { qos: 1 }); // another device's topic: the broker drops the connection
      await intruderClosed;
      expect(counters.publishDenied).toBe(deniedBefore + 1);

      const device = await connect(url, login);
      await device.publishAsync(`sensors/${DEVICE}/debug`, "{}", { qos: 1 });
      await waitUntil(() => seen.includes(`sensors/${DEVICE}/debug`), { message: "the device's own topic delivered" });
      expect(seen).not.toContain("sensors/tls-dev-b/status");

      const errorsBefore = counters.clientErrors;
      const closed = new Promise<void>((resolve) => device.once("close", () => resolve()));
      device.publish(`sensors/${DEVICE}/debug`, Buffer.alloc(300 * 1024), { qos: 0 }); // over the 256 KiB limit
      await closed;
      await waitUntil(() => counters.clientErrors > errorsBefore, { message: "the oversized packet counted" });
      expect(seen.filter((t) => t === `sensors/${DEVICE}/debug`)).toHaveLength(1);
    });
  }
});

describe.skipIf(!hasOpenssl)("closing with connections that never finished their handshake", () => {
  it("the gateway closes at once although TCP clients sit silent on the HTTPS, mqtts, ws and wss ports", async () => {
    const pki = makePki();
    try {
      const gw = await startTestGateway({ config: tlsConfig(pki) });
      const ports = [gw.port, ...(["mqtts", "ws", "wss"] as const).map((k) => gw.broker!.ports[k]!)];
      // Silent TCP connections: TLS waits 2 minutes for a ClientHello, HTTP for a request.
      const silent = await Promise.all(
        ports.map(
          (port) =>
            new Promise<Socket>((resolve, reject) => {
              const s = netConnect({ host: "127.0.0.1", port }, () => resolve(s));
              s.once("error", reject);
            }),
        ),
      );
      const closedByServer = silent.map((s) => new Promise<void>((resolve) => s.once("close", () => resolve())));
      await gw.close(); // would wait for the handshake timeout without dropping them (test timeout: 60 s)
      await Promise.all(closedByServer);
      expect(silent.every((s) => s.destroyed)).toBe(true);
    } finally {
      pki.close();
    }
  });
});
