// Issue 13: `npm run certs` itself (gateway/src/tls/certs-cli.ts), run as a user runs it, checked with openssl.
import { execFileSync, spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/gateway.ts";
import { hasOpenssl } from "./pki.ts";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const dir = join(tempDir("certs-cli-"), "tls");
const caDir = join(dir, "..", "ca"); // the default --ca-dir

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
    // the gateway reads --dir; the CA key is elsewhere
    expect(readdirSync(dir).sort()).toEqual(["server.crt", "server.key"]);
    expect(readdirSync(caDir).sort()).toEqual(["ca.crt", "ca.key"]);
    for (const key of [join(caDir, "ca.key"), join(dir, "server.key")]) expect(statSync(key).mode & 0o777).toBe(0o600);
    for (const d of [dir, caDir]) expect(statSync(d).mode & 0o777).toBe(0o700);
    // openssl's own chain check, with the purpose browsers check
    const verified = execFileSync("openssl", ["verify", "-purpose", "sslserver", "-CAfile", join(caDir, "ca.crt"), join(dir, "server.crt")], { encoding: "utf8" });
    expect(verified.trim()).toBe(`${join(dir, "server.crt")}: OK`);
    const cert = new X509Certificate(readFileSync(join(dir, "server.crt")));
    for (const san of ["DNS:localhost", "IP Address:127.0.0.1", "DNS:sensors.example.org", "IP Address:10.1.2.3", ".local"]) {
      expect(cert.subjectAltName).toContain(san);
    }
    const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
    expect(days).toBeLessThanOrEqual(398);
    expect(cert.checkHost("sensors.example.org")).toBe("sensors.example.org");
  });

  it("makes a name-constrained CA: a certificate it signs for a public domain is refused by openssl's chain check", () => {
    const constraints = execFileSync("openssl", ["x509", "-in", join(caDir, "ca.crt"), "-noout", "-ext", "nameConstraints"], { encoding: "utf8" });
    expect(constraints).toMatch(/Name Constraints: critical/);
    for (const permitted of ["DNS:sensors.example.org", "DNS:localhost", "DNS:.local", "IP:192.168.0.0/255.255.0.0"]) expect(constraints).toContain(permitted);
    // Someone holding the CA key signs for a bank: clients that trust this CA still refuse it.
    const work = tempDir("certs-cli-evil-");
    try {
      const run = (args: string[]) => execFileSync("openssl", args, { cwd: work, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
      writeFileSync(join(work, "evil.ext"), "subjectAltName=DNS:bank.example.com\nextendedKeyUsage=serverAuth\n");
      run(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "evil.key", "-out", "evil.csr", "-subj", "/CN=bank.example.com"]);
      run(["x509", "-req", "-in", "evil.csr", "-CA", join(caDir, "ca.crt"), "-CAkey", join(caDir, "ca.key"), "-days", "30", "-extfile", "evil.ext", "-out", "evil.crt"]);
      const check = spawnSync("openssl", ["verify", "-purpose", "sslserver", "-CAfile", join(caDir, "ca.crt"), join(work, "evil.crt")], { encoding: "utf8" });
      expect(check.status).not.toBe(0);
      expect(check.stdout + check.stderr).toMatch(/permitted subtree violation/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    // and `npm run certs` itself refuses to issue one, leaving the pair in service alone
    const served = readFileSync(join(dir, "server.crt"));
    const r = runCerts(["--dir", dir, "--only", "--name", "bank.example.com"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/may not vouch for bank\.example\.com .*permitted subtree violation/s);
    expect(readFileSync(join(dir, "server.crt")).equals(served)).toBe(true);
  });

  it("keeps the CA on a second run and renews the server certificate", () => {
    const ca = readFileSync(join(caDir, "ca.crt"));
    const before = new X509Certificate(readFileSync(join(dir, "server.crt"))).serialNumber;
    const r = runCerts(["--dir", dir, "--only", "--name", "localhost"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/CA kept/);
    expect(readFileSync(join(caDir, "ca.crt")).equals(ca)).toBe(true);
    const after = new X509Certificate(readFileSync(join(dir, "server.crt")));
    expect(after.serialNumber).not.toBe(before);
    expect(after.subjectAltName).toBe("DNS:localhost");
    expect(after.verify(new X509Certificate(ca).publicKey)).toBe(true);
  });

  it("refuses to replace a CA of which only one file is left", () => {
    const halfCa = tempDir("certs-cli-half-");
    try {
      writeFileSync(join(halfCa, "ca.crt"), readFileSync(join(caDir, "ca.crt")));
      const r = runCerts(["--dir", join(halfCa, "tls"), "--ca-dir", halfCa, "--only", "--name", "localhost"]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/has only one of ca\.key and ca\.crt/);
      expect(readdirSync(halfCa).sort()).toEqual(["ca.crt", "tls"]);
    } finally {
      rmSync(halfCa, { recursive: true, force: true });
    }
  });

  it("refuses a bad address with exit 2", () => {
    const r = runCerts(["--dir", dir, "--ip", "300.1.1.1"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--ip "300\.1\.1\.1" is not an IP address/);
  });
});
