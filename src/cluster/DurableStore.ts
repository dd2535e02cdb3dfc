/**
 * What a runner records besides the cluster's own messages: conversations' states, how often
 * each durable model call was sent, the shared usage ledger, and its heartbeat with its
 * counters. In Postgres for real runners (shared by all of them, read by `organism status`);
 * in memory for tests on the in-memory cluster layers.
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer } from "effect"
import type { ConversationEnd } from "./ConversationWorkflow.js"
import type { ApprovalRow, ApprovalVerdict } from "./ApprovalDeferred.js"

export interface UsageRow {
  readonly conversation: string
  readonly agent: string
  readonly model: string
  readonly backend: string
  readonly promptTokens: number
  readonly completionTokens: number
  readonly costUsd: number
}

export interface ConversationStart {
  readonly id: string
  readonly envelopeId: string
  readonly listener: string
}

export declare namespace DurableStore {
  export interface Service {
    readonly started: (c: ConversationStart) => Effect.Effect<void>
    /**
     * The conversation ended: its end, and its journal (header, records, closing line) for
     * `organism trace`, stored as the JSON lines a journal file holds.
     */
    readonly ended: (id: string, end: ConversationEnd, journal: ReadonlyArray<unknown>) => Effect.Effect<void>
    /** Notes one more send of a durable model call; returns how many sends it has had. */
    readonly noteSend: (conversation: string, call: string) => Effect.Effect<number>
    readonly recordUsage: (row: UsageRow) => Effect.Effect<void>
    readonly heartbeat: (counters: Readonly<Record<string, number>>) => Effect.Effect<void>
    /** The runner stops: marked stopped (a clean exit, unlike a crash). */
    readonly stopped: Effect.Effect<void>
    /** The conversation waits for a person: its workflow suspends (`organism status`: waiting for approval). */
    readonly waiting: (id: string) => Effect.Effect<void>
    /**
     * Files a held message of a durable conversation (once: a run of the conversation that
     * holds it again keeps the first row, whose id people were shown).
     */
    readonly approvalRequested: (row: ApprovalRow) => Effect.Effect<void>
    /** The decision recorded for a held message, if a person decided. */
    readonly approvalVerdict: (conversation: string, deferred: string) => Effect.Effect<ApprovalVerdict | undefined>
  }
}

export class DurableStore extends Context.Tag("xml-organism/DurableStore")<DurableStore, DurableStore.Service>() {
  /** Postgres, for the runner at `runner` (its address): the tables of Database.ensureSchema. */
  static readonly layerSql = (runner: string, organism: string): Layer.Layer<DurableStore, never, SqlClient.SqlClient> =>
    Layer.effect(
      DurableStore,
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // A bookkeeping write that fails (a database blip) must not fail the conversation:
        // the cluster's own storage is what makes it durable. It is retried, then logged.
        const quiet = <A>(effect: Effect.Effect<A, unknown>, fallback: A) =>
          effect.pipe(
            Effect.retry({ times: 3 }),
            Effect.catchAllCause((cause) => Effect.as(Effect.logWarning("durable store write failed", cause), fallback))
          )
        yield* sql`INSERT INTO organism_runners (address, organism, pid) VALUES (${runner}, ${organism}, ${process.pid})
          ON CONFLICT (address) DO UPDATE SET organism = EXCLUDED.organism, pid = EXCLUDED.pid, started_at = now(),
            seen_at = now(), stopped = false, counters = '{}'::jsonb`.pipe(Effect.orDie)
        const service: DurableStore.Service = {
          started: (c) =>
            quiet(
              sql`INSERT INTO organism_conversations (id, envelope_id, listener, state, runner, runs)
                VALUES (${c.id}, ${c.envelopeId}, ${c.listener}, 'running', ${runner}, 1)
                ON CONFLICT (id) DO UPDATE SET state = 'running', runner = ${runner}, runs = organism_conversations.runs + 1,
                  resumed_at = now()`,
              undefined
            ).pipe(Effect.asVoid),
          ended: (id, end, journal) =>
            quiet(
              sql`UPDATE organism_conversations SET state = ${end.reason === "completed" ? "completed" : "failed"},
                reason = ${end.reason}, detail = ${end.detail}, replies = ${JSON.stringify(end.replies)}::jsonb,
                journal = ${journal.map((r) => `${JSON.stringify(r)}\n`).join("")}, ended_at = now()
                WHERE id = ${id}`,
              undefined
            ).pipe(Effect.asVoid),
          noteSend: (conversation, call) =>
            quiet(
              sql<{ readonly sends: number }>`INSERT INTO organism_llm_sends (conversation, call, sends) VALUES (${conversation}, ${call}, 1)
                ON CONFLICT (conversation, call) DO UPDATE SET sends = organism_llm_sends.sends + 1 RETURNING sends`.pipe(
                Effect.map((rows) => rows[0]?.sends ?? 1)
              ),
              1
            ),
          recordUsage: (u) =>
            quiet(
              sql`INSERT INTO organism_usage (conversation, agent, model, backend, prompt_tokens, completion_tokens, cost_usd, runner)
                VALUES (${u.conversation}, ${u.agent}, ${u.model}, ${u.backend}, ${u.promptTokens}, ${u.completionTokens}, ${u.costUsd}, ${runner})`,
              undefined
            ).pipe(Effect.asVoid),
          heartbeat: (counters) =>
            quiet(
              sql`UPDATE organism_runners SET seen_at = now(), counters = ${JSON.stringify(counters)}::jsonb WHERE address = ${runner}`,
              undefined
            ).pipe(Effect.asVoid),
          stopped: quiet(sql`UPDATE organism_runners SET stopped = true, seen_at = now() WHERE address = ${runner}`, undefined).pipe(
            Effect.asVoid
          ),
          waiting: (id) => quiet(sql`UPDATE organism_conversations SET state = 'waiting' WHERE id = ${id}`, undefined).pipe(Effect.asVoid),
          // Not quiet: a request that is not filed could never be decided (the conversation
          // would wait for nobody). A database that does not answer fails the conversation's run.
          approvalRequested: (r) =>
            sql`INSERT INTO organism_approvals (id, conversation, deferred, listener, thread, root, sender, addressee,
                payload_type, payload, envelope, requested_at, state)
              VALUES (${r.id}, ${r.conversation}, ${r.deferred}, ${r.listener}, ${r.thread}, ${r.root}, ${r.from}, ${r.to},
                ${r.payloadType}, ${r.payload}, ${r.envelope}, ${r.requestedAt}, 'pending')
              ON CONFLICT (conversation, deferred) DO NOTHING`.pipe(Effect.retry({ times: 3 }), Effect.orDie, Effect.asVoid),
          approvalVerdict: (conversation, deferred) =>
            sql<{ readonly id: string; readonly state: string; readonly decided_by: string | null; readonly reason: string | null }>`
              SELECT id, state, decided_by, reason FROM organism_approvals
              WHERE conversation = ${conversation} AND deferred = ${deferred}`.pipe(
              Effect.map((rows) => {
                const r = rows[0]
                if (r === undefined || (r.state !== "approved" && r.state !== "denied")) return undefined
                const verdict: ApprovalVerdict = { id: r.id, decision: r.state, by: r.decided_by ?? "approver", reason: r.reason ?? "" }
                return verdict
              }),
              Effect.retry({ times: 3 }),
              Effect.orDie
            )
        }
        return service
      })
    )

  /** In memory, for tests on the in-memory cluster: the same books, readable by the test. */
  static readonly layerMemory = (memory: MemoryBooks): Layer.Layer<DurableStore> =>
    Layer.succeed(DurableStore, {
      started: (c) =>
        Effect.sync(() => {
          const known = memory.conversations.get(c.id)
          memory.conversations.set(c.id, { state: "running", runs: (known?.runs ?? 0) + 1, end: undefined, journal: [] })
        }),
      ended: (id, end, journal) =>
        Effect.sync(() => {
          const known = memory.conversations.get(id)
          memory.conversations.set(id, { state: end.reason === "completed" ? "completed" : "failed", runs: known?.runs ?? 1, end, journal })
        }),
      noteSend: (conversation, call) =>
        Effect.sync(() => {
          const key = `${conversation}\u0000${call}`
          const n = (memory.sends.get(key) ?? 0) + 1
          memory.sends.set(key, n)
          return n
        }),
      recordUsage: (row) => Effect.sync(() => void memory.usage.push(row)),
      heartbeat: (counters) => Effect.sync(() => void (memory.counters = { ...counters })),
      stopped: Effect.void,
      waiting: (id) =>
        Effect.sync(() => {
          const known = memory.conversations.get(id)
          if (known !== undefined) memory.conversations.set(id, { ...known, state: "waiting" })
        }),
      approvalRequested: (row) =>
        Effect.sync(() => {
          const key = `${row.conversation}\u0000${row.deferred}`
          if (!memory.approvals.has(key)) memory.approvals.set(key, { row, verdict: undefined })
        }),
      approvalVerdict: (conversation, deferred) =>
        Effect.sync(() => memory.approvals.get(`${conversation}\u0000${deferred}`)?.verdict)
    })
}

export interface MemoryBooks {
  readonly conversations: Map<
    string,
    { readonly state: string; readonly runs: number; readonly end: ConversationEnd | undefined; readonly journal: ReadonlyArray<unknown> }
  >
  readonly sends: Map<string, number>
  readonly usage: Array<UsageRow>
  counters: Readonly<Record<string, number>>
  /** Held messages by conversation and deferred name; a test decides by setting `verdict`. */
  readonly approvals: Map<string, { readonly row: ApprovalRow; verdict: ApprovalVerdict | undefined }>
}

export const makeMemoryBooks = (): MemoryBooks => ({
  conversations: new Map(),
  sends: new Map(),
  usage: [],
  counters: {},
  approvals: new Map()
})
