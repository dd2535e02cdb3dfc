/**
 * A backend's rate limits — requests per minute and tokens per minute — on Effect's
 * `RateLimiter` (token bucket): a request over the limit is delayed, never failed.
 *
 * Each bucket holds one minute's allowance (providers count per minute, so a burst of a
 * minute's worth is what they accept) and refills continuously.
 *
 * What Effect's limiter does not do, this module adds around it:
 * - Coarser units for large limits. Effect's bucket refills one permit per
 *   `ceil(interval / limit)` ms — never faster than one a millisecond, i.e. 60,000 a minute —
 *   so a 1,000,000-tokens-per-minute limit counted token by token would really allow 60,000.
 *   Above 600 a minute the bucket counts in units of `ceil(limit / 600)` (refilled every
 *   100 ms at most).
 * - Corrections after the fact. Tokens are estimated before the call and known after it
 *   (`settle`); the difference, and the rounding to units, is carried to the backend's next
 *   request: an underestimate makes it wait longer, an overestimate lets it go sooner. At most
 *   one minute's allowance is carried either way (a request larger than the bucket is cut to
 *   the bucket, which it would otherwise wait for forever).
 * - A request interrupted while it waits takes nothing: its share is carried back.
 */
import { Duration, Effect, RateLimiter as Limiter, type Scope } from "effect"

/** The largest number of permits a bucket counts a minute: 100 ms refill steps at most. */
const MAX_PERMITS = 600

/** One per-minute limit on Effect's token bucket, counted in units, with the carry. */
interface Meter {
  readonly take: (amount: number) => Effect.Effect<void>
  readonly correct: (amount: number) => void
}

const makeMeter = (perMinute: number): Effect.Effect<Meter, never, Scope.Scope> =>
  Effect.gen(function*() {
    const unit = Math.max(1, Math.ceil(perMinute / MAX_PERMITS))
    const permits = Math.max(1, Math.floor(perMinute / unit))
    const limiter = yield* Limiter.make({ limit: permits, interval: Duration.minutes(1), algorithm: "token-bucket" })
    const cap = permits * unit
    /** Owed (positive) or paid ahead (negative), in the meter's own measure. */
    let carry = 0
    const clampCarry = (c: number) => Math.max(-cap, Math.min(cap, c))
    return {
      take: (amount) =>
        Effect.suspend(() => {
          const owed = amount + carry
          const units = Math.min(permits, Math.max(0, Math.ceil(owed / unit)))
          carry = clampCarry(owed - units * unit)
          if (units === 0) return Effect.void
          return limiter(Effect.void).pipe(
            Limiter.withCost(units),
            // Not taken: the request neither owes its amount nor paid its units.
            Effect.onInterrupt(() => Effect.sync(() => void (carry = clampCarry(carry + units * unit - amount))))
          )
        }),
      correct: (amount) => void (carry = clampCarry(carry + amount))
    }
  })

export interface RateLimit {
  /** Waits until a request estimated at `tokens` may go. */
  readonly acquire: (tokens: number) => Effect.Effect<void>
  /** After the request: what it really used (0 when it used none) replaces the estimate. */
  readonly settle: (estimatedTokens: number, actualTokens: number) => Effect.Effect<void>
}

export const unlimited: RateLimit = {
  acquire: () => Effect.void,
  settle: () => Effect.void
}

/** The limits of one backend, in the caller's scope (the buckets refill on a fiber of it). */
export const makeRateLimit = (limits: {
  readonly requestsPerMinute?: number | undefined
  readonly tokensPerMinute?: number | undefined
}): Effect.Effect<RateLimit, never, Scope.Scope> =>
  Effect.gen(function*() {
    if (limits.requestsPerMinute === undefined && limits.tokensPerMinute === undefined) return unlimited
    const requests = limits.requestsPerMinute === undefined ? undefined : yield* makeMeter(limits.requestsPerMinute)
    const tokens = limits.tokensPerMinute === undefined ? undefined : yield* makeMeter(limits.tokensPerMinute)
    return {
      acquire: (estimate) =>
        Effect.zipRight(requests === undefined ? Effect.void : requests.take(1), tokens === undefined ? Effect.void : tokens.take(estimate)),
      settle: (estimate, actual) => Effect.sync(() => tokens?.correct(actual - estimate))
    }
  })
