/**
 * SharedLimits through Postgres: what the runners of a durable organism share of each
 * backend's `rate_limit_rpm`, `rate_limit_tpm` and `max_concurrent`.
 *
 * - Rates: one row per backend and clock minute counts the requests and (estimated) tokens
 *   admitted; a request that would pass a limit waits for the next minute. Fixed windows: a
 *   burst may straddle two minutes, and each runner's own smoothing limiter still applies.
 * - Concurrency: `max` slots per backend, each a lease of a few seconds renewed while the
 *   call runs. A runner that dies holds its slots until their leases run out (LEASE).
 *
 * A database that cannot be reached does not stop the calls: the limit is skipped (and
 * logged) rather than every conversation failing with it.
 */
import { SqlClient } from "@effect/sql"
import { Clock, Duration, Effect, Fiber, Layer, Schedule } from "effect"
import { SharedLimits } from "../services/SharedLimits.js"

/** How long a slot is held without renewal: a dead runner's slots are free after this. */
const LEASE_SECONDS = 10
const RENEW_EVERY = Duration.seconds(3)

export const layerSharedLimitsSql = (holder: string): Layer.Layer<SharedLimits, never, SqlClient.SqlClient> =>
  Layer.effect(
    SharedLimits,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      let leases = 0
      const skipped = (what: string) => (cause: unknown) =>
        Effect.logWarning(`shared ${what} skipped: the database did not answer`, cause)

      const admit = (backend: string, minute: number, rpm: number, tpm: number, tokens: number) =>
        sql<{ readonly requests: number }>`INSERT INTO organism_rate (backend, minute, requests, tokens)
          VALUES (${backend}, ${minute}, 1, ${tokens})
          ON CONFLICT (backend, minute) DO UPDATE SET requests = organism_rate.requests + 1,
            tokens = organism_rate.tokens + EXCLUDED.tokens
          WHERE organism_rate.requests + 1 <= ${rpm} AND organism_rate.tokens + EXCLUDED.tokens <= ${tpm}
          RETURNING requests`.pipe(Effect.map((rows) => rows.length > 0))

      const acquire: SharedLimits.Service["acquire"] = (backend, limits, tokens) =>
        Effect.gen(function*() {
          const rpm = limits.requestsPerMinute ?? 2_147_483_647
          const tpm = limits.tokensPerMinute ?? Number.MAX_SAFE_INTEGER
          while (true) {
            const now = yield* Clock.currentTimeMillis
            const minute = Math.floor(now / 60_000)
            if (yield* admit(backend, minute, rpm, tpm, tokens)) return
            // Full this minute: wait for the next one (a little spread, so runners do not all ask at once).
            yield* Effect.sleep(Duration.millis((minute + 1) * 60_000 - now + Math.floor(Math.random() * 50)))
          }
        }).pipe(Effect.catchAllCause(skipped("rate limit")))

      const take = (backend: string, max: number, me: string) =>
        sql<{ readonly slot: number }>`WITH free AS (
            SELECT s FROM generate_series(0, ${max - 1}) s
            WHERE NOT EXISTS (SELECT 1 FROM organism_slots o WHERE o.backend = ${backend} AND o.slot = s AND o.until > now())
            LIMIT 1)
          INSERT INTO organism_slots (backend, slot, holder, until)
            SELECT ${backend}, s, ${me}, now() + make_interval(secs => ${LEASE_SECONDS}) FROM free
          ON CONFLICT (backend, slot) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
            WHERE organism_slots.until <= now()
          RETURNING slot`.pipe(Effect.map((rows) => rows[0]?.slot))

      const renew = (backend: string, slot: number, me: string) =>
        sql`UPDATE organism_slots SET until = now() + make_interval(secs => ${LEASE_SECONDS})
          WHERE backend = ${backend} AND slot = ${slot} AND holder = ${me}`

      const release = (backend: string, slot: number, me: string) =>
        sql`UPDATE organism_slots SET until = now() - interval '1 second'
          WHERE backend = ${backend} AND slot = ${slot} AND holder = ${me}`.pipe(Effect.catchAllCause(skipped("slot release")))

      const withSlot: SharedLimits.Service["withSlot"] = (backend, max, effect) =>
        Effect.acquireUseRelease(
          Effect.gen(function*() {
            const me = `${holder}#${++leases}`
            const slot = yield* take(backend, max, me).pipe(
              Effect.flatMap((s) => (s === undefined ? Effect.fail("busy" as const) : Effect.succeed(s))),
              Effect.retry({
                schedule: Schedule.exponential(Duration.millis(10), 1.5).pipe(Schedule.union(Schedule.spaced(Duration.millis(200)))),
                while: (e) => e === "busy"
              }),
              Effect.catchAllCause((cause) => Effect.as(skipped("concurrency limit")(cause), undefined))
            )
            if (slot === undefined) return undefined
            // Interruptible: forked inside the acquisition, it would inherit its uninterruptibility.
            const renewer = yield* Effect.forkDaemon(Effect.interruptible(
              Effect.ignore(renew(backend, slot, me)).pipe(Effect.repeat(Schedule.spaced(RENEW_EVERY)), Effect.delay(RENEW_EVERY))
            ))
            return { slot, me, renewer }
          }),
          () => effect,
          (held) =>
            held === undefined
              ? Effect.void
              : Effect.zipRight(Fiber.interrupt(held.renewer), release(backend, held.slot, held.me))
        )

      return SharedLimits.of({ acquire, withSlot })
    })
  )
