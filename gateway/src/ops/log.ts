/** Structured logs (pino, JSON lines on stdout). One root logger per gateway; modules take a child. */
import { pino, type DestinationStream, type Logger } from "pino";

export type { Logger };

/**
 * Secrets never belong in a log line; no code logs these fields, and if one ever does by mistake (an options
 * object, a request's headers) pino writes "[redacted]" instead.
 */
const REDACT = ["password", "token", "authorization", "cookie", "*.password", "*.token", "*.authorization", "*.cookie"];

/** @param destination default stdout; tests pass a stream to read what would be logged. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, base: { service: "gateway" }, redact: { paths: REDACT, censor: "[redacted]" } };
  return destination ? pino(options, destination) : pino(options);
}
