// A small pino-compatible logger: JSON lines to a stream (each daemon process logs to stderr,
// which the supervisor sends to a log file so the console shows progress, not a log flood).
import type { Logger } from "@switchyard/router";

export function jsonLogger(
  write: (line: string) => void,
  bindings: Record<string, unknown> = {},
  debug = false,
): Logger {
  const at =
    (level: string) =>
    (obj: unknown, msg?: string): void => {
      if (level === "debug" && !debug) return;
      const fields =
        typeof obj === "object" && obj !== null
          ? serialize(obj as Record<string, unknown>)
          : { msg: String(obj) };
      write(
        `${JSON.stringify({ time: new Date().toISOString(), level, ...bindings, ...fields, ...(msg ? { msg } : {}) })}\n`,
      );
    };
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (more) => jsonLogger(write, { ...bindings, ...more }, debug),
  };
}

function serialize(obj: Record<string, unknown>): Record<string, unknown> {
  const err = obj.err;
  if (!(err instanceof Error)) return obj;
  return { ...obj, err: { name: err.name, message: err.message } };
}
