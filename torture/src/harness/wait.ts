/** Resolves after `ms` (pacing only: correctness always waits on a condition with a deadline). */
export const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `check` until it returns true; throws after `timeoutMs`, naming `what`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs: number,
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

/** A random integer in [min, max]. */
export const between = (min: number, max: number): number =>
  min + Math.floor(Math.random() * (max - min + 1));
