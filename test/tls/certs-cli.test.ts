// Issue 13: `npm run certs` itself (gateway/src/tls/certs-cli.ts), run as a user runs it, checked with openssl.
import { execFileSync, spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/gateway.ts";
import { hasOpenssl } from "./pki.ts";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const dir = join(tempDir("certs-cli-"), "tls");

function runCerts(args: string[]) {
  return spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "gateway/src/tls/certs-cli.ts"), ...args], { cwd: ROOT, encoding: "utf8" });
}

describe.skipIf(!hasOpenssl)("npm run certs", () => {
  afterAll(() => rmSync(resolve(dir, ".."), { recursive: true, force: true }));

  it("makes a CA and a server certificate for this machine plus the names asked for, keys private", () => {
    const r = runCerts(["--dir", dir, "--name", "sensors.example.org", "--ip", "10.1.2.3"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/New CA: .*ca\.crt/);
    expect(r.stdout).toContain(`TLS_CERT=${join(dir, "server.crt")}`);
    for (const key of ["ca.key", "server.key"]) expect(statSync(join(dir, key)).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    // openssl's own chain check, with the purpose browsers check
    const verified = execFileSync("openssl", ["verify", "-purpose", "sslserver", "-CAfile", join(dir, "ca.crt"), join(dir, "server.crt")], { encoding: "utf8" });
    expect(verified.trim()).toBe(`${join(dir, "server.crt")}: OK`);
    const cert = new X509Certificate(readFileSync(join(dir, "server.crt")));
    for (const san of ["DNS:localhost", "IP Address:127.0.0.1", "DNS:sensors.example.org", "IP Address:10.1.2.3", ".local"]) {
      expect(cert.subjectAltName).toContain(san);
    }
    const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
    expect(days).toBeLessThanOrEqual(398);
    expect(cert.checkHost("sensors.example.org")).toBe("sensors.example.org");
  });

  it("keeps the CA on a second run and renews the server certificate", () => {
    const ca = readFileSync(join(dir, "ca.crt"));
    const before = new X509Certificate(readFileSync(join(dir, "server.crt"))).serialNumber;
    const r = runCerts(["--dir", dir, "--only", "--name", "localhost"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/CA kept/);
    expect(readFileSync(join(dir, "ca.crt")).equals(ca)).toBe(true);
    const after = new X509Certificate(readFileSync(join(dir, "server.crt")));
    expect(after.serialNumber).not.toBe(before);
    expect(after.subjectAltName).toBe("DNS:localhost");
    expect(after.verify(new X509Certificate(ca).publicKey)).toBe(true);
  });

  it("refuses a bad address with exit 2", () => {
    const r = runCerts(["--dir", dir, "--ip", "300.1.1.1"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--ip "300\.1\.1\.1" is not an IP address/);
  });
});
