import type { Output } from "./output";

/**
 * Rows another program wrote or someone edited by hand can hold JSON that does not parse. The
 * readers (`listSubscribers`, `listHeartbeats`, `traceEvent` of `@switchyard/cross-process-queue`)
 * return such a row with a `damaged` reason instead of throwing; a stored event whose columns
 * cannot be decoded carries the same in `payloadError`. Every command shows the row marked
 * {@link DAMAGED}, keeps the reason in its `--json` output, lists the reasons after its table
 * ({@link reportDamaged}) and carries on with the other rows.
 */

/** Anything a reader may return as damaged. */
export interface MaybeDamaged {
  readonly damaged?: string;
  /** A stored event's name for the same (`StoredEvent.payloadError`). */
  readonly payloadError?: string;
}

/** How a damaged row is marked in tables. */
export const DAMAGED = "DAMAGED";

/** Why the row cannot be read as written, or `undefined` when it can. */
export function damageOf(row: MaybeDamaged): string | undefined {
  return row.damaged ?? row.payloadError;
}

/** `text`, marked when the row is damaged: the cell a table shows for it. */
export function markDamaged(text: string | undefined, row: MaybeDamaged): string | undefined {
  if (damageOf(row) === undefined) return text;
  return text === undefined || text === "" ? DAMAGED : `${text} (${DAMAGED})`;
}

/**
 * After a table, for people: one line per damaged row naming it (`label`) and why, so a bad row
 * is seen and the rest of the output still stands. Prints nothing when no row is damaged.
 */
export function reportDamaged<R extends MaybeDamaged>(
  out: Output,
  rows: readonly R[],
  label: (row: R) => string,
): void {
  const damaged = rows.filter((row) => damageOf(row) !== undefined);
  if (damaged.length === 0) return;
  out.line();
  out.line(
    `${damaged.length} damaged ${damaged.length === 1 ? "row" : "rows"} (marked ${DAMAGED}; ` +
      "fixed by whoever wrote them, shown as far as they can be read):",
  );
  for (const row of damaged) out.line(`  ${label(row)}: ${damageOf(row)!}`);
}
