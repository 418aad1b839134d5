/**
 * esp32 profile: Wi-Fi bring-up per boot (src/wifi.ts) and TLS that trusts only public roots
 * (src/tls-trust.ts), through DeviceNetwork with a fake VM (net-harness.ts) and real local servers.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer as createTlsServer } from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PROFILES, type RuntimeProfile } from "../src/profile.ts";
import { TLS_UNTRUSTED_NOTE } from "../src/tls-trust.ts";
import { ESP32_NO_WIFI, type NetUnderTest, RecordingServer, attachNetwork } from "./net-harness.ts";
import { waitFor } from "./wait.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function attach(...args: Parameters<typeof attachNetwork>): NetUnderTest {
  const t = attachNetwork(...args);
  cleanups.push(() => t.net.detach());
  return t;
}

/** Bounds of the Wi-Fi-up moment a profile allows (ms after boot). */
function upBounds(profile: RuntimeProfile): [number, number] {
  const w = profile.wifi!;
  return [
    w.scanStartMs + w.scanMs[0] + w.associateMs[0] + w.dhcpMs[0],
    w.scanStartMs + w.scanMs[1] + w.associateMs[1] + w.dhcpMs[1],
  ];
}

describe("esp32 Wi-Fi", () => {
  it("the network is not available until the seeded Wi-Fi moment of this boot, then it is", async () => {
    const profile = PROFILES.esp32;
    const t = attach({ brokerUrl: "mqtt://127.0.0.1:1", profile, seed: 5 });
    const start = Date.now();
    const polls: { at: number; up: boolean }[] = [];
    const upAt = await waitFor(
      "Wi-Fi up",
      () => {
        const up = t.vm.sockIsAvailable();
        polls.push({ at: Date.now() - start, up });
        return up && Date.now() - start;
      },
      10_000,
    );
    const [lo, hi] = upBounds(profile);
    expect(t.wifiUps).toHaveLength(1);
    const afterMs = t.wifiUps[0]!;
    // the association is a setTimeout, measured with Date.now(): Node's loop clock may lag it by up to 1 ms
    expect(afterMs).toBeGreaterThanOrEqual(t.net.plannedWifiUpMs! - 1);
    expect(afterMs).toBeGreaterThanOrEqual(lo);
    expect(afterMs).toBeLessThan(hi + 500);
    expect(upAt).toBeGreaterThanOrEqual(afterMs - 5);
    expect(polls.filter((p) => p.at < lo).every((p) => !p.up)).toBe(true);
    expect(polls.filter((p) => p.at < lo).length).toBeGreaterThan(10); // it really was polled while down
    expect(t.logs).toContain(`net: wifi up after ${afterMs} ms`);
    expect(t.net.networkAvailable).toBe(true);
  });

  it("the Wi-Fi moment is a pure function of (seed, device, boot), within the profile's phases", () => {
    const planned = (seed: number, deviceIndex: number, boot: number) => {
      const t = attachNetwork({ brokerUrl: "mqtt://127.0.0.1:1", profile: PROFILES.esp32, seed, deviceIndex, boot });
      const ms = t.net.plannedWifiUpMs;
      t.net.detach();
      return ms!;
    };
    const [lo, hi] = upBounds(PROFILES.esp32);
    const a = planned(5, 0, 1);
    expect(planned(5, 0, 1)).toBe(a);
    const others = [planned(5, 0, 2), planned(5, 1, 1), planned(6, 0, 1)];
    expect(others.some((ms) => ms !== a)).toBe(true);
    for (const ms of [a, ...others]) {
      expect(ms).toBeGreaterThanOrEqual(lo);
      expect(ms).toBeLessThanOrEqual(hi);
    }
  });

  it("wifi-fail: association fails, the network stays unavailable for the whole boot; the next boot tries again", async () => {
    const fast: RuntimeProfile = {
      ...PROFILES.esp32,
      wifi: { scanStartMs: 40, scanMs: [10, 20], associateMs: [10, 20], dhcpMs: [10, 20] },
    };
    const t = attach({ brokerUrl: "mqtt://127.0.0.1:1", profile: fast, faults: { wifiFail: 1 } });
    await waitFor("the association failure", () => t.faults.injected["wifi-fail"] === 1);
    expect(t.logs).toContain("net: FAULT wifi-fail: association failed; no network this boot");
    expect(t.faultLog).toEqual([expect.objectContaining({ kind: "wifi-fail", opportunity: 0 })]);
    const deadline = Date.now() + upBounds(fast)[1] + 300;
    await waitFor("well past the latest Wi-Fi moment of the profile", () => {
      expect(t.vm.sockIsAvailable()).toBe(false);
      return Date.now() > deadline;
    });
    expect(t.wifiUps).toEqual([]);
    // the next boot decides again (probability 1: it fails again, as opportunity 1)
    t.net.attach(t.vm.instance, 2);
    await waitFor("the second boot's failure", () => t.faults.injected["wifi-fail"] === 2);
    expect(t.faultLog[1]).toEqual(expect.objectContaining({ kind: "wifi-fail", opportunity: 1 }));
  });

  it("profile vm: the network is available at once, no Wi-Fi decision is made", () => {
    const t = attach({ brokerUrl: "mqtt://127.0.0.1:1", profile: PROFILES.vm, faults: { wifiFail: 1 } });
    expect(t.vm.sockIsAvailable()).toBe(true);
    expect(t.faults.injected["wifi-fail"]).toBe(0);
  });
});

describe("esp32 TLS: public roots only", () => {
  let dir: string;
  let key: Buffer;
  let cert: Buffer;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "sim-tls-"));
    // A self-signed certificate for the name the firmware will ask for: only the trust is wrong.
    execFileSync(
      "openssl",
      [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
        "-subj", "/CN=broker.example", "-addext", "subjectAltName=DNS:broker.example",
      ],
      { stdio: "ignore" },
    );
    key = readFileSync(join(dir, "key.pem"));
    cert = readFileSync(join(dir, "cert.pem"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function tlsServer(): Promise<RecordingServer> {
    const s = await new RecordingServer().start((listener) => createTlsServer({ key, cert }, listener));
    cleanups.push(() => s.close());
    return s;
  }

  it("a self-signed broker certificate fails the handshake under esp32: error event, one explanation per device", async () => {
    const s = await tlsServer();
    const t = attach({ brokerUrl: `mqtts://127.0.0.1:${s.port}`, profile: ESP32_NO_WIFI });
    for (const attempt of [1, 2]) {
      expect(t.vm.open("broker.example", -8883)).toBe(0);
      await waitFor(`attempt ${attempt}: the error`, () => t.vm.named("error").length === attempt);
    }
    expect(t.vm.named("error").map((e) => e.data.toString())).toEqual(["mbedtls_ssl_handshake", "mbedtls_ssl_handshake"]);
    expect(t.vm.named("open")).toEqual([]);
    expect(t.logs.filter((l) => l === TLS_UNTRUSTED_NOTE)).toHaveLength(1);
    expect(t.counters.connections).toBe(0);
    expect(t.counters.socketErrors).toBe(2);
  });

  it("the same broker works under profile vm (self-signed accepted, as before)", async () => {
    const s = await tlsServer();
    const t = attach({ brokerUrl: `mqtts://127.0.0.1:${s.port}`, profile: PROFILES.vm });
    expect(t.vm.open("broker.example", -8883)).toBe(0);
    await waitFor("open", () => t.vm.named("open").length === 1);
    expect(t.vm.write([0xe0, 0x00])).toBe(0);
    await waitFor("the bytes through TLS", () => s.conns[0]?.bytes.length === 2);
    expect(t.logs).not.toContain(TLS_UNTRUSTED_NOTE);
  });
});
