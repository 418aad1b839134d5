/**
 * A private CA and a server certificate for the gateway on the LAN (`npm run certs`), made by the `openssl` CLI
 * (node:crypto makes keys but cannot issue X.509 certificates; openssl is on Debian and Raspberry Pi OS).
 *
 * The CA is made once and kept (10 years): clients trust it once. It lives in its own directory (`caDir`, 0700,
 * key 0600), apart from the server pair the gateway reads, so the gateway's user need not be able to read it.
 * Clients install it as a trust anchor, so it is name-constrained: it can only vouch for the names it was made
 * for, `localhost`, `*.local`, `*.home.arpa` and private/loopback addresses, never for a public domain.
 * Each run issues a new server key and certificate for the Pi's names and addresses (397 days: browsers refuse
 * longer-lived server certificates). Key and certificate are each replaced by rename (never a half-written file),
 * one after the other: a reader between the two renames sees the new key with the old certificate, which
 * tls/reloader.ts treats as "renewal in progress".
 *
 * For browsers, Mosquitto, MQTT.js and other LAN clients. Not for the ESP32 devices: their runtime trusts only
 * its built-in public root bundle (/work/shared/DESIGN.md, "The ESP32 runtime is stricter than the WASM VM").
 */
import { execFileSync } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";

export const CA_DAYS = 3650;
/** Under the 398 days Chrome and Safari accept for a server certificate. */
export const SERVER_DAYS = 397;

export interface CertificateFiles {
  dir: string;
  caDir: string;
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

export interface IssueOptions {
  /** Output directory of server.key and server.crt (0700). */
  dir: string;
  /** Directory of ca.key and ca.crt (0700); the CA in it is reused if present, made if absent. */
  caDir: string;
  /** DNS names and IP addresses for the server certificate's subjectAltName. */
  names: string[];
  /** Owner of the server pair and its directory (the gateway's user) when run as root; the CA stays root's. */
  owner?: { uid: number; gid: number };
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

export function certificateFiles(dir: string, caDir: string): CertificateFiles {
  return { dir, caDir, caCert: join(caDir, "ca.crt"), caKey: join(caDir, "ca.key"), cert: join(dir, "server.crt"), key: join(dir, "server.key") };
}

/** What the system openssl.cnf may add (policies, providers, default extensions) stays out: `work` has this one. */
const MINIMAL_OPENSSL_CNF = "[req]\ndistinguished_name = dn\n[dn]\n";

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, OPENSSL_CONF: join(cwd, "openssl.cnf") } });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === "ENOENT") throw new ErrOpenssl("openssl not found: apt-get install openssl");
    throw new ErrOpenssl(`openssl ${args[0]} failed: ${err.stderr?.toString().trim() ?? err.message}`);
  }
}

/** Addresses the CA may vouch for (nameConstraints, as address/mask): loopback and private LAN ranges. */
const PRIVATE_RANGES = [
  "127.0.0.0/255.0.0.0", "10.0.0.0/255.0.0.0", "172.16.0.0/255.240.0.0", "192.168.0.0/255.255.0.0",
  "0:0:0:0:0:0:0:1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fc00:0:0:0:0:0:0:0/fe00:0:0:0:0:0:0:0",
];
/** DNS suffixes the CA may vouch for besides the names it was made for: mDNS and the home-network domain (RFC 8375). */
const LOCAL_DOMAINS = ["localhost", ".local", ".home.arpa"];

/** True for IPv4 in PRIVATE_RANGES and IPv6 ::1 or unique-local (fc00::/7). */
function isPrivateAddress(address: string): boolean {
  if (isIP(address) === 6) return address === "::1" || /^f[cd]/i.test(address);
  const [a, b] = address.split(".").map(Number);
  return a === 127 || a === 10 || (a === 172 && b! >= 16 && b! < 32) || (a === 192 && b === 168);
}

/**
 * This machine's names and addresses: host name, <host>.local (mDNS), its private/loopback interface addresses
 * (not public or link-local ones, which the CA's name constraints exclude), localhost.
 */
export function defaultNames(): string[] {
  const host = hostname().toLowerCase();
  const addresses = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && isPrivateAddress(a.address))
    .map((a) => a!.address);
  // an FQDN host name (pi.lan) has no .local form: mDNS names are single-label
  const mdns = host.includes(".") ? [] : [`${host}.local`];
  return [...new Set([host, ...mdns, "localhost", "127.0.0.1", "::1", ...addresses])];
}

/** The CA's nameConstraints extension: the DNS names it is made for, LOCAL_DOMAINS, PRIVATE_RANGES. */
function nameConstraints(names: string[]): string {
  const dns = names.filter((n) => !isIP(n)).map((n) => n.replace(/^\*\./, ""));
  const permitted = [...new Set([...dns, ...LOCAL_DOMAINS])].map((d) => `permitted;DNS:${d}`);
  return ["critical", ...permitted, ...PRIVATE_RANGES.map((r) => `permitted;IP:${r}`)].join(",");
}

const subjectAltName = (names: string[]): string => names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(",");
const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/** A private temp dir inside `dir` (same filesystem: its files can be renamed into place), with its openssl.cnf. */
function workDir(dir: string): string {
  const work = mkdtempSync(join(dir, ".work-"));
  writeFileSync(join(work, "openssl.cnf"), MINIMAL_OPENSSL_CNF);
  return work;
}

function makeCa(caDir: string, files: CertificateFiles, names: string[]): void {
  const work = workDir(caDir);
  try {
    openssl(
      ["req", "-x509", ...EC_KEY, "-keyout", "ca.key", "-out", "ca.crt", "-days", String(CA_DAYS),
        "-subj", `/O=Sleepy sensors/CN=Sleepy sensors local CA (${hostname()})`,
        "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", `nameConstraints=${nameConstraints(names)}`],
      work,
    );
    chmodSync(join(work, "ca.key"), 0o600);
    renameSync(join(work, "ca.key"), files.caKey);
    renameSync(join(work, "ca.crt"), files.caCert);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700); // also an existing one: mkdir's mode applies only to a new directory
}

/** Makes the CA if `caDir` has none, then a new server key and certificate signed by it. */
export function issueCertificates(opts: IssueOptions): IssueResult {
  if (opts.names.length === 0) throw new Error("at least one name or address is needed");
  const files = certificateFiles(opts.dir, opts.caDir);
  privateDir(opts.dir);
  privateDir(opts.caDir);
  const hasKey = existsSync(files.caKey);
  if (hasKey !== existsSync(files.caCert)) {
    // Making a new CA here would silently untrust every client: the operator decides.
    throw new ErrOpenssl(`${opts.caDir} has only one of ca.key and ca.crt: restore the other, or move both away to make a new CA (clients must then trust it again)`);
  }
  const caCreated = !hasKey;
  if (caCreated) makeCa(opts.caDir, files, opts.names);
  // Everything is written in a private temp dir and moved into place: no half-written file is ever visible.
  const work = workDir(opts.dir);
  try {
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
    // A kept CA enforces the names it was made for: a name outside them gives a certificate every client refuses.
    try {
      openssl(["verify", "-purpose", "sslserver", "-CAfile", files.caCert, "server.crt"], work);
    } catch (e) {
      throw new ErrOpenssl(`the CA in ${opts.caDir} may not vouch for ${opts.names.join(", ")} (its name constraints): ${(e as Error).message}`);
    }
    chmodSync(join(work, "server.key"), 0o600);
    if (opts.owner) {
      for (const f of ["server.key", "server.crt"]) chownSync(join(work, f), opts.owner.uid, opts.owner.gid);
      chownSync(opts.dir, opts.owner.uid, opts.owner.gid);
    }
    renameSync(join(work, "server.key"), files.key);
    renameSync(join(work, "server.crt"), files.cert);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const ca = new X509Certificate(readFileSync(files.caCert));
  const server = new X509Certificate(readFileSync(files.cert));
  return { ...files, caCreated, caFingerprint256: ca.fingerprint256, serial: server.serialNumber, names: opts.names, validTo: server.validTo };
}
