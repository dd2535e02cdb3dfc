/**
 * SharedLimits: per-backend rate limits and concurrency shared by several processes — the
 * runners of a durable organism (DESIGN.md §11), through Postgres (src/cluster). Optional:
 * the LlmRouter uses it when it is in context, on top of its own per-process limits; the
 * embedded organism has none.
 */
import { Context, type Effect } from "effect"

export declare namespace SharedLimits {
  export interface RateLimits {
    readonly requestsPerMinute?: number | undefined
    readonly tokensPerMinute?: number | undefined
  }

  export interface Service {
    /** Waits (never fails) until the backend's shared budget admits a request of about `tokens`. */
    readonly acquire: (backend: string, limits: RateLimits, tokens: number) => Effect.Effect<void>
    /** Runs `effect` holding one of the backend's `max` slots, shared by every process. */
    readonly withSlot: <A, E, R>(backend: string, max: number, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  }
}

export class SharedLimits extends Context.Tag("xml-organism/SharedLimits")<SharedLimits, SharedLimits.Service>() {}
