// Child processes running TypeScript sources through tsx, with IPC and a deadline on every wait.
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const workerFile = fileURLToPath(new URL("./worker.ts", import.meta.url));

/** A message between the benchmark and a worker process: `type` says what it is. */
export interface Message {
  readonly type: string;
  readonly [key: string]: unknown;
}

/**
 * One worker process (`src/worker.ts`) in a given role. Every wait has a deadline: a worker that
 * does not answer in time is killed and the wait rejects, so a run never hangs.
 */
export class Worker {
  readonly #child: ChildProcess;
  readonly #inbox: Message[] = [];
  #waiting: (() => void) | undefined;
  #exit: string | undefined;

  constructor(role: string, args: Record<string, unknown>) {
    const profileDir = process.env.BENCH_CPU_PROF;
    this.#child = fork(workerFile, [role, JSON.stringify(args)], {
      cwd: root,
      execArgv: [
        "--import",
        "tsx",
        ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []),
      ],
      env: { ...process.env, TSX_TSCONFIG_PATH: `${root}tsconfig.base.json` },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.#child.on("message", (m: Message) => {
      this.#inbox.push(m);
      this.#waiting?.();
    });
    this.#child.on("exit", (code, signal) => {
      this.#exit = `worker ${role} exited (${signal ?? code})`;
      this.#waiting?.();
    });
  }

  send(message: Message): void {
    this.#child.send(message);
  }

  /** The next message of `type` (earlier messages of other types are dropped). */
  async next<T extends Message = Message>(type: string, timeoutMs: number): Promise<T> {
    const m = await this.tryNext<T>(type, timeoutMs);
    if (m) return m;
    this.kill();
    throw new Error(`worker did not send "${type}" within ${timeoutMs} ms`);
  }

  /** Like {@link next}, but `undefined` after `timeoutMs` instead of killing the worker. */
  async tryNext<T extends Message = Message>(
    type: string,
    timeoutMs: number,
  ): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#inbox.findIndex((m) => m.type === type || m.type === "error");
      if (i >= 0) {
        const [m] = this.#inbox.splice(0, i + 1).slice(-1);
        if (m!.type === "error") throw new Error(`worker failed: ${String(m!.message)}`);
        return m as T;
      }
      if (this.#exit) throw new Error(`${this.#exit} while waiting for "${type}"`);
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiting = undefined;
    }
  }

  /** Ask the worker to finish (it answers `type`, then exits); kill it if it does not. */
  async finish<T extends Message = Message>(type: string, timeoutMs: number): Promise<T> {
    this.send({ type: "stop" });
    try {
      return await this.next<T>(type, timeoutMs);
    } finally {
      await this.exited(5_000);
    }
  }

  async exited(timeoutMs: number): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.#child.once("exit", () => resolve()));
    const timer = setTimeout(() => this.kill(), timeoutMs);
    await gone;
    clearTimeout(timer);
  }

  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null)
      this.#child.kill("SIGKILL");
  }
}
