import { backoffProblem } from "./backoff";
import { SwitchyardError, describeType } from "@switchyard/event-schema";
import type { TransportSubscribeOptions } from "./transport";

/** What is wrong with one option: its name (e.g. `"backoff.initialMs"`), its value, what it takes. */
export interface OptionProblem {
  readonly option: string;
  readonly value: unknown;
  readonly expected: string;
}

/**
 * The first option of a {@link TransportSubscribeOptions} that no transport can work with, or
 * `undefined`: the one rule every driver applies in `subscribe()` before it registers anything
 * (each throws it as its own options error). A subscriber name and event types must be given, the
 * handler a function; `concurrency` and `maxAttempts` integers ≥ 1 (a NaN `maxAttempts` would never
 * dead-letter, retrying forever); `leaseMs` an integer ≥ `minLeaseMs` (default 1); `backoff` as
 * {@link backoffProblem} says (a NaN delay makes every retry unschedulable).
 *
 * @example
 * ```ts
 * subscribeOptionsProblem({ subscriber: "trainer", types: ["X"], handler, maxAttempts: 0 });
 * // { option: "maxAttempts", value: 0, expected: "an integer ≥ 1" }
 * ```
 */
export function subscribeOptionsProblem(
  options: TransportSubscribeOptions,
  limits: { readonly minLeaseMs?: number } = {},
): OptionProblem | undefined {
  const o = options as Partial<Record<keyof TransportSubscribeOptions, unknown>>;
  if (!isName(o.subscriber))
    return {
      option: "subscriber",
      value: o.subscriber,
      expected: "a non-empty, stable subscriber name (well-formed Unicode)",
    };
  if (!Array.isArray(o.types) || o.types.length === 0 || !o.types.every(isName))
    return { option: "types", value: o.types, expected: "a non-empty array of event type names" };
  if (typeof o.handler !== "function")
    return { option: "handler", value: o.handler, expected: "a function" };
  const atLeastOne = (v: unknown) => Number.isInteger(v) && (v as number) >= 1;
  if (o.concurrency !== undefined && !atLeastOne(o.concurrency))
    return { option: "concurrency", value: o.concurrency, expected: "an integer ≥ 1" };
  if (o.maxAttempts !== undefined && !atLeastOne(o.maxAttempts))
    return { option: "maxAttempts", value: o.maxAttempts, expected: "an integer ≥ 1" };
  const minLeaseMs = limits.minLeaseMs ?? 1;
  if (
    o.leaseMs !== undefined &&
    !(Number.isInteger(o.leaseMs) && (o.leaseMs as number) >= minLeaseMs)
  )
    return { option: "leaseMs", value: o.leaseMs, expected: `an integer ≥ ${minLeaseMs}` };
  if (o.backoff !== undefined) {
    if (typeof o.backoff !== "object" || o.backoff === null)
      return { option: "backoff", value: o.backoff, expected: "an object of BackoffOptions" };
    const problem = backoffProblem(o.backoff);
    if (problem)
      return {
        option: `backoff.${problem.field}`,
        value: problem.value,
        expected: problem.expected,
      };
  }
  return undefined;
}

/**
 * An option of a transport's `subscribe()` (or of the transport itself) it cannot work with, as
 * {@link subscribeOptionsProblem} found it. Code `TRANSPORT_INVALID_OPTION`; drivers with an options
 * error of their own (the SQLite and NATS ones) throw that instead, with the same option name.
 */
export class TransportOptionsError extends SwitchyardError {
  /** The option's name, e.g. `"maxAttempts"` or `"backoff.initialMs"`. */
  readonly option: string;

  constructor(transport: string, problem: OptionProblem) {
    super(
      "TRANSPORT_INVALID_OPTION",
      `Option ${problem.option} of the ${transport} is ${describeOptionValue(problem.value)}; expected ${problem.expected}.`,
    );
    this.option = problem.option;
  }
}

/**
 * A non-empty string without lone surrogates: a name every store keeps apart from every other
 * name. (Two names differing only in a lone surrogate become the same bytes once UTF-8 encoded —
 * a SQLite column, a NATS consumer, a Prometheus label — and would share one cursor.)
 */
function isName(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && !LONE_SURROGATE.test(value);
}

/** With the `u` flag a pair is one code point, so only an unpaired surrogate matches. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * An option's value as an options error quotes it: strings as JSON (quotes and control
 * characters escaped), numbers, booleans, `null`, `undefined` and bigints as written, anything
 * else by its kind (`"object"`, `"array"`, `"function"`). The one rendering every driver's options
 * error uses.
 *
 * @example
 * ```ts
 * describeOptionValue("1s"); // '"1s"'
 * describeOptionValue(NaN); // "NaN"
 * describeOptionValue([1]); // "array"
 * ```
 */
export function describeOptionValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (
    typeof value === "number" ||
    typeof value === "boolean" ||
    typeof value === "bigint" ||
    value == null
  )
    return String(value);
  return describeType(value);
}
