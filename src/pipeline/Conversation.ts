/**
 * Conversation: what a handler can ask of the pump about the job it runs, beyond its payload
 * and metadata — the conversation's history, its todos and prompt (agents), a way to send the
 * pump's own messages to it, and to act when its branch or its conversation ends (the
 * orchestration primitives). The dispatcher provides one for every job whose handler returns
 * an Effect: `yield* Conversation` inside it. A handler that does not use it pays nothing.
 */
import { Context, type Effect, type Option } from "effect"
import type { ThreadId } from "../domain/Ids.js"
import type { PayloadValue, Reply } from "../domain/Reply.js"
import type { ContextQuery, ContextSlot } from "../services/ContextBuffer.js"
import type { XmlEngine } from "../services/XmlEngine.js"
import type { OutputVocabulary } from "./agents/AgentOutput.js"

export declare namespace Conversation {
  export interface Service {
    /** The thread this job runs on, and its conversation (root thread). */
    readonly thread: ThreadId
    readonly root: ThreadId
    /** The listener running, and the immediate sender of its message. */
    readonly self: string
    readonly from: string
    /** The hop this job's thread was forwarded from, if any (an agent's own hop, for todos). */
    readonly caller: Option.Option<ThreadId>
    /**
     * The sender's own hop, when the pump wrote the message: for a reply, the hop of the call it
     * answers (`history({ thread })` finds that call). None for messages from outside and the
     * pump's own (SystemErrors).
     */
    readonly senderThread: Option.Option<ThreadId>
    /** The conversation's history, as recorded (each message once). */
    readonly history: (query: ContextQuery) => Effect.Effect<ReadonlyArray<ContextSlot>>
    /** This listener's open todos on the conversation, as a reminder for its next model call. */
    readonly nudge: Effect.Effect<Option.Option<string>>
    /** This listener's system prompt with the usage instructions generated from its peers. */
    readonly instructions: Effect.Effect<Option.Option<string>>
    /** Which payload tags this listener can address, and the peers that take each. */
    readonly vocabulary: Effect.Effect<OutputVocabulary>
    /** The organism's XML engine (to read what a model wrote). */
    readonly xml: XmlEngine.Service
    /** A payload value as the XML text the pump would write for it. */
    readonly xmlOf: (payload: unknown) => string
    /** Sends the pump's own message (a BudgetWarning) to this listener on this thread. */
    readonly notify: (payload: PayloadValue) => Effect.Effect<void>
    /**
     * Records a guard trip on this conversation (an exhausted budget, an agent's stop
     * condition): an event, its ending (`budget` for token-budget, `stopped` for stop-when,
     * `failed` for stop-when-failed, else `guard`), and why a branch through this job ended.
     */
    readonly guardTripped: (guard: string, detail: string) => Effect.Effect<void>
    /** Runs `hook` once, when the conversation completes (state cleanup). */
    readonly onComplete: (hook: () => void) => Effect.Effect<void>
    /**
     * Runs `hook` once nothing is live at or below this thread any more (a step that ended
     * without replying); `reply` then sends from this listener on this thread.
     */
    readonly onBranchEnd: (hook: (reply: (reply: Reply) => void) => void) => Effect.Effect<void>
  }
}

export class Conversation extends Context.Tag("xml-organism/Conversation")<Conversation, Conversation.Service>() {}
