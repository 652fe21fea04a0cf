/**
 * When occurrences of an event type should alert an operator, as data the CLI evaluates:
 * `{ kind: "any" }` — any occurrence; `{ kind: "rate", moreThan: 3, withinMs: 3_600_000 }` —
 * more than 3 within one hour.
 */
export type AlertRule =
  | { readonly kind: "any" }
  | { readonly kind: "rate"; readonly moreThan: number; readonly withinMs: number };

/** The outcome of {@link evaluateAlertRule}. */
export interface AlertEvaluation {
  /** Whether the rule fires. */
  readonly firing: boolean;
  /** Occurrences counted inside the rule's window. */
  readonly count: number;
  /** The rule in words, e.g. `"more than 3 in 1 hour"`. */
  readonly rule: string;
}

/**
 * Evaluate a rule over occurrence times (Unix ms). For `"any"` every given occurrence counts,
 * so pass the window you care about; for `"rate"` only those within `withinMs` of `now` count.
 */
export function evaluateAlertRule(
  rule: AlertRule,
  occurrences: readonly number[],
  now: number = Date.now(),
): AlertEvaluation {
  switch (rule.kind) {
    case "any":
      return {
        firing: occurrences.length > 0,
        count: occurrences.length,
        rule: describeAlertRule(rule),
      };
    case "rate": {
      const since = now - rule.withinMs;
      const count = occurrences.filter((t) => t > since && t <= now).length;
      return { firing: count > rule.moreThan, count, rule: describeAlertRule(rule) };
    }
  }
}

/** A rule in words: `"any occurrence"`, `"more than 3 in 1 hour"`. */
export function describeAlertRule(rule: AlertRule): string {
  switch (rule.kind) {
    case "any":
      return "any occurrence";
    case "rate":
      return `more than ${rule.moreThan} in ${formatDuration(rule.withinMs)}`;
  }
}

function formatDuration(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, "day"],
    [3_600_000, "hour"],
    [60_000, "minute"],
    [1000, "second"],
  ];
  for (const [size, name] of units) {
    if (ms >= size && ms % size === 0) {
      const n = ms / size;
      return `${n} ${name}${n === 1 ? "" : "s"}`;
    }
  }
  return `${ms} ms`;
}
