/**
 * A client's request to the cluster, again while the connection it wrote on was reset.
 *
 * Why: a runner killed at the moment a client writes to it resets the connection, and
 * @effect/cluster reports that as the socket's `SocketError` (measured: `write ECONNRESET`,
 * once in a run of the crash test) instead of `RunnerUnavailable`, which it retries itself
 * until another runner takes the shard. Executing the same envelope again is the same
 * conversation (its id is the envelope's), so sending again is safe; anything else fails as
 * before.
 */
import * as Socket from "@effect/platform/Socket"
import { Cause, Effect, Schedule } from "effect"

/** How often, and how long: a failover takes seconds (the shards move after the runner's lease). */
const RESET_RETRY = Schedule.spaced("250 millis").pipe(Schedule.upTo("60 seconds"))

const wasReset = (cause: Cause.Cause<unknown>): boolean => Socket.isSocketError(Cause.squash(cause))

export const retryWhileReset = <A, E, R>(request: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  request.pipe(Effect.sandbox, Effect.retry({ while: wasReset, schedule: RESET_RETRY }), Effect.unsandbox)
