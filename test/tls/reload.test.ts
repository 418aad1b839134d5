// Issue 13: certificate reload. `npm run certs`' code renews the server certificate in place (as a renewal on
// the Pi does); new handshakes on HTTPS, mqtts and wss get the new certificate while a device connected before
// keeps its connection and keeps publishing. A broken pair keeps the previous certificate in service.
import { copyFileSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../gateway/src/ops/log.ts";
import { issueCertificates } from "../../gateway/src/tls/certs.ts";
import { loadTlsCredentials } from "../../gateway/src/tls/credentials.ts";
import { CertificateReloader } from "../../gateway/src/tls/reloader.ts";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitUntil } from "../helpers/wait.ts";
import { hasOpenssl, LOOPBACK_NAMES, makePki, serialOf, type TestPki } from "./pki.ts";

/** The certificate serial and ALPN protocol a new TLS handshake on `port` gets (ALPN offered as given). */
function handshake(port: number, ca: Buffer, alpn?: string[]): Promise<{ serial: string; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, ca, servername: "localhost", ALPNProtocols: alpn }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      const protocol = socket.alpnProtocol;
      socket.destroy();
      resolve({ serial, alpn: protocol ?? false });
    });
    socket.once("error", reject);
  });
}
const servedSerial = async (port: number, ca: Buffer): Promise<string> => (await handshake(port, ca)).serial;

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
    expect(await handshake(gw.port, ca, ["h2", "http/1.1"])).toEqual({ serial: renewed.serial, alpn: "h2" }); // still HTTP/2
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

  it("a renewal that copies the key and, a second later, the certificate is one reload, not a failure", async () => {
    const inService = serialOf(pki.good.cert);
    const [okBefore, failedBefore] = [await reloads(gw, "ok"), await reloads(gw, "failed")];
    const staged = issueCertificates({ dir: join(pki.root, "staged"), caDir: pki.good.caDir, names: LOOPBACK_NAMES });
    copyFileSync(staged.key, pki.good.key);
    // the gap of a certbot deploy hook copying two files (the scenario, not a wait for a result): beyond the debounce
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await servedSerial(gw.port, ca)).toBe(inService);
    copyFileSync(staged.cert, pki.good.cert);
    await waitUntil(async () => (await servedSerial(gw.port, ca)) === staged.serial, { message: "the renewed pair in service" });
    expect(await reloads(gw, "ok")).toBe(okBefore + 1);
    expect(await reloads(gw, "failed")).toBe(failedBefore);
  });

  for (const which of ["expired", "notYetValid"] as const) {
    it(`a new certificate that is ${which === "expired" ? "expired" : "not yet valid"} is not applied, and counted failed`, async () => {
      const inService = serialOf(pki.good.cert);
      const failedBefore = await reloads(gw, "failed");
      const saved = { cert: readFileSync(pki.good.cert), key: readFileSync(pki.good.key) };
      writeFileSync(pki.good.key, readFileSync(pki[which].key));
      writeFileSync(pki.good.cert, readFileSync(pki[which].cert));
      await waitUntil(async () => (await reloads(gw, "failed")) === failedBefore + 1, { message: "the refused reload counted" });
      expect(await servedSerial(gw.port, ca)).toBe(inService);
      expect(await servedSerial(gw.broker!.ports.mqtts!, ca)).toBe(inService);
      writeFileSync(pki.good.key, saved.key); // back to the pair in service: "touched, not changed"
      writeFileSync(pki.good.cert, saved.cert);
    });
  }

  it("a broken certificate file keeps the previous certificate in service, and the failure is counted", async () => {
    const inService = serialOf(pki.good.cert);
    const failedBefore = await reloads(gw, "failed");
    writeFileSync(pki.good.cert, "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
    await waitUntil(async () => (await reloads(gw, "failed")) > failedBefore, { message: "the failed reload counted" });
    expect(await servedSerial(gw.port, ca)).toBe(inService);
    expect(await servedSerial(gw.broker!.ports.mqtts!, ca)).toBe(inService);
  });
});

describe.skipIf(!hasOpenssl)("certificate reload when the directory cannot be watched or is replaced", () => {
  let pki: TestPki;
  let reloader: CertificateReloader | undefined;
  beforeAll(() => {
    pki = makePki();
  });
  afterAll(() => {
    reloader?.close();
    pki?.close();
  });

  it("keeps running (watch_failed counted) and picks the pair up by its periodic check, also after rm -rf of the directory", async () => {
    const dir = join(pki.root, "replaced");
    const files = { cert: join(dir, "server.crt"), key: join(dir, "server.key") };
    const applied: string[] = [];
    const counted: string[] = [];
    // The directory does not exist yet: fs.watch throws at once (as with ENOSPC or EACCES).
    reloader = new CertificateReloader({
      files,
      current: loadTlsCredentials(pki.good),
      apply: (_credentials, certificate) => applied.push(certificate.serial),
      counted: (result) => counted.push(result),
      log: createLogger("silent"),
      recheckMs: 200,
    });
    expect(counted).toEqual(["watch_failed"]);
    const first = issueCertificates({ dir, caDir: pki.good.caDir, names: LOOPBACK_NAMES });
    await waitUntil(() => applied.includes(first.serial), { message: "the pair picked up by the periodic check" });
    rmSync(dir, { recursive: true });
    const second = issueCertificates({ dir, caDir: pki.good.caDir, names: LOOPBACK_NAMES }); // a new directory, a new inode
    await waitUntil(() => applied.includes(second.serial), { message: "the pair in the replaced directory" });
    expect(applied).toEqual([first.serial, second.serial]);
    expect(counted).toEqual(["watch_failed", "ok", "ok"]);
  });
});
