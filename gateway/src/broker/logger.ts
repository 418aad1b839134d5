/** The subset of pino's Logger the broker uses; pass a pino logger (or a child of it). */
export interface BrokerLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const ignore = (): void => {};
export const silentLogger: BrokerLogger = { debug: ignore, info: ignore, warn: ignore, error: ignore };
