/**
 * A durable conversation is a workflow (DESIGN.md §11): its execution id — derived from the
 * injected envelope's id — is the conversation's durable thread id and the key of the
 * cluster entity that owns it, so the same envelope sent twice is one conversation, run once.
 *
 * The workflow's body (DurableConversations) injects the payload into the owning runner's
 * local pump, where all of the conversation's hops run in process; each model call is an
 * activity whose answer is stored. What is persisted: the injection (the entity message),
 * each model call (turn boundaries), and the conversation's end (the message's reply).
 */
import { Workflow } from "@effect/workflow"
import { Schedule, Schema } from "effect"

/** A payload that came back to the injector: its element name and its XML. */
export const ReturnedPayload = Schema.Struct({ type: Schema.String, xml: Schema.String })
export type ReturnedPayload = typeof ReturnedPayload.Type

/** How a durable conversation ended: the pump's end reason and what came back to the injector. */
export const ConversationEnd = Schema.Struct({
  /** completed, guard, budget, timeout, cancelled, failed (as `organism run` reports them). */
  reason: Schema.String,
  detail: Schema.String,
  replies: Schema.Array(ReturnedPayload)
})
export type ConversationEnd = typeof ConversationEnd.Type

export const ConversationWorkflow = Workflow.make({
  name: "Conversation",
  payload: {
    /** The envelope id the client chose: the dedupe key of the injection. */
    id: Schema.String,
    to: Schema.String,
    from: Schema.String,
    /** The payload element, as XML. */
    payload: Schema.String
  },
  success: ConversationEnd,
  idempotencyKey: (p) => p.id,
  // A client waiting for a conversation that waits for a person (its workflow suspended)
  // asks again every second: it sees the end soon after the decision resumes it.
  suspendedRetrySchedule: Schedule.spaced("1 second")
})
