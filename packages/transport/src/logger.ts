/**
 * The logging surface Switchyard writes to: pino-compatible (`logger.warn(obj, msg)` or
 * `logger.warn(msg)`), `child` optional. Pass `pino()` or `console`-like adapters; silent by default.
 */
export interface Logger {
  debug(obj: unknown, msg?: string): void;
  info(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
  child?(bindings: Record<string, unknown>): Logger;
}

const noop = () => {};

/** A logger that drops everything: the default. */
export const silentLogger: Logger = Object.freeze({
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
});

/** `logger.child(bindings)` when the logger has one, else a wrapper that merges the bindings. */
export function childLogger(logger: Logger, bindings: Record<string, unknown>): Logger {
  if (logger === silentLogger) return logger;
  if (typeof logger.child === "function") return logger.child(bindings);
  const merge = (obj: unknown) =>
    typeof obj === "object" && obj !== null ? { ...bindings, ...obj } : { ...bindings, msg: obj };
  return {
    debug: (obj, msg) => logger.debug(merge(obj), msg),
    info: (obj, msg) => logger.info(merge(obj), msg),
    warn: (obj, msg) => logger.warn(merge(obj), msg),
    error: (obj, msg) => logger.error(merge(obj), msg),
  };
}
