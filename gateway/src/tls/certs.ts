/**
 * A private CA and a server certificate for the gateway on the LAN (`npm run certs`), made by the `openssl` CLI
 * (node:crypto makes keys but cannot issue X.509 certificates; openssl is on Debian and Raspberry Pi OS).
 *
 * The CA is made once and kept (10 years, key mode 0600, never leaves the Pi): clients trust it once. Each run
 * issues a new server key and certificate for the Pi's names and addresses (397 days: browsers refuse longer-lived
 * server certificates). The new pair replaces the old by rename, so a running gateway reloads a complete pair.
 *
 * For browsers, Mosquitto, MQTT.js and other LAN clients. Not for the ESP32 devices: their runtime trusts only
 * its built-in public root bundle (/work/shared/DESIGN.md, "The ESP32 runtime is stricter than the WASM VM").
 */
import { execFileSync } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";

export const CA_DAYS = 3650;
/** Under the 398 days Chrome and Safari accept for a server certificate. */
export const SERVER_DAYS = 397;

export interface CertificateFiles {
  dir: string;
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

export interface IssueOptions {
  /** Output directory (created 0700); the CA in it is reused if present. */
  dir: string;
  /** DNS names and IP addresses for the server certificate's subjectAltName. */
  names: string[];
  /** Server certificate lifetime; default SERVER_DAYS. */
  days?: number;
}

export interface IssueResult extends CertificateFiles {
  caCreated: boolean;
  /** SHA-256 fingerprints, for checking what a client was told to trust. */
  caFingerprint256: string;
  serial: string;
  names: string[];
  validTo: string;
}

export class ErrOpenssl extends Error {
  override name = "ErrOpenssl";
}

export function certificateFiles(dir: string): CertificateFiles {
  return { dir, caCert: join(dir, "ca.crt"), caKey: join(dir, "ca.key"), cert: join(dir, "server.crt"), key: join(dir, "server.key") };
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === "ENOENT") throw new ErrOpenssl("openssl not found: apt-get install openssl");
    throw new ErrOpenssl(`openssl ${args[0]} failed: ${err.stderr?.toString().trim() ?? err.message}`);
  }
}

/** This machine's names and addresses: host name, <host>.local (mDNS), every interface address, localhost. */
export function defaultNames(): string[] {
  const host = hostname().toLowerCase();
  const addresses = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && !(a.family === "IPv6" && a.address.startsWith("fe80:"))) // link-local needs a zone
    .map((a) => a!.address);
  return [...new Set([host, `${host.replace(/\.local$/, "")}.local`, "localhost", "127.0.0.1", "::1", ...addresses])];
}

const subjectAltName = (names: string[]): string => names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(",");
const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/** Makes the CA if `dir` has none, then a new server key and certificate signed by it. */
export function issueCertificates(opts: IssueOptions): IssueResult {
  if (opts.names.length === 0) throw new Error("at least one name or address is needed");
  const files = certificateFiles(opts.dir);
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const caCreated = !existsSync(files.caKey) || !existsSync(files.caCert);
  // Everything is written in a private temp dir and moved into place: no half-written file is ever visible.
  const work = mkdtempSync(join(opts.dir, ".work-"));
  try {
    if (caCreated) {
      openssl(
        ["req", "-x509", ...EC_KEY, "-keyout", "ca.key", "-out", "ca.crt", "-days", String(CA_DAYS),
          "-subj", `/O=Sleepy sensors/CN=Sleepy sensors local CA (${hostname()})`,
          "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        work,
      );
      chmodSync(join(work, "ca.key"), 0o600);
      renameSync(join(work, "ca.key"), files.caKey);
      renameSync(join(work, "ca.crt"), files.caCert);
    }
    writeFileSync(
      join(work, "server.ext"),
      [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth",
        `subjectAltName=${subjectAltName(opts.names)}`,
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid",
        "",
      ].join("\n"),
    );
    openssl(["req", "-new", ...EC_KEY, "-keyout", "server.key", "-out", "server.csr", "-subj", `/O=Sleepy sensors/CN=${opts.names[0]}`], work);
    openssl(
      ["x509", "-req", "-in", "server.csr", "-CA", files.caCert, "-CAkey", files.caKey,
        // random serial: a client (and the reload test) tells renewed certificates apart by it
        "-set_serial", `0x${randomBytes(16).toString("hex").replace(/^[89a-f]/, "7")}`,
        "-days", String(opts.days ?? SERVER_DAYS), "-extfile", "server.ext", "-out", "server.crt"],
      work,
    );
    chmodSync(join(work, "server.key"), 0o600);
    renameSync(join(work, "server.key"), files.key);
    renameSync(join(work, "server.crt"), files.cert);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const ca = new X509Certificate(readFileSync(files.caCert));
  const server = new X509Certificate(readFileSync(files.cert));
  return { ...files, caCreated, caFingerprint256: ca.fingerprint256, serial: server.serialNumber, names: opts.names, validTo: server.validTo };
}
