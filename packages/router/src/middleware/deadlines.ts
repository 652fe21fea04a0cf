/** Something due at `deadline` (a `performance.now()` reading) unless `settled` first. */
export interface Due {
  readonly deadline: number;
  settled: boolean;
}

/**
 * Deadlines that are added in the order they fall due (each `performance.now()` plus one fixed
 * number of ms), served by a single timer armed for the oldest instead of a timer per entry.
 * An entry due and not settled is marked settled and handed to `expire`. Settled entries are
 * dropped as the head passes them: each may hold a delivery's context until then.
 */
export class DeadlineQueue<T extends Due> {
  #fifo: (T | undefined)[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly expire: (entry: T) => void) {}

  add(entry: T): void {
    this.#fifo.push(entry);
    this.#arm();
  }

  #compact(): void {
    const fifo = this.#fifo;
    while (this.#head < fifo.length && fifo[this.#head]!.settled) fifo[this.#head++] = undefined;
    if (this.#head === fifo.length) {
      fifo.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > fifo.length) {
      fifo.splice(0, this.#head);
      this.#head = 0;
    }
  }

  #arm(): void {
    this.#compact();
    if (this.#timer || this.#head >= this.#fifo.length) return;
    const due = this.#fifo[this.#head]!.deadline;
    this.#timer = setTimeout(this.#fire, Math.max(0, due - performance.now()));
    this.#timer.unref();
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    this.#compact();
    const fifo = this.#fifo;
    while (this.#head < fifo.length && fifo[this.#head]!.deadline <= now) {
      const entry = fifo[this.#head]!;
      fifo[this.#head++] = undefined;
      if (entry.settled) continue;
      entry.settled = true;
      this.expire(entry);
    }
    this.#arm();
  };
}
