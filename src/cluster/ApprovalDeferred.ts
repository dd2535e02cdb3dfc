/**
 * A held message of a durable conversation (DESIGN.md §11, README "Durable organisms"): a
 * `DurableDeferred` of the conversation's workflow, completed with the person's decision.
 *
 * Its name must be the same in every run of the conversation (a run after a restart, the run
 * that resumes it after the decision), yet the envelope's thread ids are fresh in each run.
 * So it is named by the envelope *without* its thread id (`contentKey`) and how many such
 * envelopes the conversation held before: what a run holds again is found under the same
 * name, and a run that holds another envelope finds no decision — a decision is never
 * applied to a message it was not made for.
 *
 * The id people see is the SHA-256 of the exact canonical envelope of the run that first
 * held it (`organism_approvals.id`).
 */
import * as DurableDeferred from "@effect/workflow/DurableDeferred"
import { Schema } from "effect"
import { approvalId, type PendingApproval } from "../services/Approvals.js"

/** A person's decision, as the deferred stores it. */
export const ApprovalVerdict = Schema.Struct({
  /** The approval id decided (the SHA-256 of the envelope the person was shown). */
  id: Schema.String,
  decision: Schema.Literal("approved", "denied"),
  by: Schema.String,
  reason: Schema.String
})
export type ApprovalVerdict = typeof ApprovalVerdict.Type

/** A held message as filed in `organism_approvals`. */
export interface ApprovalRow extends PendingApproval {
  /** The conversation (the workflow's execution id). */
  readonly conversation: string
  /** The deferred's name (`deferredName`). */
  readonly deferred: string
}

const THREAD = /<((?:[A-Za-z_][\w.-]*:)?thread)>[^<]*<\/\1>/

/** The envelope without its thread id, hashed: the same in every run of a conversation. */
export const contentKey = (envelope: string): string => approvalId(envelope.replace(THREAD, "<$1></$1>"))

/** The deferred of the `nth` held envelope with this content key in a conversation. */
export const deferredName = (key: string, nth: number): string => `approval/${key}/${nth}`

export const approvalDeferred = (name: string) => DurableDeferred.make(name, { success: ApprovalVerdict })
