/**
 * What a handler returns. The pump writes the envelopes: handlers never set from, to or
 * thread, so they cannot forge a sender or move a message into another conversation.
 */
import { Data } from "effect"

/**
 * A payload given as XML text, for code that produces payloads it has no class for (model
 * output, sequence steps). It is validated like any other message when it re-enters.
 */
export class RawPayload extends Data.TaggedClass("RawPayload")<{
  readonly tag: string
  /** The payload element's content (between its start and end tags). */
  readonly inner: string
}> {
  get xml(): string {
    return `<${this.tag}>${this.inner}</${this.tag}>`
  }
}

/** A payload value: an instance of a `Payload.Class`, or raw XML. */
export type PayloadValue = object

export type Reply =
  | { readonly _tag: "None" }
  | { readonly _tag: "Forward"; readonly to: string; readonly payloads: ReadonlyArray<PayloadValue> }
  | { readonly _tag: "Respond"; readonly payloads: ReadonlyArray<PayloadValue> }
  | { readonly _tag: "Broadcast"; readonly payloads: ReadonlyArray<PayloadValue> }
  | { readonly _tag: "All"; readonly replies: ReadonlyArray<Reply> }

export const Reply = {
  /** No reply: this branch of the thread ends. */
  none: { _tag: "None" } as Reply,
  /** Send to a named listener; the chain is extended by it. Several payloads fan out in parallel. */
  forward: (to: string, ...payloads: ReadonlyArray<PayloadValue>): Reply => ({ _tag: "Forward", to, payloads }),
  /** Reply to the caller; the chain is pruned by one hop. */
  respond: (...payloads: ReadonlyArray<PayloadValue>): Reply => ({ _tag: "Respond", payloads }),
  /** Send to every listener that accepts broadcasts of the payload's type. */
  broadcast: (...payloads: ReadonlyArray<PayloadValue>): Reply => ({ _tag: "Broadcast", payloads }),
  /** Several replies at once (parallel fan-out to different targets). */
  all: (...replies: ReadonlyArray<Reply>): Reply => ({ _tag: "All", replies })
} as const

export const isReply = (u: unknown): u is Reply =>
  typeof u === "object" && u !== null && "_tag" in u &&
  ["None", "Forward", "Respond", "Broadcast", "All"].includes((u as { _tag: string })._tag)
