/**
 * Which broker certificates the simulated device trusts for an mqtts:// broker URL.
 *
 * esp32 profile (profile.tlsPublicRootsOnly): devicescript-esp32 main/sock.c:185-186 sets
 * MBEDTLS_SSL_VERIFY_REQUIRED and attaches only the ESP-IDF certificate bundle (esp_crt_bundle_attach: the
 * public root CAs compiled into the firmware); the runtime has no API to add a CA, so a private CA or a
 * self-signed broker certificate can never be trusted on the board. The host name checked is the one the
 * firmware asked for (sock.c:177 mbedtls_ssl_set_hostname(hostname) with the host given to sockOpen, i.e. its
 * MQTT_HOST), not the address the simulator really dials. We model the bundle with Node's
 * `tls.rootCertificates` (Mozilla's public roots, the same kind of list) passed as the only `ca`, so neither
 * NODE_EXTRA_CA_CERTS nor the OS store widens it.
 *
 * vm profile: like the WASM host's glue, plus the simulator's historic `tlsInsecure` (default true: accept
 * self-signed brokers in tests).
 */
import { isIP } from "node:net";
import { type ConnectionOptions, checkServerIdentity, rootCertificates } from "node:tls";
import type { RuntimeProfile } from "./profile.ts";

export function brokerTlsOptions(
  profile: RuntimeProfile,
  requestedHost: string,
  tlsInsecure: boolean | undefined,
): ConnectionOptions {
  if (!profile.tlsPublicRootsOnly) return { rejectUnauthorized: !(tlsInsecure ?? true) };
  return {
    ca: [...rootCertificates],
    rejectUnauthorized: true,
    // SNI carries DNS names only (RFC 6066 §3); mbedtls sends none for an IP literal either.
    servername: isIP(requestedHost) ? undefined : requestedHost,
    checkServerIdentity: (_dialed, cert) => checkServerIdentity(requestedHost, cert),
  };
}

/** OpenSSL verify codes that mean "no trusted root for this chain" (Node puts them in err.code). */
const UNTRUSTED_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
]);

export const TLS_UNTRUSTED_NOTE =
  "TLS: the broker's certificate is not signed by a public root CA; the ESP32 runtime trusts only its built-in " +
  "bundle (a private CA cannot be added): use a publicly trusted certificate on a DNS name, or plain TCP with " +
  "per-device credentials on the LAN";

/**
 * A one-line explanation of a failed TLS handshake under the esp32 trust rules, with a key so the caller can
 * print each kind once per device; undefined for failures that are not about trust (resets, timeouts).
 */
export function explainTlsFailure(err: Error, requestedHost: string): { key: string; note: string } | undefined {
  const code = (err as NodeJS.ErrnoException).code ?? "";
  if (UNTRUSTED_CODES.has(code)) return { key: "untrusted", note: TLS_UNTRUSTED_NOTE };
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return {
      key: "hostname",
      note:
        `TLS: the broker's certificate does not name ${requestedHost}, the host the firmware asked for ` +
        `(its MQTT_HOST); the ESP32 runtime checks it (sock.c:177 mbedtls_ssl_set_hostname)`,
    };
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return { key: "validity", note: `TLS: the broker's certificate is not valid now (${code})` };
  }
  return undefined;
}
