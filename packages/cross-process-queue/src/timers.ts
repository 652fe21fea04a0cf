// The timer clamp is the contract's (one rule, one place); re-exported for this package's modules.
export { MAX_TIMER_MS, timerDelay } from "@switchyard/transport";
