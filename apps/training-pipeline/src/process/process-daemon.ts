// A daemon that is a whole OS process: the supervisor's DaemonManager starts, stops and restarts
// it like any in-process daemon. Crash = the process exited without being asked to.
import { type ChildProcess, spawn } from "node:child_process";
import type { WriteStream } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Daemon, DaemonStats, DaemonStatus } from "@switchyard/handler-base";
import type { HealthCheckResult } from "@switchyard/router";
import { type PipelineSettings, settingsEnv } from "../settings";

const root = fileURLToPath(new URL("../../../../", import.meta.url));
const entry = fileURLToPath(new URL("./daemon-main.ts", import.meta.url));

const noStats: DaemonStats = {
  eventsProcessed: 0,
  eventsDeduplicated: 0,
  successCount: 0,
  errorsCount: 0,
  successRate: 1,
  lastActivity: null,
  cyclesRun: 0,
  cycleFailures: 0,
  consecutiveCycleFailures: 0,
  eventsEmitted: 0,
  emitFailures: 0,
  consecutiveEmitFailures: 0,
};

/** How a {@link ProcessDaemon} starts and stops its process. */
export interface ProcessDaemonOptions {
  /**
   * How long the process has to report `{ type: "ready" }` over IPC. A process that misses it is
   * killed (SIGTERM, then SIGKILL after `killGraceMs`) and `start()` rejects, so a slow start
   * never leaves a second copy of the daemon working beside the one the manager starts next.
   * @defaultValue 60_000
   */
  readonly readyTimeoutMs?: number;
  /**
   * How long a process that missed its ready timeout gets to exit on SIGTERM before SIGKILL.
   * @defaultValue 2_000
   */
  readonly killGraceMs?: number;
  /**
   * The process's arguments after the Node executable.
   * @defaultValue `["--import", "tsx", <daemon-main.ts>, name]`
   */
  readonly args?: readonly string[];
}

export class ProcessDaemon implements Daemon {
  #status: DaemonStatus = "stopped";
  #startedAt: number | null = null;
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #crashListeners = new Set<(error: Error) => void>();
  #stopping = false;
  /** Times this daemon's process was started. */
  starts = 0;

  constructor(
    readonly name: string,
    private readonly settings: PipelineSettings,
    private readonly log: WriteStream,
    private readonly options: ProcessDaemonOptions = {},
  ) {}

  get status(): DaemonStatus {
    return this.#status;
  }

  get startedAt(): number | null {
    return this.#startedAt;
  }

  /** The process's counters live in its heartbeats (`switchyard health`); the supervisor keeps none. */
  get stats(): DaemonStats {
    return noStats;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): Promise<void> {
    if (this.#status === "running") return Promise.resolve();
    this.#status = "starting";
    this.#stopping = false;
    this.starts++;
    const child = spawn(
      process.execPath,
      [...(this.options.args ?? ["--import", "tsx", entry, this.name])],
      {
        cwd: root,
        env: {
          ...process.env,
          ...settingsEnv(this.settings),
          TSX_TSCONFIG_PATH: `${root}tsconfig.base.json`,
        },
        stdio: ["ignore", "ignore", "pipe", "ipc"],
      },
    );
    this.#child = child;
    child.stderr?.pipe(this.log, { end: false });
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    const readyTimeoutMs = this.options.readyTimeoutMs ?? 60_000;
    return new Promise<void>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        // Kill it before rejecting: the manager's restart spawns a replacement, and a child left
        // running would do the same work beside it as an orphan nobody ever stops.
        timedOut = true;
        this.#terminate(child);
        reject(new Error(`${this.name} did not report ready within ${readyTimeoutMs} ms`));
      }, readyTimeoutMs);
      child.on("message", (message: { type?: string }) => {
        // A late "ready" from a child that timed out (and is being killed) or was replaced.
        if (message.type !== "ready" || timedOut || this.#child !== child) return;
        clearTimeout(timer);
        this.#status = "running";
        this.#startedAt = Date.now();
        resolve();
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        // A replaced child's exit says nothing about the current one.
        if (this.#child !== child) return;
        const wasRunning = this.#status === "running";
        this.#status = this.#stopping ? "stopped" : "crashed";
        this.#startedAt = null;
        if (!wasRunning)
          return reject(
            new Error(`${this.name} exited before it was ready (code ${code}, signal ${signal})`),
          );
        if (!this.#stopping) {
          const error = new Error(
            `${this.name} (pid ${child.pid}) exited unexpectedly (code ${code}, signal ${signal})`,
          );
          for (const listener of this.#crashListeners) listener(error);
        }
      });
    });
  }

  /** SIGTERM, then SIGKILL if the process has not exited after the grace period. */
  #terminate(child: ChildProcess): void {
    this.#status = "crashed";
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), this.options.killGraceMs ?? 2_000);
    child.once("exit", () => clearTimeout(killer));
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || this.#status === "stopped" || this.#status === "crashed") return;
    this.#stopping = true;
    this.#status = "stopping";
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await this.#exited;
    clearTimeout(killer);
    this.#status = "stopped";
  }

  /** Kill the process without warning (to show a crash and its restart). */
  kill(): void {
    this.#child?.kill("SIGKILL");
  }

  health(): HealthCheckResult {
    const healthy = this.#status === "running";
    return {
      healthy,
      status: healthy ? "healthy" : "unhealthy",
      message: `${this.name} process ${this.#status}${this.pid ? ` (pid ${this.pid})` : ""}`,
      details: { pid: this.pid ?? null, starts: this.starts },
    };
  }

  onCrash(listener: (error: Error) => void): () => void {
    this.#crashListeners.add(listener);
    return () => this.#crashListeners.delete(listener);
  }
}
