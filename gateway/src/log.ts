/** Structured logs (pino, JSON lines on stdout). One root logger per gateway; modules take a child. */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: "gateway" } });
}
