import { type FSWatcher, watch } from "node:fs";
import type Database from "better-sqlite3";
import type { Logger } from "@switchyard/transport";
import { isBusy } from "./errors";
import { timerDelay } from "./timers";

/** Options of {@link Poller}. */
export interface PollerOptions {
  /** Fallback check interval right after a change. */
  readonly minIntervalMs: number;
  /** Fallback check interval when idle (the interval doubles up to this). */
  readonly maxIntervalMs: number;
  /** Watch the `-wal` file for commits of other processes (inotify on Linux). */
  readonly watch: boolean;
}

/** What a poller did, for tests and diagnostics. */
export interface PollerCounters {
  /** `PRAGMA data_version` checks run (cheap: no table is read). */
  checks: number;
  /** Checks that found a change and woke the subscriptions. */
  changes: number;
  /** File-system notifications received. */
  notifications: number;
}

/** Timed follow-up checks after a file notification that did not show a commit yet. */
const RECHECK_DELAYS_MS = [1, 4];

/** Pollers of this process by database file, so a local publish wakes them without a file event. */
const local = new Map<string, Set<Poller>>();

/**
 * Wakes subscriptions when another connection commits, without busy polling:
 * - `fs.watch` on the `-wal` file wakes this process within a millisecond of another process's
 *   commit (coalesced: one check however many notifications arrive);
 * - a publish in this process wakes every poller of the same file directly;
 * - a fallback timer checks `PRAGMA data_version` (which changes only when *another* connection
 *   committed), backing off from `minIntervalMs` to `maxIntervalMs` while nothing changes, so an
 *   idle subscriber costs one trivial query per second. The fallback also covers file systems
 *   where notifications do not work.
 */
export class Poller {
  readonly counters: PollerCounters = { checks: 0, changes: 0, notifications: 0 };
  readonly #file: string;
  readonly #options: PollerOptions;
  readonly #onChange: (types?: ReadonlySet<string>) => void;
  readonly #logger: Logger;
  readonly #dataVersion: Database.Statement;
  #version: number;
  #interval: number;
  #timer: NodeJS.Timeout | undefined;
  #watcher: FSWatcher | undefined;
  #checkQueued = false;
  #recheckTimer: NodeJS.Timeout | undefined;
  /** When {@link #recheckTimer} fires (`performance.now()`). */
  #recheckDue = 0;
  #running = false;

  constructor(
    db: Database.Database,
    file: string,
    options: PollerOptions,
    onChange: (types?: ReadonlySet<string>) => void,
    logger: Logger,
  ) {
    this.#file = file;
    this.#options = options;
    this.#onChange = onChange;
    this.#logger = logger;
    this.#dataVersion = db.prepare("PRAGMA data_version").pluck();
    this.#version = this.#read() ?? -1;
    this.#interval = options.minIntervalMs;
  }

  /** Whether the poller runs (it does while its transport has subscriptions). */
  get running(): boolean {
    return this.#running;
  }

  /** Whether commits of other processes arrive as file notifications (else only the fallback poll). */
  get watching(): boolean {
    return this.#watcher !== undefined;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    let peers = local.get(this.#file);
    if (!peers) local.set(this.#file, (peers = new Set()));
    peers.add(this);
    if (this.#options.watch) this.#watch();
    this.#interval = this.#options.minIntervalMs;
    this.#schedule();
  }

  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    const peers = local.get(this.#file);
    peers?.delete(this);
    if (peers?.size === 0) local.delete(this.#file);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    clearTimeout(this.#recheckTimer);
    this.#recheckTimer = undefined;
    this.#watcher?.close();
    this.#watcher = undefined;
  }

  /** Tell every running poller of `file` in this process that these events were published here. */
  static wakeLocal(file: string, events: readonly { readonly type: string }[]): void {
    const peers = local.get(file);
    if (!peers) return;
    const types = new Set(events.map((e) => e.type));
    for (const p of peers) p.#onChange(types);
  }

  #watch(): void {
    try {
      const watcher = watch(`${this.#file}-wal`, { persistent: false }, () => this.notified());
      watcher.on("error", (error) => {
        this.#logger.warn(
          { err: error, file: this.#file },
          "watching the WAL file failed; falling back to polling",
        );
        if (this.#watcher === watcher) this.#watcher = undefined;
        watcher.close();
      });
      this.#watcher = watcher;
    } catch (error) {
      this.#logger.warn(
        { err: error, file: this.#file },
        "cannot watch the WAL file; falling back to polling",
      );
    }
  }

  /**
   * A file notification: check once, on the next turn of the event loop (however many arrived
   * meanwhile). The WAL is written a moment before the commit becomes visible (the wal-index header
   * is updated after the last frame), so a check may see nothing yet: the commit's later writes
   * notify again, and short timers look once more. No spinning on `setImmediate` meanwhile: traced
   * at 500 events/s across two processes, the first check saw the commit 4,670 times in 5,000,
   * spinning found 10 more (after 40–177 turns), and 317 spins ran their 0.3 ms for nothing —
   * busy on a core the committing process needed to finish its commit. Called by the watcher
   * (public for the poller's tests only: the class is internal to the package).
   */
  notified(): void {
    this.counters.notifications++;
    if (this.#checkQueued || !this.#running) return;
    this.#checkQueued = true;
    setImmediate(() => {
      this.#checkQueued = false;
      if (this.#running && !this.#check()) this.#recheck(0);
    });
  }

  /**
   * Look again `RECHECK_DELAYS_MS[attempt]` from now. A fresh notification (attempt 0) restarts
   * the sequence when the pending look is further away: a 4 ms look left over from an earlier
   * notification (our own commit's, most often) must not stand in for the 1 ms look a new commit
   * needs — traced at 500 events/s, that made a commit whose last WAL write came just before it
   * became visible wait for the next event's notifications, 2 ms and more.
   */
  #recheck(attempt: number): void {
    if (attempt >= RECHECK_DELAYS_MS.length) return;
    const delay = RECHECK_DELAYS_MS[attempt]!;
    const due = performance.now() + delay;
    if (this.#recheckTimer) {
      if (this.#recheckDue <= due) return;
      clearTimeout(this.#recheckTimer);
    }
    this.#recheckDue = due;
    this.#recheckTimer = setTimeout(() => {
      this.#recheckTimer = undefined;
      if (this.#running && !this.#check()) this.#recheck(attempt + 1);
    }, delay);
  }

  /** `PRAGMA data_version`, or undefined when the read failed (busy: the next check sees it). */
  #read(): number | undefined {
    try {
      return this.#dataVersion.get() as number;
    } catch (error) {
      if (!isBusy(error))
        this.#logger.error(
          { err: error, file: this.#file },
          "checking the queue for changes failed",
        );
      return undefined;
    }
  }

  /** Returns whether another connection committed since the last check. */
  #check(): boolean {
    this.counters.checks++;
    const version = this.#read();
    if (version === undefined || version === this.#version) return false;
    this.#version = version;
    this.#changed();
    return true;
  }

  #changed(): void {
    this.counters.changes++;
    if (this.#interval !== this.#options.minIntervalMs) {
      // Activity: check often again for a while (cheap), in case notifications are not delivered.
      this.#interval = this.#options.minIntervalMs;
      this.#schedule();
    }
    this.#onChange();
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const changed = this.#check();
      this.#interval = changed
        ? this.#options.minIntervalMs
        : Math.min(this.#options.maxIntervalMs, this.#interval * 2);
      this.#schedule();
    }, timerDelay(this.#interval));
  }
}
