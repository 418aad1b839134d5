// Issue 13: certificate reload. `npm run certs`' code renews the server certificate in place (as a renewal on
// the Pi does); new handshakes on HTTPS, mqtts and wss get the new certificate while a device connected before
// keeps its connection and keeps publishing. A broken pair keeps the previous certificate in service.
import { readFileSync, writeFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueCertificates } from "../../gateway/src/tls/certs.ts";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitUntil } from "../helpers/wait.ts";
import { hasOpenssl, LOOPBACK_NAMES, makePki, serialOf, type TestPki } from "./pki.ts";

/** The serial of the certificate a new TLS handshake on `port` gets (ALPN as given). */
function servedSerial(port: number, ca: Buffer, alpn?: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, ca, servername: "localhost", ALPNProtocols: alpn }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.once("error", reject);
  });
}

async function reloads(gw: TestGateway, result: "ok" | "failed"): Promise<number> {
  const metric = await gw.metrics.registry.getSingleMetric("gateway_tls_reloads_total")!.get();
  return metric.values.find((v) => v.labels.result === result)?.value ?? 0;
}

describe.skipIf(!hasOpenssl)("certificate reload", () => {
  let pki: TestPki;
  let gw: TestGateway;
  let ca: Buffer;
  let device: MqttClient | undefined;
  let watcher: MqttClient | undefined;
  beforeAll(async () => {
    pki = makePki();
    ca = readFileSync(pki.good.caCert);
    gw = await startTestGateway({ config: { tls: { cert: pki.good.cert, key: pki.good.key }, mqtt: { tlsPort: 0, wssPort: 0 } } });
  });
  afterAll(async () => {
    await device?.endAsync(true);
    await watcher?.endAsync(true);
    await gw?.close();
    pki?.close();
  });

  it("new connections get the renewed certificate; a device connected before keeps its connection and keeps publishing", async () => {
    const ports = { https: gw.port, mqtts: gw.broker!.ports.mqtts!, wss: gw.broker!.ports.wss! };
    const oldSerial = pki.good.serial;
    for (const port of Object.values(ports)) expect(await servedSerial(port, ca)).toBe(oldSerial);

    watcher = await mqtt.connectAsync(gw.mqttUrl, { clientId: "reload-watcher", reconnectPeriod: 0 });
    const seen: string[] = [];
    watcher.on("message", (_t, payload) => seen.push(payload.toString()));
    await watcher.subscribeAsync("sensors/reload-dev/debug", { qos: 1 });
    device = await mqtt.connectAsync(gw.broker!.urls.mqtts!, { ca, clientId: "reload-dev", reconnectPeriod: 0 });
    let connects = 0;
    device.on("connect", () => connects++);
    const deviceSocket = device.stream as import("node:tls").TLSSocket;
    await device.publishAsync("sensors/reload-dev/debug", "before", { qos: 1 });

    const renewed = issueCertificates({ dir: pki.good.dir, caDir: pki.good.caDir, names: LOOPBACK_NAMES }); // same CA, new key and serial
    expect(renewed.serial).not.toBe(oldSerial);
    for (const [name, port] of Object.entries(ports)) {
      await waitUntil(async () => (await servedSerial(port, ca)) === renewed.serial, { message: `${name} serving the renewed certificate` });
    }
    expect(await servedSerial(gw.port, ca, ["h2"])).toBe(renewed.serial);
    expect(await reloads(gw, "ok")).toBe(1); // cert and key written one after the other: one reload
    const expiry = (await gw.metrics.registry.getSingleMetric("gateway_tls_certificate_expiry_timestamp_seconds")!.get()).values[0]!.value;
    expect(expiry).toBe(Date.parse(renewed.validTo) / 1000);

    // The device's connection from before: the same socket, still on the old certificate, still working.
    expect(device.stream).toBe(deviceSocket);
    expect(deviceSocket.getPeerCertificate().serialNumber).toBe(oldSerial);
    await device.publishAsync("sensors/reload-dev/debug", "after", { qos: 1 });
    await waitUntil(() => seen.includes("after"), { message: "the device's publish after the reload" });
    expect(seen).toEqual(["before", "after"]);
    expect(connects).toBe(0);
    expect(device.connected).toBe(true);
  });

  it("a broken certificate file keeps the previous certificate in service, and the failure is counted", async () => {
    const inService = serialOf(pki.good.cert);
    const failedBefore = await reloads(gw, "failed");
    writeFileSync(pki.good.cert, "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
    await waitUntil(async () => (await reloads(gw, "failed")) > failedBefore, { message: "the failed reload counted" });
    expect(await servedSerial(gw.port, ca)).toBe(inService);
    expect(await servedSerial(gw.broker!.ports.mqtts!, ca)).toBe(inService);
  });
});
