/**
 * Real certificates for the TLS tests, made in a temp dir by `npm run certs`' own code (gateway/src/tls/certs.ts)
 * and, for the expired and not-yet-valid ones, by `openssl ca` (the only openssl command that sets any start date).
 */
import { execFileSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { issueCertificates, type IssueResult } from "../../gateway/src/tls/certs.ts";
import { tempDir } from "../helpers/gateway.ts";
import { binaryAvailable } from "../helpers/binaries.ts";

/** Every test here makes its certificates with openssl: skipped visibly without it (CI=true: fails). */
export const hasOpenssl = binaryAvailable("/usr/bin/openssl", "openssl");

/** Names the tests connect with: every client talks to 127.0.0.1 (or localhost). */
export const LOOPBACK_NAMES = ["localhost", "127.0.0.1"];

export interface TestPki {
  root: string;
  /** CA + server certificate for localhost/127.0.0.1; the gateway serves these. */
  good: IssueResult;
  /** Another CA with its own server certificate: a client trusting only it must refuse `good`. */
  otherCaCert: string;
  /** Signed by `good`'s CA, valid for the loopback names, expired (January 2024). */
  expired: { cert: string; key: string };
  /** Signed by `good`'s CA, valid for the loopback names, from 2099 on. */
  notYetValid: { cert: string; key: string };
  close(): void;
}

export function makePki(): TestPki {
  const root = tempDir("tls-pki-");
  const good = issueCertificates({ dir: join(root, "good"), caDir: join(root, "good-ca"), names: LOOPBACK_NAMES });
  const other = issueCertificates({ dir: join(root, "other"), caDir: join(root, "other-ca"), names: LOOPBACK_NAMES });
  return {
    root,
    good,
    otherCaCert: other.caCert,
    expired: issueDated(good, join(root, "expired"), "20240101000000Z", "20240201000000Z"),
    notYetValid: issueDated(good, join(root, "not-yet-valid"), "20990101000000Z", "20990201000000Z"),
    close: () => rmSync(root, { recursive: true, force: true }),
  };
}

function issueDated(ca: IssueResult, dir: string, start: string, end: string): { cert: string; key: string } {
  mkdirSync(dir);
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), "1000\n");
  writeFileSync(
    join(dir, "ca.cnf"),
    [
      "[ca]",
      "default_ca = test_ca",
      "[test_ca]",
      "database = index.txt",
      "new_certs_dir = .",
      `certificate = ${ca.caCert}`,
      `private_key = ${ca.caKey}`,
      "serial = serial",
      "default_md = sha256",
      "policy = any",
      "copy_extensions = copy",
      "unique_subject = no",
      "[any]",
      "commonName = supplied",
      "",
    ].join("\n"),
  );
  const run = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  run(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key", "-out", "server.csr",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext", "extendedKeyUsage=serverAuth"]);
  run(["ca", "-batch", "-config", "ca.cnf", "-in", "server.csr", "-out", "server.crt", "-notext",
    "-startdate", start, "-enddate", end]);
  return { cert: join(dir, "server.crt"), key: join(dir, "server.key") };
}

/** Serial number of a PEM certificate file (hex, upper case as X509Certificate gives it). */
export const serialOf = (certFile: string): string => new X509Certificate(readFileSync(certFile)).serialNumber;

/** base64(SHA-256(SubjectPublicKeyInfo)): what Chromium's --ignore-certificate-errors-spki-list takes. */
export function spkiHash(certFile: string): string {
  const spki = new X509Certificate(readFileSync(certFile)).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("base64");
}
