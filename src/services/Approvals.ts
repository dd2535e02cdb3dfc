/**
 * Human approval: the desk where messages to a listener with `approval: required` wait for
 * a person's decision.
 *
 * The pump holds such a message once it has passed every check (decode, the organism's
 * stages, the guards), files it here as a `PendingApproval`, and acts on the decision: an
 * approved message is delivered exactly as it would have been, a denied one is rejected at
 * the `approval` stage and its sender hears the reason as a SystemError.
 *
 * An approval's id is the SHA-256 (hex) of the exact canonical envelope text: a decision is
 * bound to the message it was made for. Identical envelopes held at the same time share one
 * id, and one decision.
 *
 * The contract an implementation keeps (the in-memory one below; the durable one of a
 * runner, src/cluster/DurableApprovals.ts — a `DurableDeferred` per held message, whose
 * decisions survive a restart of every runner — keeps the same):
 * - `request(pending, onDecision)` files a request and returns once it is filed. When a
 *   person decides, `onDecision` runs exactly once with the decision; never after a
 *   `withdraw` of the same id, never for an id not filed.
 * - `approve` / `deny` decide a pending id, or fail with `ApprovalNotPending` (unknown,
 *   already decided, withdrawn) or `ApprovalMismatch` (the approver's copy of the envelope
 *   does not hash to the id). The in-memory desk runs `onDecision` before `approve`/`deny`
 *   return, so once they return the pump has acted; a durable one may return once the
 *   decision is recorded.
 * - `withdraw(id, reason)` ends a request without a decision of a person (the pump stopped
 *   the message: its conversation was cancelled, the organism drains). Withdrawing an id
 *   not pending does nothing.
 * - `pending` lists what waits, oldest first; `awaitDecision(id)` waits for the end of one.
 */
import { Context, Data, Deferred, Effect, Layer, Schema } from "effect"
import { createHash } from "node:crypto"

/** A message waiting for a person's decision. */
export interface PendingApproval {
  /** SHA-256 (hex) of `envelope`. */
  readonly id: string
  /** The listener that requires the approval. */
  readonly listener: string
  readonly thread: string
  /** The conversation (root thread). */
  readonly root: string
  readonly from: string
  /** The addressee (null for a broadcast). */
  readonly to: string | null
  readonly payloadType: string
  /** The payload element as it will be delivered (after the organism's stages). */
  readonly payload: string
  /** The canonical envelope text that `id` hashes. */
  readonly envelope: string
  /** Epoch milliseconds, by the Effect Clock. */
  readonly requestedAt: number
}

/** How a request ended. */
export type Decision = Data.TaggedEnum<{
  Approved: { readonly by: string }
  Denied: { readonly by: string; readonly reason: string }
  /** The pump stopped the message itself (cancelled, draining): no person decided. */
  Withdrawn: { readonly reason: string }
}>
export const Decision = Data.taggedEnum<Decision>()

/** The id is not waiting for a decision: unknown, already decided, or withdrawn. */
export class ApprovalNotPending extends Schema.TaggedError<ApprovalNotPending>()("ApprovalNotPending", {
  id: Schema.String
}) {
  override get message() {
    return `no message waits for approval under id ${this.id} (unknown, already decided, or withdrawn)`
  }
}

/** The envelope the approver saw is not the one waiting under the id: the decision is refused. */
export class ApprovalMismatch extends Schema.TaggedError<ApprovalMismatch>()("ApprovalMismatch", {
  id: Schema.String,
  /** The SHA-256 of the envelope the approver sent. */
  seen: Schema.String
}) {
  override get message() {
    return `the envelope you saw (SHA-256 ${this.seen}) is not the one waiting under id ${this.id}: decision refused`
  }
}

export type ApprovalError = ApprovalNotPending | ApprovalMismatch

export interface DecideOptions {
  /** Who decides (shown in events); default "approver". */
  readonly by?: string | undefined
  /**
   * The envelope text the approver was shown: the decision is refused unless its SHA-256 is
   * the id (the approver decides about exactly what they saw).
   */
  readonly envelope?: string | undefined
}

/** The SHA-256 (hex) of a canonical envelope: its approval id. */
export const approvalId = (envelope: string): string => createHash("sha256").update(envelope, "utf8").digest("hex")

export declare namespace Approvals {
  export interface Service {
    /** The pump's side: files a request; `onDecision` runs once, when a person decides. */
    readonly request: (pending: PendingApproval, onDecision: (decision: Decision) => Effect.Effect<void>) => Effect.Effect<void>
    /** The pump's side: ends a request no person decided (see the contract above). */
    readonly withdraw: (id: string, reason: string) => Effect.Effect<void>
    /** What waits for a decision, oldest first. */
    readonly pending: Effect.Effect<ReadonlyArray<PendingApproval>>
    readonly get: (id: string) => Effect.Effect<PendingApproval, ApprovalNotPending>
    /** Approves: the message is delivered. Returns what was approved. */
    readonly approve: (id: string, options?: DecideOptions) => Effect.Effect<PendingApproval, ApprovalError>
    /** Denies: the message is rejected and its sender hears `reason`. */
    readonly deny: (id: string, reason: string, options?: DecideOptions) => Effect.Effect<PendingApproval, ApprovalError>
    /** Waits until a pending id is decided or withdrawn. */
    readonly awaitDecision: (id: string) => Effect.Effect<Decision, ApprovalNotPending>
  }
}

interface Entry {
  readonly pending: PendingApproval
  readonly decided: Deferred.Deferred<Decision>
  readonly onDecision: (decision: Decision) => Effect.Effect<void>
}

export class Approvals extends Context.Tag("xml-organism/Approvals")<Approvals, Approvals.Service>() {
  /** The embedded desk: requests in memory, one `Deferred` per id. */
  static readonly makeMemory: Effect.Effect<Approvals.Service> = Effect.sync(() => {
    const entries = new Map<string, Entry>()

    const take = (id: string, options: DecideOptions | undefined): Effect.Effect<Entry, ApprovalError> =>
      Effect.suspend((): Effect.Effect<Entry, ApprovalError> => {
        const entry = entries.get(id)
        if (entry === undefined) return Effect.fail(new ApprovalNotPending({ id }))
        if (options?.envelope !== undefined) {
          const seen = approvalId(options.envelope)
          if (seen !== id) return Effect.fail(new ApprovalMismatch({ id, seen }))
        }
        // Taken in the same step it is checked: two approvers racing cannot both decide.
        entries.delete(id)
        return Effect.succeed(entry)
      })

    const decide = (entry: Entry, decision: Decision) =>
      Effect.zipRight(
        entry.onDecision(decision),
        Effect.as(Deferred.succeed(entry.decided, decision), entry.pending)
      )

    const service: Approvals.Service = {
      request: (pending, onDecision) =>
        Effect.suspend(() => {
          if (entries.has(pending.id)) return Effect.void
          return Effect.map(Deferred.make<Decision>(), (decided) => void entries.set(pending.id, { pending, decided, onDecision }))
        }),
      withdraw: (id, reason) =>
        Effect.suspend(() => {
          const entry = entries.get(id)
          if (entry === undefined) return Effect.void
          entries.delete(id)
          return Deferred.succeed(entry.decided, Decision.Withdrawn({ reason }))
        }),
      pending: Effect.sync(() => [...entries.values()].map((e) => e.pending)),
      get: (id) =>
        Effect.suspend(() => {
          const entry = entries.get(id)
          return entry === undefined ? Effect.fail(new ApprovalNotPending({ id })) : Effect.succeed(entry.pending)
        }),
      approve: (id, options) =>
        Effect.flatMap(take(id, options), (entry) => decide(entry, Decision.Approved({ by: options?.by ?? "approver" }))),
      deny: (id, reason, options) =>
        Effect.flatMap(take(id, options), (entry) => decide(entry, Decision.Denied({ by: options?.by ?? "approver", reason }))),
      awaitDecision: (id) =>
        Effect.suspend(() => {
          const entry = entries.get(id)
          return entry === undefined ? Effect.fail(new ApprovalNotPending({ id })) : Deferred.await(entry.decided)
        })
    }
    return service
  })

  static readonly layerMemory: Layer.Layer<Approvals> = Layer.effect(Approvals, Approvals.makeMemory)
}
