import { TransportClosedError, UnsupportedOperationError } from "./errors";
import type {
  Driver,
  DriverFactory,
  DriverOpenOptions,
  DriverTransportOptions,
  Target,
} from "./driver";
import type { HeartbeatSink } from "./heartbeat";
import type { Admin, Inspector } from "./inspector";
import { MemoryAdmin, MemoryInspector, memoryCapabilities } from "./memory-inspector";
import { MemoryStore, MemoryTransport } from "./memory-transport";
import type { DeadLetterSink } from "./transport";

/** The named stores of this process: `memory:<name>` opens the same one every time. */
const stores = new Map<string, MemoryStore>();

/** The store behind `memory:<name>` in this process, created on first use. */
export function memoryStore(name: string): MemoryStore {
  let store = stores.get(name);
  if (!store) {
    store = new MemoryStore();
    stores.set(name, store);
  }
  return store;
}

class MemoryDriver implements Driver {
  readonly scheme = "memory";
  readonly target: string;
  readonly capabilities = memoryCapabilities;
  readonly #store: MemoryStore;
  readonly #options: DriverOpenOptions;
  readonly #sink: DeadLetterSink;
  #transport: MemoryTransport | undefined;
  #inspector: MemoryInspector | undefined;
  #admin: MemoryAdmin | undefined;
  #closing: Promise<void> | undefined;

  constructor(name: string, options: DriverOpenOptions) {
    this.target = `memory:${name}`;
    this.#store = memoryStore(name);
    this.#options = options;
    const store = this.#store;
    this.#sink = { deadLetter: (record) => store.addDeadLetter(record) };
  }

  #assertOpen(): void {
    if (this.#closing) throw new TransportClosedError(`memory driver (${this.target})`);
  }

  #assertWritable(operation: string): void {
    if (this.#options.readOnly)
      throw new UnsupportedOperationError(
        "memory",
        `${operation} (${this.target} was opened read-only)`,
        {
          hint: "Open the driver without readOnly to write.",
        },
      );
  }

  transport(options: DriverTransportOptions = {}): MemoryTransport {
    this.#assertOpen();
    this.#assertWritable("open a transport");
    const logger = options.logger ?? this.#options.logger;
    this.#transport ??= new MemoryTransport({
      store: this.#store,
      deadLetter: options.deadLetter ?? this.#sink,
      ...(logger ? { logger } : {}),
      ...(options.drainTimeoutMs !== undefined ? { drainTimeoutMs: options.drainTimeoutMs } : {}),
    });
    return this.#transport;
  }

  heartbeatSink(): HeartbeatSink {
    this.#assertOpen();
    this.#assertWritable("write heartbeats");
    const store = this.#store;
    return { write: (beat) => void store.heartbeats.set(beat.daemon, structuredClone(beat)) };
  }

  deadLetterSink(): DeadLetterSink | undefined {
    this.#assertOpen();
    return this.#options.readOnly ? undefined : this.#sink;
  }

  inspector(): Inspector {
    this.#assertOpen();
    this.#inspector ??= new MemoryInspector(this.#store);
    return this.#inspector;
  }

  admin(): Admin {
    this.#assertOpen();
    this.#admin ??= new MemoryAdmin(this.#store, { readOnly: this.#options.readOnly ?? false });
    return this.#admin;
  }

  close(): Promise<void> {
    this.#closing ??= Promise.all([this.#transport?.close(), this.#inspector?.close()]).then(
      () => {},
    );
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The memory transport as a driver: `memory:<name>` opens the store of that name in this process
 * (the same name, the same store, like processes sharing one database; nothing survives the
 * process). For tests, demos and the conformance suites.
 *
 * @example
 * ```ts
 * import { memoryDriver, openDriver } from "@switchyard/transport";
 * await using driver = await openDriver("memory:demo", { drivers: [memoryDriver] });
 * await driver.transport().publish([]);
 * console.log(await driver.inspector().subscribers());
 * ```
 */
export const memoryDriver: DriverFactory = Object.freeze({
  schemes: Object.freeze(["memory"]),
  describe:
    "memory:<name> — in this process only (tests, demos); the same name opens the same store",
  async open(target: Target, options: DriverOpenOptions): Promise<Driver> {
    options.signal?.throwIfAborted();
    return new MemoryDriver(target.rest.trim() || "default", options);
  },
});
