/**
 * What `organism status` shows of a durable organism's database: the runners (alive when
 * their heartbeat is recent and they did not stop), conversations by state, the runners'
 * counters summed, and the shared usage ledger.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/** A runner whose last heartbeat is older than this is taken for dead. */
export const ALIVE_WITHIN_MS = 5_000

export interface RunnerRow {
  readonly address: string
  readonly organism: string
  readonly pid: number
  readonly alive: boolean
  /** Milliseconds since its last heartbeat. */
  readonly seenMsAgo: number
  readonly counters: Readonly<Record<string, number>>
}

export interface DurableStatus {
  readonly runners: ReadonlyArray<RunnerRow>
  readonly conversations: {
    readonly running: number
    readonly waitingForApproval: number
    readonly completed: number
    readonly failed: number
  }
  /** Every runner's counters summed (a dead runner's as of its last heartbeat). */
  readonly counters: Readonly<Record<string, number>>
  readonly usage: { readonly requests: number; readonly promptTokens: number; readonly completionTokens: number; readonly costUsd: number }
}

interface RawRunner {
  readonly address: string
  readonly organism: string
  readonly pid: number
  readonly stopped: boolean
  readonly age_ms: number
  readonly counters: Record<string, number> | string
}

export const readStatus = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const runners = yield* sql<RawRunner>`SELECT address, organism, pid, stopped,
      (EXTRACT(EPOCH FROM (now() - seen_at)) * 1000)::float8 AS age_ms, counters
    FROM organism_runners ORDER BY address`
  const states = yield* sql<{ readonly state: string; readonly n: number }>`SELECT state, count(*)::int AS n FROM organism_conversations GROUP BY state`
  const usage = yield* sql<{ readonly requests: number; readonly prompt: number; readonly completion: number; readonly cost: number }>`
    SELECT count(*)::int AS requests, coalesce(sum(prompt_tokens), 0)::int AS prompt,
      coalesce(sum(completion_tokens), 0)::int AS completion, coalesce(sum(cost_usd), 0)::float8 AS cost FROM organism_usage`
  const counters: Record<string, number> = {}
  const rows: Array<RunnerRow> = runners.map((r) => {
    const c = typeof r.counters === "string" ? JSON.parse(r.counters) as Record<string, number> : r.counters
    // Medians are per runner: summing them means nothing.
    for (const [k, v] of Object.entries(c)) if (typeof v === "number" && !k.endsWith("MedianMs")) counters[k] = (counters[k] ?? 0) + v
    return {
      address: r.address,
      organism: r.organism,
      pid: r.pid,
      alive: !r.stopped && r.age_ms < ALIVE_WITHIN_MS,
      seenMsAgo: Math.round(r.age_ms),
      counters: c
    }
  })
  const count = (state: string) => states.find((s) => s.state === state)?.n ?? 0
  const u = usage[0]
  const status: DurableStatus = {
    runners: rows,
    conversations: {
      running: count("running"),
      waitingForApproval: count("waiting"),
      completed: count("completed"),
      failed: count("failed")
    },
    counters,
    usage: { requests: u?.requests ?? 0, promptTokens: u?.prompt ?? 0, completionTokens: u?.completion ?? 0, costUsd: u?.cost ?? 0 }
  }
  return status
})

/**
 * Another live runner already announced `address` (its heartbeat is recent and it did not
 * stop): the runner at that address that is starting must not take its place.
 */
export const liveRunnerAt = (address: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly pid: number; readonly age_ms: number }>`SELECT pid,
        (EXTRACT(EPOCH FROM (now() - seen_at)) * 1000)::float8 AS age_ms
      FROM organism_runners WHERE address = ${address} AND NOT stopped`
    const row = rows[0]
    return row !== undefined && row.age_ms < ALIVE_WITHIN_MS ? row : undefined
  })

/**
 * A durable conversation's journal (JSON lines: header, records, closing line), by its conversation id or
 * its envelope id: undefined when there is no such conversation; `running` while it has not
 * ended (the journal is written at its end).
 */
export const conversationJournal = (id: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly id: string; readonly state: string; readonly journal: string | null }>`
      SELECT id, state, journal FROM organism_conversations WHERE id = ${id} OR envelope_id = ${id} LIMIT 1`
    const row = rows[0]
    if (row === undefined) return undefined
    return { id: row.id, state: row.state, journal: row.journal ?? undefined }
  })
