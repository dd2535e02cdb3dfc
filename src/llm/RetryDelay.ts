/**
 * How long to wait before retrying a request on the same backend.
 *
 * Exponential backoff with "equal jitter": the n-th retry waits between half and all of
 * `base · 2^(n-1)` (capped at `max`). Half fixed, so a retry never comes right back at a
 * struggling server; half random, so callers that failed together do not retry together.
 *
 * A Retry-After from the provider is honoured, up to `retryAfterMax`: the wait is the longer
 * of the two. A provider asking for more than the cap gets the cap — and, should it still be
 * busy then, the backend's remaining retries and then the next backend.
 */

export interface RetryDelayOptions {
  /** 1 for the first retry. */
  readonly retry: number
  readonly baseMs: number
  readonly maxMs: number
  readonly retryAfterMs: number | undefined
  readonly retryAfterMaxMs: number
  /** A number in [0, 1). */
  readonly random: number
}

export const backoffMillis = (retry: number, baseMs: number, maxMs: number, random: number): number => {
  const exponential = Math.min(maxMs, baseMs * 2 ** Math.max(0, retry - 1))
  return exponential / 2 + (random * exponential) / 2
}

export const retryDelayMillis = (o: RetryDelayOptions): number => {
  const backoff = backoffMillis(o.retry, o.baseMs, o.maxMs, o.random)
  return o.retryAfterMs === undefined ? backoff : Math.max(backoff, Math.min(o.retryAfterMs, o.retryAfterMaxMs))
}
