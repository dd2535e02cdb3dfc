/**
 * When to retry a request on the same backend, as an Effect `Schedule` over the attempt's
 * failure (`Effect.retry(attempt, retrySchedule(policy))`).
 *
 * - Only `retryable` failures recur (429, 5xx, 408/409, timeouts, dropped connections); a
 *   refused request or a stream broken after output started stops at once.
 * - At most `retries` recurrences.
 * - Exponential backoff with "equal jitter": the n-th retry waits between half and all of
 *   `base · 2^(n-1)` (capped at `max`). Half fixed, so a retry never comes right back at a
 *   struggling server; half random (Effect's `Random`), so callers that failed together do
 *   not retry together.
 * - A Retry-After from the provider is honoured, up to `retryAfterMax`: the wait is the
 *   longer of the two. A provider asking for more than the cap gets the cap — and, should it
 *   still be busy then, the backend's remaining retries and then the next backend.
 */
import { Duration, Effect, Random, Schedule } from "effect"
import type { AttemptFailed } from "./LlmFailure.js"

export interface RetryPolicy {
  /** Retries after the first attempt. */
  readonly retries: number
  readonly base: Duration.DurationInput
  readonly max: Duration.DurationInput
  readonly retryAfterMax: Duration.DurationInput
}

/** Equal jitter: half the delay fixed, half random. */
const equalJitter = (delay: Duration.Duration) =>
  Effect.map(Random.next, (r) => {
    const ms = Duration.toMillis(delay)
    return Duration.millis(ms / 2 + (r * ms) / 2)
  })

/**
 * Outputs the number of retries so far; its input is the failure that was just seen.
 */
export const retrySchedule = (policy: RetryPolicy): Schedule.Schedule<number, AttemptFailed> => {
  const max = Duration.decode(policy.max)
  const retryAfterMax = Duration.decode(policy.retryAfterMax)
  const backoff = Schedule.exponential(policy.base, 2).pipe(
    Schedule.modifyDelay((_, delay) => Duration.min(delay, max)),
    Schedule.modifyDelayEffect((_, delay) => equalJitter(delay))
  )
  return Schedule.identity<AttemptFailed>().pipe(
    Schedule.whileInput((failure: AttemptFailed) => failure.kind === "retryable"),
    Schedule.intersect(backoff),
    Schedule.intersect(Schedule.recurs(policy.retries)),
    Schedule.modifyDelay(([[failure]], delay) =>
      failure.retryAfterMs === undefined
        ? delay
        : Duration.max(delay, Duration.min(Duration.millis(failure.retryAfterMs), retryAfterMax))
    ),
    Schedule.map(([, retries]) => retries + 1)
  )
}
