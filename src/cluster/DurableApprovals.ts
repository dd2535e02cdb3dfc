/**
 * Human approval in durable organisms: the `Approvals` service of a runner's pump, and the
 * desk where people decide from any process (`organism approvals | approve | deny
 * --database URL`).
 *
 * A message held for approval in a durable conversation is a `DurableDeferred` of the
 * conversation's workflow (ApprovalDeferred.ts), filed in `organism_approvals`:
 * - the runner files it and stops the conversation's run there: its workflow awaits the
 *   deferred and suspends. Nothing of it is left in any runner's memory, so stopping every
 *   runner loses nothing;
 * - a person decides from any process: the row is claimed (the first decision wins) once the
 *   id is checked against the SHA-256 of its envelope, then the deferred is completed
 *   through the cluster, which resumes the workflow on the runner that owns it;
 * - the resumed run starts again from the injection (model calls answered from the store),
 *   holds the same message again and finds the decision: the message is delivered, or
 *   rejected and its sender hears the reason — as in an embedded organism.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import * as DurableDeferred from "@effect/workflow/DurableDeferred"
import { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import { Context, Duration, Effect, Exit, Layer } from "effect"
import {
  type ApprovalError,
  ApprovalMismatch,
  ApprovalNotPending,
  approvalId,
  Approvals,
  type DecideOptions,
  Decision,
  type PendingApproval
} from "../services/Approvals.js"
import { approvalDeferred, type ApprovalVerdict, contentKey, deferredName } from "./ApprovalDeferred.js"
import type { Bindings } from "./Bindings.js"
import { ConversationWorkflow } from "./ConversationWorkflow.js"
import type { DurableStore } from "./DurableStore.js"

/** A held message as the desk lists it: with its durable conversation. */
export interface DurablePending extends PendingApproval {
  readonly conversation: string
}

interface RawRow {
  readonly id: string
  readonly conversation: string
  readonly deferred: string
  readonly listener: string
  readonly thread: string
  readonly root: string
  readonly sender: string
  readonly addressee: string | null
  readonly payload_type: string
  readonly payload: string
  readonly envelope: string
  readonly requested_at: string | number
  readonly state: string
  readonly decided_by: string | null
  readonly reason: string | null
}

const pendingOf = (r: RawRow): DurablePending => ({
  id: r.id,
  conversation: r.conversation,
  listener: r.listener,
  thread: r.thread,
  root: r.root,
  from: r.sender,
  to: r.addressee,
  payloadType: r.payload_type,
  payload: r.payload,
  envelope: r.envelope,
  requestedAt: Number(r.requested_at)
})

/** What waits for a decision, oldest first: the listing needs the database only. */
export const listPending = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<RawRow>`SELECT * FROM organism_approvals WHERE state = 'pending' ORDER BY requested_at, id`, (rows) => rows.map(pendingOf)))

/** The ids starting with `prefix`, whatever their state (how the CLI names an id, and says why it is not pending). */
export const approvalsStartingWith = (prefix: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly id: string; readonly state: string; readonly decided_by: string | null; readonly reason: string | null }>`
      SELECT id, state, decided_by, reason FROM organism_approvals
      WHERE starts_with(id, ${prefix.toLowerCase()}) ORDER BY state = 'pending' DESC, requested_at LIMIT 20`)

export declare namespace DurableApprovalDesk {
  export interface Service {
    /** What waits for a decision, oldest first. */
    readonly pending: Effect.Effect<ReadonlyArray<DurablePending>, SqlError>
    readonly get: (id: string) => Effect.Effect<DurablePending, ApprovalNotPending | SqlError>
    readonly approve: (id: string, options?: DecideOptions) => Effect.Effect<DurablePending, ApprovalError | SqlError>
    readonly deny: (id: string, reason: string, options?: DecideOptions) => Effect.Effect<DurablePending, ApprovalError | SqlError>
    /** Waits until the id is decided (the row says so; the conversation resumes after). */
    readonly awaitDecision: (id: string) => Effect.Effect<Decision, ApprovalNotPending | SqlError>
  }
}

/** The desk: reads and decides `organism_approvals`, completes the deferreds through the cluster. */
export class DurableApprovalDesk extends Context.Tag("xml-organism/DurableApprovalDesk")<
  DurableApprovalDesk,
  DurableApprovalDesk.Service
>() {
  static readonly layer: Layer.Layer<DurableApprovalDesk, never, SqlClient.SqlClient | WorkflowEngine> = Layer.effect(
    DurableApprovalDesk,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const engine = yield* WorkflowEngine

      const pendingRows = (id: string) =>
        sql<RawRow>`SELECT * FROM organism_approvals WHERE id = ${id} AND state = 'pending' ORDER BY requested_at`

      const decide = (id: string, verdict: Omit<ApprovalVerdict, "id">, options: DecideOptions | undefined) =>
        Effect.gen(function*() {
          if (options?.envelope !== undefined) {
            const seen = approvalId(options.envelope)
            if (seen !== id) return yield* new ApprovalMismatch({ id, seen })
          }
          const rows = yield* pendingRows(id)
          if (rows.length === 0) return yield* new ApprovalNotPending({ id })
          // The binding, checked where the decision is made: the id is the SHA-256 of the
          // envelope filed under it, or nothing is decided.
          for (const r of rows) {
            const seen = approvalId(r.envelope)
            if (seen !== id) return yield* new ApprovalMismatch({ id, seen })
          }
          // Claimed in one statement: of two people deciding at once, one wins.
          const claimed = yield* sql<RawRow>`UPDATE organism_approvals
            SET state = ${verdict.decision}, decided_by = ${verdict.by}, reason = ${verdict.reason}, decided_at = now()
            WHERE id = ${id} AND state = 'pending' RETURNING *`
          if (claimed.length === 0) return yield* new ApprovalNotPending({ id })
          for (const r of claimed) {
            const deferred = approvalDeferred(r.deferred)
            const token = DurableDeferred.tokenFromExecutionId(deferred, { workflow: ConversationWorkflow, executionId: r.conversation })
            yield* DurableDeferred.done(deferred, { token, exit: Exit.succeed({ id, ...verdict }) }).pipe(
              Effect.provideService(WorkflowEngine, engine),
              // The cluster did not take it: the decision is not made (it can be made again).
              Effect.tapErrorCause(() =>
                Effect.ignore(sql`UPDATE organism_approvals SET state = 'pending', decided_by = NULL, reason = NULL, decided_at = NULL
                  WHERE conversation = ${r.conversation} AND deferred = ${r.deferred}`)
              )
            )
          }
          return pendingOf(claimed[0]!)
        })

      const service: DurableApprovalDesk.Service = {
        pending: Effect.provideService(listPending, SqlClient.SqlClient, sql),
        get: (id) =>
          Effect.flatMap(pendingRows(id), (rows) =>
            rows[0] === undefined ? Effect.fail(new ApprovalNotPending({ id })) : Effect.succeed(pendingOf(rows[0]))),
        approve: (id, options) => decide(id, { decision: "approved", by: options?.by ?? "approver", reason: "" }, options),
        deny: (id, reason, options) => decide(id, { decision: "denied", by: options?.by ?? "approver", reason }, options),
        awaitDecision: (id) =>
          Effect.gen(function*() {
            let first = true
            while (true) {
              const rows = yield* sql<RawRow>`SELECT * FROM organism_approvals WHERE id = ${id} ORDER BY state = 'pending' DESC`
              const r = rows[0]
              if (r === undefined || (first && r.state !== "pending")) return yield* new ApprovalNotPending({ id })
              first = false
              if (r.state === "approved") return Decision.Approved({ by: r.decided_by ?? "approver" })
              if (r.state === "denied") return Decision.Denied({ by: r.decided_by ?? "approver", reason: r.reason ?? "" })
              yield* Effect.sleep(Duration.millis(500))
            }
          })
      }
      return service
    })
  )
}

/**
 * The Approvals service of a runner's pump. A message of a durable conversation is filed
 * durably and its run parks (above); any other (none in a runner today) waits in `memory`.
 * Deciding from the runner's process goes through `desk` when there is one.
 */
export const makeRunnerApprovals = (options: {
  readonly bindings: Bindings
  readonly store: DurableStore.Service
  readonly memory: Approvals.Service
  readonly desk: DurableApprovalDesk.Service | undefined
}): Approvals.Service => {
  const { bindings, desk, memory, store } = options

  const verdictOf = (slot: NonNullable<Effect.Effect.Success<ReturnType<Bindings["slotOf"]>>>, name: string) =>
    Effect.gen(function*() {
      const engine = Context.get(slot.context, WorkflowEngine)
      const exit = yield* Effect.provide(engine.deferredResult(approvalDeferred(name)), slot.context)
      if (exit !== undefined && Exit.isSuccess(exit)) return exit.value
      // Decided, but the decision has not reached the workflow yet: the row says.
      return yield* store.approvalVerdict(slot.conversation, name)
    })

  // The desk's database failing is not an answer about the id: a defect.
  const orDie = <A, E extends ApprovalError>(effect: Effect.Effect<A, E | SqlError>): Effect.Effect<A, E> =>
    Effect.catchIf(effect, (e): e is SqlError => e._tag === "SqlError", (e) => Effect.die(e)) as Effect.Effect<A, E>

  const viaDesk = <A, E extends ApprovalError>(
    local: Effect.Effect<A, E>,
    durable: (d: DurableApprovalDesk.Service) => Effect.Effect<A, E | SqlError>
  ): Effect.Effect<A, E> =>
    Effect.catchIf(
      local,
      (e) => e._tag === "ApprovalNotPending",
      (e) => (desk === undefined ? Effect.fail(e) : orDie(durable(desk)))
    )

  return {
    request: (pending, onDecision) =>
      Effect.gen(function*() {
        const slot = yield* bindings.slotOf(pending.root)
        if (slot === undefined) return yield* memory.request(pending, onDecision)
        const key = contentKey(pending.envelope)
        const nth = (slot.held.get(key) ?? 0) + 1
        slot.held.set(key, nth)
        const name = deferredName(key, nth)
        const filed = Effect.gen(function*() {
          const verdict = yield* verdictOf(slot, name)
          if (verdict !== undefined) return verdict
          yield* store.approvalRequested({ ...pending, conversation: slot.conversation, deferred: name })
          return undefined
        })
        // A message that cannot be filed could never be decided: it is stopped, never delivered
        // unapproved, and its sender hears why.
        const verdict = yield* filed.pipe(
          Effect.catchAllCause((cause) =>
            Effect.zipRight(
              Effect.logError("durable approval: the held message could not be filed", cause),
              Effect.as(onDecision(Decision.Withdrawn({ reason: "the approval could not be filed (the database did not answer)" })), null)
            )
          )
        )
        if (verdict === null) return
        if (verdict === undefined) return yield* slot.park(name)
        if (verdict.decision === "approved") return yield* onDecision(Decision.Approved({ by: verdict.by }))
        slot.denials.push(verdict.reason)
        return yield* onDecision(Decision.Denied({ by: verdict.by, reason: verdict.reason }))
      }),
    // A held message of a durable conversation is withdrawn when its run stops (it parked,
    // the runner stops): the filed approval keeps waiting for the conversation's next run,
    // so only what waits in memory is withdrawn.
    withdraw: (id, reason) => memory.withdraw(id, reason),
    pending: Effect.gen(function*() {
      const local = yield* memory.pending
      const durable = desk === undefined ? [] : yield* Effect.orDie(desk.pending)
      return [...local, ...durable]
    }),
    get: (id) => viaDesk(memory.get(id), (d) => d.get(id)),
    approve: (id, options) => viaDesk(memory.approve(id, options), (d) => d.approve(id, options)),
    deny: (id, reason, options) => viaDesk(memory.deny(id, reason, options), (d) => d.deny(id, reason, options)),
    awaitDecision: (id) =>
      memory.awaitDecision(id).pipe(
        Effect.catchTag("ApprovalNotPending", (e) => (desk === undefined ? Effect.fail(e) : orDie(desk.awaitDecision(id))))
      )
  }
}
