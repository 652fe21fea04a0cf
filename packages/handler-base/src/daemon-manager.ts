import { constants as osConstants, hostname } from "node:os";
import {
  type BackoffOptions,
  type HealthCheckResult,
  type Logger,
  type OtelCounter,
  type OtelMeter,
  type PublishOptions,
  backoffDelay,
  childLogger,
  healthFrom,
  silentLogger,
  sleep,
} from "@switchyard/router";
import {
  DaemonManagerClosedError,
  DaemonOptionsError,
  DaemonStartTimeoutError,
  DaemonStopTimeoutError,
  DuplicateDaemonError,
  UnknownDaemonError,
  cutErrorText,
  messageOf,
} from "./errors";
import { MAX_TIMER_MS, backoffProblem, isThenable, untilAborted } from "@switchyard/transport";
import { type DaemonStatus, definedOnly } from "./handler-base";
import type { DaemonContracts, DaemonHeartbeat, DaemonRunState, HeartbeatSink } from "./heartbeat";
import type { DaemonStats } from "./stats";

/**
 * Anything that can publish catalog events: a `Router` of any catalog fits. The manager publishes
 * `DAEMON_PERMANENTLY_FAILED` through it when the catalog has that type.
 */
export interface EventPublisher {
  readonly catalog: { has(type: unknown): boolean };
  publish(type: never, data: never, options?: PublishOptions): Promise<unknown>;
}

/**
 * What a {@link DaemonManager} supervises. Every `HandlerBase` is one; other long-running
 * components can implement it to be started, stopped, restarted and reported the same way.
 *
 * Contract: `start()` rejects when the daemon could not start (it counts as a crash and is
 * retried); `stop()` is idempotent and never rejects; `onCrash` listeners are called after the
 * daemon stopped itself because of a failure.
 */
export interface Daemon {
  readonly name: string;
  readonly status: DaemonStatus;
  /** When the current run started, in ms since the epoch; `null` when not running. */
  readonly startedAt: number | null;
  readonly stats: DaemonStats;
  /** Where `DAEMON_PERMANENTLY_FAILED` goes when the manager has no `router` of its own. */
  readonly router?: EventPublisher;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The daemon's health; called by the manager for its own `health()` and each heartbeat. */
  health(): HealthCheckResult;
  onCrash(listener: (error: Error) => void): () => void;
  /** What it publishes and consumes, announced in its heartbeats (optional). */
  contracts?(): DaemonContracts;
}

/** Options of {@link DaemonManager}. */
export interface DaemonManagerOptions {
  /** Daemons to register right away (more with `register`). @defaultValue none */
  readonly daemons?: readonly Daemon[];
  /**
   * Where `DAEMON_PERMANENTLY_FAILED` is published (only if its catalog has the type).
   * @defaultValue the failed daemon's own `router`
   */
  readonly router?: EventPublisher;
  /** Where the manager logs. @defaultValue silent */
  readonly logger?: Logger;
  /**
   * Consecutive failed restarts after which a daemon is given up (`failed`) and
   * `DAEMON_PERMANENTLY_FAILED` is published. A restart fails when `start()` rejects, or when the
   * daemon crashes again within `stableAfterMs`. @defaultValue 5
   */
  readonly maxRestartAttempts?: number;
  /**
   * Delay before restart number n (exponential, with jitter). A field left out or `undefined`
   * keeps its default. @defaultValue `{ initialMs: 1000, maxMs: 60_000, multiplier: 2, jitter: 0.2 }`
   */
  readonly restartBackoff?: BackoffOptions;
  /** A restarted daemon that runs this long without crashing has its failed-restart count reset. @defaultValue 60_000 */
  readonly stableAfterMs?: number;
  /** Where heartbeats go. @defaultValue none (no heartbeats) */
  readonly heartbeatSink?: HeartbeatSink;
  /**
   * Time between two heartbeats of every daemon, in ms; at most 2^31 - 1. It also bounds one
   * write: a sink that has not finished a write after this long is not waited for any longer (a
   * warning is logged), so a hung sink never holds up `startAll()`, `stopAll()` or `restart()`.
   * @defaultValue 30_000
   */
  readonly heartbeatIntervalMs?: number;
  /**
   * How long `stopAll()` waits for each daemon's `stop()` (and for a `start()` of it still in
   * progress), in ms; at most 2^31 - 1. A daemon that has not stopped by then is given up on: it is
   * logged as an error, its status becomes `"failed"` (its `lastError` says why) and `stopAll()`
   * goes on. `restart(name)` waits as long for the daemon to stop. Like systemd's
   * `TimeoutStopSec` or Kubernetes' grace period, but without a kill: the process exit is yours.
   * The default is longer than a `HandlerBase` with its defaults can take to stop (up to twice its
   * `stopTimeoutMs` of 10_000: in-flight work, then `onStop()`), so only a stuck daemon hits it.
   * @defaultValue 30_000
   */
  readonly stopTimeoutMs?: number;
  /**
   * How long the manager waits for a daemon's `start()` (first start, restart after a crash, or
   * `restart(name)`), in ms; at most 2^31 - 1. The same rule as `stopTimeoutMs`, for starting: a
   * daemon whose `start()` has not settled by then is given up on — logged as an error, its status
   * becomes `"failed"` (its `lastError` says why), it is asked to `stop()` so that it cannot come up
   * unsupervised later, it is not restarted, and `DAEMON_PERMANENTLY_FAILED` is published. The
   * other daemons are not touched: `startAll()` resolves with them running, and `health()` is
   * `unhealthy` until the daemon is restarted (`restart(name)`, or `stopAll()` then `startAll()`).
   * Like systemd's `TimeoutStartSec`. Longer than `stopTimeoutMs` by default because a start may
   * load state (a model, a database); raise it for a daemon that legitimately starts slower.
   * @defaultValue 60_000
   */
  readonly startTimeoutMs?: number;
  /** Envelope `source` of `DAEMON_PERMANENTLY_FAILED`. @defaultValue "daemon_manager" */
  readonly source?: string;
  /** Host name written to heartbeats and failure events. @defaultValue `os.hostname()` */
  readonly host?: string;
  /**
   * An OpenTelemetry meter (`api.metrics.getMeter(…)`): the manager counts
   * `switchyard.daemon.restarts` (attribute `switchyard.daemon`). @defaultValue none
   */
  readonly meter?: OtelMeter;
}

/** Options of {@link DaemonManager.run}. */
export interface RunOptions {
  /** Aborting it stops the daemons, like a signal does. */
  readonly signal?: AbortSignal;
  /** Process signals that stop the daemons gracefully. @defaultValue ["SIGINT", "SIGTERM"] */
  readonly signals?: readonly NodeJS.Signals[];
}

/** One daemon as the manager sees it: from {@link DaemonManager.list}. */
export interface ManagedDaemonInfo {
  readonly name: string;
  readonly status: DaemonRunState;
  /** Successful restarts after crashes. */
  readonly restarts: number;
  /** Consecutive failed restarts (reset once a restarted daemon runs `stableAfterMs`). */
  readonly failedRestarts: number;
  /** The message of the last failure, if any. */
  readonly lastError: string | null;
  /**
   * Present when the daemon's own `status` could not be read (its getter threw, or gave something
   * that is not a status): what was wrong. Its `status` is then shown as `"crashed"`, and
   * `health()` is `unhealthy`. One broken daemon never hides the others.
   */
  readonly problem?: string;
}

interface Entry {
  readonly daemon: Daemon;
  /** The name it was registered under (read once: a getter must not change or break it later). */
  readonly name: string;
  /**
   * Given up: after too many failed restarts, or because it did not start within startTimeoutMs
   * or did not stop within stopTimeoutMs.
   */
  failed: false | "restarts" | "start" | "stop";
  restarts: number;
  failedRestarts: number;
  lastError: string | null;
  restartedAt: number | undefined;
  /** The daemon's `start()` in progress (first start, restart or `restart(name)`). */
  starting: Promise<void> | undefined;
  supervising: Promise<void> | undefined;
  /** Ends this daemon's pending restart loop (a manual `restart(name)` replaces it). */
  cancelRestarts: AbortController;
  removeCrashListener: (() => void) | undefined;
}

const PERMANENTLY_FAILED = "DAEMON_PERMANENTLY_FAILED";

/**
 * Runs a set of daemons: starts and stops them together, restarts a crashed one with backoff,
 * gives up after `maxRestartAttempts` consecutive failed restarts (publishing
 * `DAEMON_PERMANENTLY_FAILED`), aggregates their health, writes periodic heartbeats to a
 * {@link HeartbeatSink}, and shuts down gracefully on SIGINT/SIGTERM in {@link DaemonManager.run}.
 *
 * A daemon has *crashed* when its `start()` rejected or when it reported a crash (a `HandlerBase`
 * does after `maxConsecutiveCycleFailures` failing cycles in a row).
 *
 * @example
 * ```ts
 * const manager = new DaemonManager({ daemons: [new QualityMonitor(router)], heartbeatSink: sink });
 * await manager.run(); // starts all; on SIGINT/SIGTERM stops taking work, finishes in-flight work, resolves
 * ```
 */
export class DaemonManager implements AsyncDisposable {
  readonly #entries = new Map<string, Entry>();
  readonly #logger: Logger;
  readonly #router: EventPublisher | undefined;
  readonly #maxRestartAttempts: number;
  readonly #backoff: BackoffOptions;
  readonly #stableAfterMs: number;
  readonly #sink: HeartbeatSink | undefined;
  readonly #heartbeatIntervalMs: number;
  readonly #source: string;
  readonly #restartCounter: OtelCounter | undefined;
  readonly #host: string;
  /** Aborted by `stopAll()`; a new one for each run (`startAll()` after `stopAll()`). */
  #closing = new AbortController();
  /**
   * Aborted by a second SIGINT/SIGTERM in `run()`: `stopAll()` stops waiting for the daemons and the
   * heartbeats still pending. A new one for each run.
   */
  #abandon = new AbortController();
  readonly #stopTimeoutMs: number;
  readonly #startTimeoutMs: number;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;

  constructor(options: DaemonManagerOptions = {}) {
    const maxRestartAttempts = options.maxRestartAttempts ?? 5;
    const stableAfterMs = options.stableAfterMs ?? 60_000;
    const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 30_000;
    if (!Number.isInteger(maxRestartAttempts) || maxRestartAttempts < 0) {
      throw new DaemonOptionsError(
        "DaemonManager",
        "maxRestartAttempts",
        "an integer ≥ 0",
        maxRestartAttempts,
      );
    }
    if (!(stableAfterMs >= 0)) {
      throw new DaemonOptionsError(
        "DaemonManager",
        "stableAfterMs",
        "a number of ms ≥ 0",
        stableAfterMs,
      );
    }
    if (!(heartbeatIntervalMs > 0) || !Number.isFinite(heartbeatIntervalMs)) {
      throw new DaemonOptionsError(
        "DaemonManager",
        "heartbeatIntervalMs",
        "a positive number of ms",
        heartbeatIntervalMs,
      );
    }
    if (heartbeatIntervalMs > MAX_TIMER_MS) {
      throw new DaemonOptionsError(
        "DaemonManager",
        "heartbeatIntervalMs",
        TIMER_MS,
        heartbeatIntervalMs,
      );
    }
    this.#stopTimeoutMs = timeoutOption("stopTimeoutMs", options.stopTimeoutMs ?? 30_000);
    this.#startTimeoutMs = timeoutOption("startTimeoutMs", options.startTimeoutMs ?? 60_000);
    this.#logger = childLogger(options.logger ?? silentLogger, { component: "daemon_manager" });
    this.#router = options.router;
    this.#maxRestartAttempts = maxRestartAttempts;
    // Fields left undefined keep the manager's defaults (spread as such, they would replace them).
    this.#backoff = {
      initialMs: 1000,
      maxMs: 60_000,
      ...definedOnly(options.restartBackoff ?? {}),
    };
    const problem = backoffProblem(this.#backoff);
    if (problem)
      throw new DaemonOptionsError(
        "DaemonManager",
        `restartBackoff.${problem.field}`,
        problem.expected,
        problem.value,
      );
    this.#stableAfterMs = stableAfterMs;
    this.#sink = options.heartbeatSink;
    this.#heartbeatIntervalMs = heartbeatIntervalMs;
    this.#source = options.source ?? "daemon_manager";
    this.#host = options.host ?? hostname();
    this.#restartCounter = options.meter?.createCounter("switchyard.daemon.restarts", {
      description: "Daemons restarted after a crash.",
      unit: "{restart}",
    });
    for (const daemon of options.daemons ?? []) this.register(daemon);
  }

  /**
   * Add a daemon. Once the manager has started, the daemon is started (and supervised) at once;
   * while it is stopped, with the next `startAll()`. Throws {@link DuplicateDaemonError} for a
   * name already taken, and a `TypeError` for something that is not a {@link Daemon} (no name, a
   * method missing).
   */
  register(daemon: Daemon): this {
    const problem = daemonProblem(daemon);
    if (problem !== undefined) {
      throw new TypeError(
        `DaemonManager: a daemon needs a non-empty string name and start(), stop(), health() and ` +
          `onCrash() methods (a HandlerBase has them all); ${problem}`,
      );
    }
    const { name } = daemon;
    if (this.#entries.has(name)) throw new DuplicateDaemonError(name);
    const entry: Entry = {
      daemon,
      name,
      failed: false,
      restarts: 0,
      failedRestarts: 0,
      lastError: null,
      restartedAt: undefined,
      starting: undefined,
      supervising: undefined,
      cancelRestarts: new AbortController(),
      removeCrashListener: undefined,
    };
    this.#listen(entry);
    this.#entries.set(name, entry);
    if (this.#starting && !this.#stopping) void this.#startEntry(entry);
    return this;
  }

  #listen(entry: Entry): void {
    entry.removeCrashListener ??= entry.daemon.onCrash((error) =>
      this.#onFailure(entry, error, "crash"),
    );
  }

  /** The registered daemons, in registration order. */
  get daemons(): readonly Daemon[] {
    return [...this.#entries.values()].map((e) => e.daemon);
  }

  /** The registered daemon of that name. */
  get(name: string): Daemon | undefined {
    return this.#entries.get(name)?.daemon;
  }

  /**
   * Every daemon with its state, restart count and last failure. Never throws: a daemon whose
   * `status` cannot be read is listed as `"crashed"` with the `problem` stated.
   */
  list(): ManagedDaemonInfo[] {
    return [...this.#entries.values()].map((e) => {
      const { status, problem } = stateOf(e);
      return {
        name: e.name,
        status,
        restarts: e.restarts,
        failedRestarts: e.failedRestarts,
        lastError: e.lastError,
        ...(problem === undefined ? {} : { problem }),
      };
    });
  }

  /**
   * Start every daemon (in parallel) and the heartbeat timer. A daemon whose `start()` rejects is
   * handed to the restart policy; `startAll` itself resolves once every daemon was tried, and never
   * rejects. Bounded: a daemon whose `start()` has not settled within `startTimeoutMs` is given up
   * on (`"failed"` in `list()`, `health()` and its heartbeat, asked to stop, not restarted,
   * `DAEMON_PERMANENTLY_FAILED` published) while the daemons that started keep running.
   * Idempotent while running: every call returns the same promise.
   *
   * After `stopAll()` (once it finished, which `startAll` waits for) it starts everything again,
   * daemons given up as `failed` included, with their failed-restart counts reset: the runbook's
   * "restart all daemons" is `await manager.stopAll(); await manager.startAll();`.
   */
  startAll(): Promise<void> {
    this.#starting ??= this.#startAll(this.#stopping);
    return this.#starting;
  }

  /**
   * Stop restarting, stop every daemon (all at once; each finishes its cycle and in-flight
   * handlers), write a last heartbeat of each and stop the heartbeat timer. Idempotent: every call
   * until the next `startAll()` returns the same promise. `startAll()` starts the manager again.
   *
   * Bounded: a daemon whose `stop()` (or a `start()` of it still in progress) has not settled
   * within `stopTimeoutMs` is given up on — logged as an error naming it, shown as `"failed"` by
   * `list()`, `health()` and its last heartbeat, with the reason in `lastError` — and `stopAll()`
   * resolves anyway; the other daemons are stopped as usual. It never rejects: check
   * `manager.health()` or `list()` afterwards to tell a clean stop from one that gave up.
   */
  stopAll(): Promise<void> {
    // startAll() called after stopAll() but not yet through: stop what it is about to start.
    if (this.#stopping && this.#starting) {
      return this.#starting.then(() => this.stopAll());
    }
    this.#stopping ??= this.#stopAll();
    return this.#stopping;
  }

  /**
   * Restart one daemon by name: end its pending restart loop, stop it (it finishes its cycle and
   * in-flight handlers), forget its failed restarts — a daemon given up as `failed` is taken back
   * — and start it again. Resolves once it runs. If its `start()` rejects, `restart` rejects with
   * that error and the restart policy takes over, as for any failed start.
   *
   * Throws {@link UnknownDaemonError} for a name not registered, and
   * {@link DaemonManagerClosedError} while the manager is not running (use `startAll()`). Rejects
   * with {@link DaemonStopTimeoutError} when the daemon has not stopped within `stopTimeoutMs`: it
   * is given up on (`"failed"`) and not started again; and with {@link DaemonStartTimeoutError}
   * when it has not started again within `startTimeoutMs` (given up on the same way, see
   * `startTimeoutMs`).
   *
   * @example
   * ```ts
   * await manager.restart("quality_monitor"); // the runbook's "restart one daemon"
   * ```
   */
  async restart(name: string): Promise<void> {
    const entry = this.#entries.get(name);
    if (!entry) throw new UnknownDaemonError(name, [...this.#entries.keys()]);
    if (!this.#starting || this.#stopping) {
      throw new DaemonManagerClosedError(`restart daemon ${JSON.stringify(name)}`);
    }
    await this.#starting;
    entry.cancelRestarts.abort();
    await entry.supervising;
    entry.cancelRestarts = new AbortController();
    entry.failed = false;
    entry.failedRestarts = 0;
    this.#logger.info({ daemon: name }, `restarting daemon ${name} on request`);
    const stuck = await this.#stopDaemons([entry]);
    if (this.#closing.signal.aborted) return; // stopAll() came meanwhile: it wins
    if (stuck.length > 0) {
      await this.#writeBeat(entry);
      throw new DaemonStopTimeoutError(name, this.#stopTimeoutMs);
    }
    try {
      await this.#startDaemon(entry);
    } catch (error) {
      this.#logger.error({ err: error, daemon: name }, `daemon ${name} failed to restart`);
      this.#onFailure(entry, error, "start");
      await this.#writeBeat(entry);
      throw error;
    }
    entry.restartedAt = Date.now();
    this.#logger.info({ daemon: name }, `daemon ${name} restarted on request`);
    await this.#writeBeat(entry);
  }

  /** `stopAll()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stopAll();
  }

  /**
   * Start every daemon, then wait for SIGINT or SIGTERM (or `signal`), then stop gracefully: no new
   * work is taken, in-flight work finishes (each daemon waited for up to `stopTimeoutMs`), and the
   * promise resolves. A signal that comes while the daemons are still starting stops them at once.
   * The signal listeners are removed afterwards. While it runs, the process stays alive.
   *
   * A second SIGINT or SIGTERM while stopping (an operator pressing Ctrl-C twice) ends the wait at
   * once: the daemons still stopping are given up on (logged, and `"failed"` in `list()` and
   * `health()`) and the promise resolves. The process is not exited: that stays the caller's call.
   *
   * @example
   * ```ts
   * await manager.run();
   * process.exitCode = manager.health().healthy ? 0 : 1;
   * ```
   */
  async run(options: RunOptions = {}): Promise<void> {
    const signals = options.signals ?? ["SIGINT", "SIGTERM"];
    // Checked before any listener is added: a bad entry must not leave the others behind (a
    // leftover SIGINT listener would keep Ctrl-C from ending the process).
    const badSignal = signalsProblem(signals);
    if (badSignal !== undefined) {
      throw new DaemonOptionsError(
        "DaemonManager.run",
        "signals",
        'an array of signal names a process can listen for, e.g. ["SIGINT", "SIGTERM"] ' +
          "(SIGKILL and SIGSTOP cannot be caught)",
        badSignal,
      );
    }
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
      throw new DaemonOptionsError("DaemonManager.run", "signal", "an AbortSignal", options.signal);
    }
    let requested = false;
    let requestStop!: () => void;
    const stopRequested = new Promise<void>((resolve) => (requestStop = resolve));
    const onSignal = (signal: NodeJS.Signals) => {
      if (requested) {
        this.#logger.warn(
          { signal },
          `received ${signal} again while stopping: not waiting any longer for the daemons still stopping`,
        );
        this.#abandon.abort(`a second ${signal} came`);
        return;
      }
      requested = true;
      this.#logger.info({ signal }, `received ${signal}: stopping daemons`);
      requestStop();
    };
    const onAbort = () => {
      requested = true;
      requestStop();
    };
    const listening: NodeJS.Signals[] = [];
    const stopListening = () => {
      for (const signal of listening.splice(0)) process.off(signal, onSignal);
      options.signal?.removeEventListener("abort", onAbort);
    };
    try {
      for (const signal of signals) {
        process.on(signal, onSignal);
        listening.push(signal);
      }
    } catch (error) {
      // The platform refused one (uv_signal_start): remove the ones already added.
      stopListening();
      throw error;
    }
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    // Signal listeners do not keep the event loop alive; a daemon process must stay up until told.
    const keepAlive = setInterval(() => {}, 1 << 30);
    try {
      // A daemon stuck in start() must not keep the signal from stopping the rest.
      await Promise.race([this.startAll(), stopRequested]);
      await stopRequested;
    } finally {
      clearInterval(keepAlive);
      await this.stopAll();
      stopListening();
    }
  }

  /**
   * Every daemon's health, aggregated: `unhealthy` if one is unhealthy or failed for good,
   * `degraded` if one is degraded, else `healthy`. `details.daemons` has each daemon's own result.
   */
  health(): HealthCheckResult {
    const problems: { severity: "degraded" | "unhealthy"; message: string }[] = [];
    const daemons: Record<string, unknown> = {};
    for (const entry of this.#entries.values()) {
      const { name } = entry;
      const health = this.#healthOf(entry);
      const { status, problem } = stateOf(entry);
      daemons[name] = {
        status,
        ...(problem === undefined ? {} : { problem }),
        restarts: entry.restarts,
        failedRestarts: entry.failedRestarts,
        lastError: entry.lastError,
        health,
      };
      if (entry.failed) {
        problems.push({
          severity: "unhealthy",
          message:
            entry.failed === "restarts"
              ? `${name} failed permanently after ${entry.failedRestarts} restart attempts: ${entry.lastError ?? "unknown error"}`
              : `${name} was given up on while ${entry.failed === "start" ? "starting" : "stopping"}: ${entry.lastError ?? "unknown error"}`,
        });
      } else if (problem !== undefined) {
        problems.push({ severity: "unhealthy", message: `${name}: ${problem}` });
      } else if (!health.healthy) {
        problems.push({
          severity: health.status === "unhealthy" ? "unhealthy" : "degraded",
          message: `${name}: ${health.message}`,
        });
      }
    }
    return healthFrom(problems, `${this.#entries.size} daemons healthy`, {
      daemons,
      pid: process.pid,
      host: this.#host,
    });
  }

  /**
   * Every daemon's health, aggregated.
   * @deprecated Use {@link DaemonManager.health}; the same result under the one-word name.
   */
  healthCheck(): HealthCheckResult {
    return this.health();
  }

  /** Write one heartbeat of every daemon now (the timer does this every `heartbeatIntervalMs`). */
  async heartbeat(): Promise<void> {
    if (!this.#sink) return;
    await Promise.all([...this.#entries.values()].map((entry) => this.#writeBeat(entry)));
  }

  async #startAll(previousStop: Promise<void> | undefined): Promise<void> {
    if (previousStop) {
      await previousStop;
      this.#reopen();
    }
    if (this.#sink) {
      this.#heartbeatTimer = setInterval(() => {
        // Skip a tick rather than pile writes up behind a slow sink.
        this.#beating ??= this.heartbeat().finally(() => (this.#beating = undefined));
      }, this.#heartbeatIntervalMs);
      this.#heartbeatTimer.unref();
    }
    await Promise.all([...this.#entries.values()].map((entry) => this.#startEntry(entry)));
  }

  /** After `stopAll()`: a new run, every daemon supervised again and none given up. */
  #reopen(): void {
    this.#closing = new AbortController();
    this.#abandon = new AbortController();
    this.#stopping = undefined;
    for (const entry of this.#entries.values()) {
      entry.failed = false;
      entry.failedRestarts = 0;
      entry.cancelRestarts = new AbortController();
      this.#listen(entry);
    }
  }

  /**
   * `daemon.start()`, tracked as `entry.starting` until it settles (`stopAll()` waits for it), and
   * waited for at most `startTimeoutMs`. A start still pending then is given up on: the daemon is
   * marked `"failed"` and asked to `stop()` (which aborts a `HandlerBase`'s start), and this rejects
   * with {@link DaemonStartTimeoutError}. Not while `stopAll()` runs: the shutdown owns the daemon
   * then, and bounds the wait for that start with `stopTimeoutMs`.
   */
  async #startDaemon(entry: Entry): Promise<void> {
    const closing = this.#closing.signal;
    const started = (async () => entry.daemon.start())();
    entry.starting = started;
    const done = () => {
      if (entry.starting === started) entry.starting = undefined;
    };
    started.then(done, done);
    const ms = this.#startTimeoutMs;
    if (await within(started, NEVER, ms)) return;
    if (!closing.aborted) {
      this.#giveUpOn(
        entry,
        "start",
        `its start() had not finished after ${ms} ms (startTimeoutMs)`,
        {
          startTimeoutMs: ms,
        },
      );
      // Not awaited (stopAll() bounds it): a start that ends late must not leave it running unsupervised.
      void this.#stopDaemon(entry);
    }
    throw new DaemonStartTimeoutError(entry.name, ms);
  }

  async #startEntry(entry: Entry): Promise<void> {
    try {
      await this.#startDaemon(entry);
      this.#logger.info({ daemon: entry.name }, `daemon ${entry.name} started`);
    } catch (error) {
      this.#logger.error(
        { err: error, daemon: entry.name },
        `daemon ${entry.name} failed to start`,
      );
      this.#onFailure(entry, error, "start");
    }
    await this.#writeBeat(entry);
  }

  #onFailure(entry: Entry, error: unknown, phase: "start" | "crash"): void {
    if (this.#closing.signal.aborted) return;
    if (entry.failed) {
      // Given up because its start() did not settle: announced like a daemon out of restarts.
      if (entry.failed === "start" && error instanceof DaemonStartTimeoutError) {
        const signal = AbortSignal.any([this.#closing.signal, entry.cancelRestarts.signal]);
        entry.supervising ??= this.#announceGivenUp(entry, signal).finally(
          () => (entry.supervising = undefined),
        );
      }
      return;
    }
    entry.lastError = messageOf(error);
    if (phase === "crash") {
      const sinceRestart =
        entry.restartedAt === undefined ? Infinity : Date.now() - entry.restartedAt;
      // Crashing again soon after a restart means that restart did not help.
      if (sinceRestart < this.#stableAfterMs) entry.failedRestarts++;
      else entry.failedRestarts = 0;
      this.#logger.error({ err: error, daemon: entry.name }, `daemon ${entry.name} crashed`);
      void this.#writeBeat(entry);
    }
    entry.supervising ??= this.#restartLoop(entry).finally(() => (entry.supervising = undefined));
  }

  async #restartLoop(entry: Entry): Promise<void> {
    // Ended by stopAll() or by a manual restart(name), whichever comes first.
    const closing = AbortSignal.any([this.#closing.signal, entry.cancelRestarts.signal]);
    for (;;) {
      if (closing.aborted) return;
      if (entry.failedRestarts >= this.#maxRestartAttempts) return this.#giveUp(entry, closing);
      const delay = backoffDelay(entry.failedRestarts + 1, this.#backoff);
      this.#logger.warn(
        { daemon: entry.name, delayMs: delay, failedRestarts: entry.failedRestarts },
        `restarting daemon ${entry.name} in ${delay} ms`,
      );
      try {
        await sleep(delay, { signal: closing });
        // Checked in the same turn as start(): stopAll() either came first, or its stop() will
        // abort this start.
        if (closing.aborted) return;
        await this.#startDaemon(entry);
      } catch (error) {
        if (closing.aborted) return;
        // Given up on by #startDaemon: its start() did not settle within startTimeoutMs.
        if (entry.failed) return this.#announceGivenUp(entry, closing);
        entry.failedRestarts++;
        entry.lastError = messageOf(error);
        this.#logger.error(
          { err: error, daemon: entry.name, failedRestarts: entry.failedRestarts },
          `restart ${entry.failedRestarts} of daemon ${entry.name} failed`,
        );
        continue;
      }
      entry.restarts++;
      entry.restartedAt = Date.now();
      this.#restartCounter?.add(1, { "switchyard.daemon": entry.name });
      this.#logger.info(
        { daemon: entry.name, restarts: entry.restarts },
        `daemon ${entry.name} restarted`,
      );
      // Not awaited: this loop must end before the restarted daemon can report its next crash.
      void this.#writeBeat(entry);
      return;
    }
  }

  /** Mark `entry` failed after too many failed restarts, and announce it. */
  async #giveUp(entry: Entry, signal: AbortSignal): Promise<void> {
    entry.failed = "restarts";
    const { name } = entry;
    this.#logger.error(
      { daemon: name, restartAttempts: entry.failedRestarts, error: entry.lastError },
      `daemon ${name} failed permanently after ${entry.failedRestarts} restart attempts; not restarting it again`,
    );
    await this.#announceGivenUp(entry, signal);
  }

  /**
   * Give up on `entry` because its `start()` or `stop()` did not settle in time: the one rule for
   * both timeouts. It is marked `"failed"` (which `list()`, `health()` and heartbeats show), the
   * reason kept as its `lastError`, and an error logged naming it.
   */
  #giveUpOn(
    entry: Entry,
    phase: "start" | "stop",
    why: string,
    details: Record<string, unknown>,
  ): void {
    const { name } = entry;
    entry.failed = phase;
    entry.lastError = cutErrorText(`${name} did not ${phase}: ${why}`);
    this.#logger.error(
      { daemon: name, ...details },
      `daemon ${name} did not ${phase}: ${why}. Given up on: it may still be running and holding ` +
        `resources (its stop() and start() must settle)`,
    );
  }

  /**
   * Write the heartbeat of a daemon given up on and publish `DAEMON_PERMANENTLY_FAILED`; `signal`
   * (stopAll, restart) ends that. Never rejects.
   */
  async #announceGivenUp(entry: Entry, signal: AbortSignal): Promise<void> {
    const { name } = entry;
    const error = entry.lastError ?? "unknown error";
    await this.#writeBeat(entry);
    let publish: (type: string, data: unknown, options?: PublishOptions) => Promise<unknown>;
    try {
      const router = this.#router ?? entry.daemon.router;
      if (!router?.catalog.has(PERMANENTLY_FAILED)) return;
      publish = router.publish.bind(router) as typeof publish;
    } catch (readError) {
      this.#logger.error(
        { err: readError, daemon: name },
        `${PERMANENTLY_FAILED} for ${name} was not published: its router could not be read (${messageOf(readError)})`,
      );
      return;
    }
    try {
      // Bounded by the signal even for a publisher that ignores it: stopAll() never waits on it.
      await untilAborted(
        publish(
          PERMANENTLY_FAILED,
          {
            daemon_name: name,
            restart_attempts: entry.failedRestarts,
            error,
            host: this.#host,
            pid: process.pid,
          },
          { source: this.#source, signal },
        ),
        signal,
      );
    } catch (publishError) {
      this.#logger.error(
        { err: publishError, daemon: name },
        `publishing ${PERMANENTLY_FAILED} for ${name} failed`,
      );
    }
  }

  async #stopAll(): Promise<void> {
    this.#closing.abort();
    const starting = this.#starting;
    this.#starting = undefined;
    const entries = [...this.#entries.values()];
    // stop() also aborts a start still in progress (first start or restart), so nothing here
    // waits on a daemon that cannot start; restart loops end once their sleep is aborted.
    const stuck = new Set(await this.#stopDaemons(entries));
    // What is left only waits on heartbeat writes (bounded) — except what waits on a stuck
    // daemon's start(), which is not waited for.
    const rest = entries.filter((e) => !stuck.has(e)).map((e) => e.supervising);
    const abandon = this.#abandon.signal;
    await within(Promise.all([stuck.size === 0 ? starting : undefined, ...rest]), abandon);
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
    await within(Promise.resolve(this.#beating), abandon);
    await this.heartbeat();
    for (const entry of entries) {
      entry.removeCrashListener?.();
      entry.removeCrashListener = undefined;
    }
  }

  /**
   * Stop the daemons of `entries` all at once and wait until each one's `stop()` — and a
   * `start()` of it still in progress — has settled, for at most `stopTimeoutMs` (less after a
   * second signal in `run()`). The daemons still not stopped are given up on (`"failed"`, logged)
   * and returned.
   */
  async #stopDaemons(entries: readonly Entry[]): Promise<Entry[]> {
    const stopped = new Set<Entry>();
    const all = Promise.all(
      entries.map(async (entry) => {
        await Promise.allSettled([this.#stopDaemon(entry), entry.starting]);
        stopped.add(entry);
      }),
    );
    const ms = this.#stopTimeoutMs;
    const abandon = this.#abandon.signal;
    if (await within(all, abandon, ms)) return [];
    const stuck = entries.filter((e) => !stopped.has(e));
    const why = abandon.aborted
      ? `it was still stopping when ${String(abandon.reason)}; the shutdown did not wait for it`
      : `its stop() had not finished after ${ms} ms (stopTimeoutMs)`;
    for (const entry of stuck) this.#giveUpOn(entry, "stop", why, { stopTimeoutMs: ms });
    return stuck;
  }

  /** `daemon.stop()`, which should never reject; when one does, log it and stop the others anyway. */
  async #stopDaemon(entry: Entry): Promise<void> {
    try {
      await entry.daemon.stop();
    } catch (error) {
      this.#logger.error(
        { err: error, daemon: entry.name },
        `stopping daemon ${entry.name} failed: ${messageOf(error)}. Its stop() must not reject; ` +
          `the other daemons are stopped anyway`,
      );
    }
  }

  /** The daemon's contracts for its heartbeat; left out (with a warning) when `contracts()` throws. */
  #contractsOf(entry: Entry): DaemonContracts | undefined {
    const { daemon } = entry;
    try {
      if (!daemon.contracts) return undefined;
      return daemon.contracts();
    } catch (error) {
      this.#logger.warn(
        { err: error, daemon: entry.name },
        `the contracts of ${entry.name} could not be read for its heartbeat (${messageOf(error)}); ` +
          `the heartbeat is written without them`,
      );
      return undefined;
    }
  }

  /**
   * The daemon's `health()`, or an `unhealthy` result saying what was wrong with it: it threw, or
   * returned something that is not a {@link HealthCheckResult} (`undefined`, a promise — it must
   * answer synchronously — or an object without a boolean `healthy`, a known `status` and a string
   * `message`). Never throws, so one daemon's broken check cannot break the manager's `health()`
   * or the heartbeats of the others.
   */
  #healthOf(entry: Entry): HealthCheckResult {
    const unhealthy = (message: string): HealthCheckResult => ({
      healthy: false,
      status: "unhealthy",
      message: cutErrorText(message),
      details: {},
    });
    let result: unknown;
    let pending: boolean;
    try {
      result = entry.daemon.health();
      pending = isThenable(result);
    } catch (error) {
      return unhealthy(`health() threw: ${messageOf(error)}`);
    }
    if (pending) {
      // Not awaited (health is synchronous); its rejection must not become an unhandled one.
      Promise.resolve(result).catch(() => {});
      return unhealthy(
        "health() returned a promise; it must return its HealthCheckResult synchronously",
      );
    }
    const problem = healthResultProblem(result);
    if (problem !== undefined) {
      return unhealthy(`health() returned ${problem}, not a HealthCheckResult`);
    }
    return result as HealthCheckResult;
  }

  /**
   * Write one heartbeat of `entry`. Never rejects, and waits at most `heartbeatIntervalMs` (not at
   * all once a second signal cut the shutdown short). A field the daemon cannot give — `stats`
   * throws, `startedAt` is no time — is left out (`{}`, `null`) and the problem stated, in the
   * heartbeat's health and in the log: the rest of the heartbeat still goes out.
   */
  async #writeBeat(entry: Entry): Promise<void> {
    const sink = this.#sink;
    if (!sink) return;
    const { daemon, name } = entry;
    const ms = this.#heartbeatIntervalMs;
    const problems: string[] = [];
    let stats: DaemonStats;
    try {
      stats = daemon.stats;
    } catch (error) {
      problems.push(`its stats could not be read (${messageOf(error)})`);
      stats = {} as DaemonStats;
    }
    const startedAt = this.#startedAtOf(daemon, problems);
    const contracts = this.#contractsOf(entry);
    const state = stateOf(entry);
    if (state.problem !== undefined) problems.unshift(state.problem);
    let health = this.#healthOf(entry);
    if (problems.length > 0) {
      const problem = problems.join("; ");
      this.#logger.warn(
        { daemon: name },
        `the heartbeat of ${name} is written without what could not be read: ${problem}`,
      );
      health = {
        healthy: false,
        // A daemon whose state is unknown is not known to work.
        status:
          health.status === "unhealthy" || state.problem !== undefined ? "unhealthy" : "degraded",
        message: cutErrorText(
          health.healthy ? `heartbeat: ${problem}` : `${health.message}; heartbeat: ${problem}`,
        ),
        details: health.details,
      };
    }
    let beat: DaemonHeartbeat;
    try {
      beat = {
        daemon: name,
        pid: process.pid,
        host: this.#host,
        status: state.status,
        health,
        stats,
        restarts: entry.restarts,
        startedAt,
        at: new Date().toISOString(),
        ...(contracts ? { contracts } : {}),
      };
    } catch (error) {
      this.#logger.warn(
        { err: error, daemon: name },
        `the heartbeat of ${name} could not be put together: ${messageOf(error)}`,
      );
      return;
    }
    try {
      const written = (async () => sink.write(beat))();
      if (!(await within(written, this.#abandon.signal, ms)) && !this.#abandon.signal.aborted) {
        this.#logger.warn(
          { daemon: name, heartbeatIntervalMs: ms },
          `writing the heartbeat of ${name} did not finish within ${ms} ms; not waiting for it ` +
            `(check the heartbeat sink)`,
        );
      }
    } catch (error) {
      this.#logger.warn(
        { err: error, daemon: name },
        `writing the heartbeat of ${name} failed: the heartbeat sink rejected it (${messageOf(error)})`,
      );
    }
  }

  /** The daemon's `startedAt` as ISO text for its heartbeat; `null` (and a problem) when it is no time. */
  #startedAtOf(daemon: Daemon, problems: string[]): string | null {
    let startedAt: unknown;
    try {
      startedAt = daemon.startedAt;
    } catch (error) {
      problems.push(`its startedAt could not be read (${messageOf(error)})`);
      return null;
    }
    if (startedAt === null) return null;
    const date = typeof startedAt === "number" ? new Date(startedAt) : undefined;
    if (date === undefined || Number.isNaN(date.getTime())) {
      problems.push(
        `its startedAt is ${messageOf(startedAt)}, not a time in ms since the epoch (or null)`,
      );
      return null;
    }
    return date.toISOString();
  }
}

/**
 * Whether `promise` settled (fulfilled) before `signal` aborted and, with `ms`, before `ms` passed;
 * `false` otherwise (at once when `signal` is aborted already). A rejection of `promise` is passed
 * on. Its timer and listener are removed either way, so nothing is left behind.
 */
async function within(
  promise: Promise<unknown>,
  signal: AbortSignal,
  ms?: number,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const given = new Promise<false>((resolve) => {
    onAbort = () => resolve(false);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    if (ms !== undefined) timer = setTimeout(onAbort, ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), given]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener("abort", onAbort);
  }
}

const HEALTH_STATUSES: readonly unknown[] = ["healthy", "degraded", "unhealthy"];

/** What is wrong with a value `health()` returned, or `undefined` when it is a HealthCheckResult. */
function healthResultProblem(value: unknown): string | undefined {
  if (value === null || value === undefined) return String(value);
  if (typeof value === "function") return "a function";
  if (typeof value !== "object") return `a ${typeof value} (${messageOf(value)})`;
  try {
    const { healthy, status, message, details } = value as Record<string, unknown>;
    if (typeof healthy !== "boolean") return `healthy: ${messageOf(healthy)} (not a boolean)`;
    if (!HEALTH_STATUSES.includes(status)) {
      return `status: ${messageOf(status)} (not "healthy", "degraded" or "unhealthy")`;
    }
    if (typeof message !== "string") return `message: ${messageOf(message)} (not a string)`;
    if (typeof details !== "object" || details === null) {
      return `details: ${messageOf(details)} (not an object)`;
    }
    return undefined;
  } catch {
    return "an object whose fields cannot be read";
  }
}

/** What makes `value` no {@link Daemon}, or `undefined` when it is one. */
function daemonProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return `got ${messageOf(value)}`;
  try {
    const daemon = value as Record<string, unknown>;
    if (typeof daemon.name !== "string" || daemon.name.trim() === "") {
      return `got one named ${messageOf(daemon.name)}`;
    }
    const missing = ["start", "stop", "health", "onCrash"].filter(
      (method) => typeof daemon[method] !== "function",
    );
    if (missing.length > 0) {
      return `${JSON.stringify(daemon.name)} has no ${missing.map((m) => `${m}()`).join(", ")}`;
    }
    return undefined;
  } catch {
    return "got one whose fields cannot be read";
  }
}

/** Every entry is a signal name a listener can be added for; else the offending value. */
function signalsProblem(signals: unknown): unknown {
  if (!Array.isArray(signals)) return signals;
  for (const signal of signals) {
    if (typeof signal !== "string" || !Object.hasOwn(osConstants.signals, signal)) return signal;
    if (signal === "SIGKILL" || signal === "SIGSTOP") return signal;
  }
  return undefined;
}

const DAEMON_STATUSES: readonly unknown[] = [
  "stopped",
  "starting",
  "running",
  "stopping",
  "crashed",
] satisfies DaemonStatus[];

/**
 * The state of `entry` as the manager reports it: `"failed"` once given up on, else the daemon's
 * own `status`. Never throws: a `status` getter that throws, or gives something that is not a
 * {@link DaemonStatus}, is reported as `"crashed"` (its state is unknown, so it is not known to
 * run) with the `problem` stated.
 */
function stateOf(entry: Entry): { status: DaemonRunState; problem?: string } {
  if (entry.failed) return { status: "failed" };
  let status: unknown;
  try {
    status = entry.daemon.status;
  } catch (error) {
    return { status: "crashed", problem: `its status could not be read (${messageOf(error)})` };
  }
  if (DAEMON_STATUSES.includes(status)) return { status: status as DaemonStatus };
  const shown = typeof status === "string" ? JSON.stringify(status) : messageOf(status);
  return {
    status: "crashed",
    problem: `its status is ${shown}, not one of ${DAEMON_STATUSES.map((s) => JSON.stringify(s)).join(", ")}`,
  };
}

/** Node fires a timer longer than {@link MAX_TIMER_MS} after 1 ms instead. */
const TIMER_MS = `at most ${MAX_TIMER_MS} ms (about 24.8 days, the longest a timer waits)`;

/** A timeout option (`stopTimeoutMs`, `startTimeoutMs`), or {@link DaemonOptionsError} naming it. */
function timeoutOption(option: string, value: unknown): number {
  if (typeof value !== "number" || !(value > 0)) {
    throw new DaemonOptionsError("DaemonManager", option, "a positive number of ms", value);
  }
  if (!(value <= MAX_TIMER_MS))
    throw new DaemonOptionsError("DaemonManager", option, TIMER_MS, value);
  return value;
}

/** A signal that never aborts: for a wait bounded by its timeout alone. */
const NEVER = new AbortController().signal;
