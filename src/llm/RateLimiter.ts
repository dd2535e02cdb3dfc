/**
 * A backend's rate limits — requests per minute and tokens per minute — as token buckets that
 * delay a request rather than fail it.
 *
 * Each bucket holds up to one minute's allowance (providers count per minute, so a burst of a
 * minute's worth is what they accept) and refills continuously. A request reserves its share
 * at once, even when that takes the bucket below zero, and sleeps until the refill has covered
 * the debt: later requests find a deeper debt and sleep longer, so waiting requests go in the
 * order they came without a queue. A reservation larger than the bucket is cut to the bucket
 * (it would otherwise wait forever).
 *
 * Tokens are estimated before the call and corrected after it with the real count (`settle`):
 * an overestimate is given back, an underestimate taken on top. A request interrupted while it
 * waits gives its reservation back.
 */
import { Clock, Effect } from "effect"

export class TokenBucket {
  private level: number
  private updated: number
  private readonly perMs: number

  constructor(readonly perMinute: number, now: number) {
    this.level = perMinute
    this.updated = now
    this.perMs = perMinute / 60_000
  }

  private refill(now: number) {
    if (now > this.updated) {
      this.level = Math.min(this.perMinute, this.level + (now - this.updated) * this.perMs)
      this.updated = now
    }
  }

  /** Takes `amount` (at most a full bucket); the milliseconds to wait until it is covered. */
  reserve(amount: number, now: number): { readonly taken: number; readonly waitMs: number } {
    this.refill(now)
    const taken = Math.min(Math.max(0, amount), this.perMinute)
    this.level -= taken
    return { taken, waitMs: this.level >= 0 ? 0 : Math.ceil(-this.level / this.perMs) }
  }

  /** Gives back (positive) or takes more (negative) after the fact. */
  adjust(amount: number, now: number) {
    this.refill(now)
    this.level = Math.min(this.perMinute, this.level + amount)
  }

  /** What is available now (negative: owed). */
  available(now: number): number {
    this.refill(now)
    return this.level
  }
}

export interface Reservation {
  /** Tokens reserved on the tokens-per-minute bucket (0 without one). */
  readonly tokens: number
}

export interface RateLimiter {
  /** Waits until a request estimated at `tokens` may go. */
  readonly acquire: (tokens: number) => Effect.Effect<Reservation>
  /** After the request: `actualTokens` replaces the estimate (0 when it used none). */
  readonly settle: (reservation: Reservation, actualTokens: number) => Effect.Effect<void>
}

export const unlimited: RateLimiter = {
  acquire: () => Effect.succeed({ tokens: 0 }),
  settle: () => Effect.void
}

export const makeRateLimiter = (limits: {
  readonly requestsPerMinute?: number | undefined
  readonly tokensPerMinute?: number | undefined
}): Effect.Effect<RateLimiter> =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    if (limits.requestsPerMinute === undefined && limits.tokensPerMinute === undefined) return unlimited
    const requests = limits.requestsPerMinute === undefined ? undefined : new TokenBucket(limits.requestsPerMinute, now)
    const tokens = limits.tokensPerMinute === undefined ? undefined : new TokenBucket(limits.tokensPerMinute, now)
    return {
      acquire: (estimate) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const r = requests?.reserve(1, now)
          const t = tokens?.reserve(estimate, now)
          const reservation: Reservation = { tokens: t?.taken ?? 0 }
          const waitMs = Math.max(r?.waitMs ?? 0, t?.waitMs ?? 0)
          if (waitMs === 0) return Effect.succeed(reservation)
          return Effect.sleep(waitMs).pipe(
            Effect.as(reservation),
            Effect.onInterrupt(() =>
              Effect.flatMap(Clock.currentTimeMillis, (now) =>
                Effect.sync(() => {
                  requests?.adjust(r?.taken ?? 0, now)
                  tokens?.adjust(t?.taken ?? 0, now)
                })))
          )
        }),
      settle: (reservation, actual) =>
        tokens === undefined
          ? Effect.void
          : Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => tokens.adjust(reservation.tokens - actual, now)))
    }
  })
