/**
 * The gateway's certificate and key (config `tls`), shared by HTTPS and the broker's mqtts and wss listeners.
 * Read and checked as a pair before any listener uses them: a missing file, an unreadable one or a key that does
 * not match the certificate is a configuration error at start (exit 2), never a failed handshake later.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";

export interface TlsFiles {
  /** PEM certificate; intermediates follow it in the same file (a "fullchain.pem"). */
  cert: string;
  /** PEM private key of that certificate, unencrypted. */
  key: string;
}

/** The files' bytes, as `tls.createServer` and `setSecureContext` take them. */
export interface TlsCredentials {
  cert: Buffer;
  key: Buffer;
}

export class ErrBadCertificate extends Error {
  override name = "ErrBadCertificate";
}

function readPem(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ErrBadCertificate(`${what} ${JSON.stringify(path)}: cannot read it (${err.code ?? err.message})`);
  }
}

/** Reads the pair and checks that OpenSSL accepts it (PEM syntax, key matches certificate). */
export function loadTlsCredentials(files: TlsFiles): TlsCredentials {
  const credentials = { cert: readPem("tls.cert", files.cert), key: readPem("tls.key", files.key) };
  try {
    createSecureContext(credentials);
  } catch (e) {
    throw new ErrBadCertificate(`tls.cert ${JSON.stringify(files.cert)} and tls.key ${JSON.stringify(files.key)}: not a usable pair (${(e as Error).message})`);
  }
  return credentials;
}

/** What the log says about a certificate (never the key): serial, SHA-256 fingerprint, names, expiry. */
export function describeCertificate(cert: Buffer): {
  serial: string;
  fingerprint256: string;
  subjectAltName: string;
  validFrom: string;
  validTo: string;
  expiresAtMs: number;
  expired: boolean;
  /** Now within validFrom..validTo: clients accept it (as far as dates go). */
  valid: boolean;
} {
  const x509 = new X509Certificate(cert);
  const expiresAtMs = Date.parse(x509.validTo);
  const now = Date.now();
  const expired = expiresAtMs < now;
  return {
    serial: x509.serialNumber,
    fingerprint256: x509.fingerprint256,
    subjectAltName: x509.subjectAltName ?? "",
    validFrom: x509.validFrom,
    validTo: x509.validTo,
    expiresAtMs,
    expired,
    valid: !expired && Date.parse(x509.validFrom) <= now,
  };
}
