/**
 * What a handler returns. The pump writes the envelopes: handlers never set from, to or
 * thread, so they cannot forge a sender or move a message into another conversation.
 */
import { Data, Either, ParseResult, Schema } from "effect"

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

/** A closed sum: `None | Forward | Respond | Broadcast | All`. */
export type Reply = Data.TaggedEnum<{
  /** No reply: this branch of the thread ends. */
  None: {}
  /** Send to a named listener; the chain is extended by it. Several payloads fan out in parallel. */
  Forward: { readonly to: string; readonly payloads: ReadonlyArray<PayloadValue> }
  /** Reply to the caller; the chain is pruned by one hop. */
  Respond: { readonly payloads: ReadonlyArray<PayloadValue> }
  /** Send to every listener that accepts broadcasts of the payload's type. */
  Broadcast: { readonly payloads: ReadonlyArray<PayloadValue> }
  /** Several replies at once (parallel fan-out to different targets). */
  All: { readonly replies: ReadonlyArray<Reply> }
}>

// Read once: `Data.taggedEnum` is a Proxy that builds a constructor on every property read.
const tagged = Data.taggedEnum<Reply>()
const None = tagged.None
const Forward = tagged.Forward
const Respond = tagged.Respond
const Broadcast = tagged.Broadcast
const All = tagged.All
const none = None()

export const Reply = {
  None,
  Forward,
  Respond,
  Broadcast,
  All,
  $is: tagged.$is,
  $match: tagged.$match,
  /** No reply: this branch of the thread ends. */
  none: none as Reply,
  /** Send to a named listener; the chain is extended by it. Several payloads fan out in parallel. */
  forward: (to: string, ...payloads: ReadonlyArray<PayloadValue>): Reply => Forward({ to, payloads }),
  /** Reply to the caller; the chain is pruned by one hop. */
  respond: (...payloads: ReadonlyArray<PayloadValue>): Reply => Respond({ payloads }),
  /** Send to every listener that accepts broadcasts of the payload's type. */
  broadcast: (...payloads: ReadonlyArray<PayloadValue>): Reply => Broadcast({ payloads }),
  /** Several replies at once (parallel fan-out to different targets). */
  all: (...replies: ReadonlyArray<Reply>): Reply => All({ replies })
} as const

const TAGS: ReadonlySet<string> = new Set(["None", "Forward", "Respond", "Broadcast", "All"])

/**
 * A quick look at the tag only, for telling a Reply from "nothing" or another value; what a
 * handler returns is checked in full by {@link decodeReply} at the dispatch boundary.
 */
export const isReply = (u: unknown): u is Reply =>
  typeof u === "object" && u !== null && "_tag" in u && TAGS.has((u as { _tag: string })._tag)

const Payloads = Schema.Array(Schema.Object.annotations({ description: "a payload object" }))

/**
 * A Reply as a Schema, for whatever a handler returns (JavaScript, a Promise, an untyped
 * module loaded from an organism file): decoding checks the whole shape, nested `All`
 * included. A payload is any object here — whether it is a payload the organism can write
 * is the encoder's question, answered per payload.
 */
export const ReplySchema: Schema.Schema<Reply> = Schema.Union(
  Schema.TaggedStruct("None", {}).annotations({ identifier: "Reply.None" }),
  Schema.TaggedStruct("Forward", { to: Schema.String, payloads: Payloads }).annotations({ identifier: "Reply.Forward" }),
  Schema.TaggedStruct("Respond", { payloads: Payloads }).annotations({ identifier: "Reply.Respond" }),
  Schema.TaggedStruct("Broadcast", { payloads: Payloads }).annotations({ identifier: "Reply.Broadcast" }),
  Schema.TaggedStruct("All", {
    replies: Schema.Array(Schema.suspend((): Schema.Schema<Reply> => ReplySchema))
  }).annotations({ identifier: "Reply.All" })
).annotations({ identifier: "Reply" })

const decode = Schema.decodeUnknownEither(ReplySchema)

const own = Object.prototype.hasOwnProperty

const isPayloads = (u: unknown): boolean => {
  if (!Array.isArray(u)) return false
  for (let i = 0; i < u.length; i++) {
    const p: unknown = u[i]
    if ((typeof p !== "object" || p === null) && typeof p !== "function") return false
  }
  return true
}

/**
 * What `Schema.is(ReplySchema)` answers, by hand: the pump checks every reply a handler
 * returns, and the Schema's interpreter costs ≈2.4 µs a reply (an eighth of a hop), this
 * ≈0.1 µs. A property test holds the two to the same answers.
 */
const valid = (u: unknown): u is Reply => {
  if (typeof u !== "object" || u === null || !own.call(u, "_tag")) return false
  const r = u as Record<string, unknown>
  switch (r._tag) {
    case "None":
      return true
    case "Forward":
      return own.call(r, "to") && typeof r.to === "string" && own.call(r, "payloads") && isPayloads(r.payloads)
    case "Respond":
    case "Broadcast":
      return own.call(r, "payloads") && isPayloads(r.payloads)
    case "All": {
      if (!own.call(r, "replies") || !Array.isArray(r.replies)) return false
      for (let i = 0; i < r.replies.length; i++) if (!valid(r.replies[i])) return false
      return true
    }
    default:
      return false
  }
}

/**
 * Decodes a handler's result into a Reply, or says in plain words what is wrong with it
 * (`Reply.Forward: ["payloads"] is missing`, `Expected Reply, actual 42`…). It accepts
 * exactly what `ReplySchema` decodes. A Reply (what `Schema.is(ReplySchema)` accepts) is
 * returned as it is, not copied, without running the Schema; the Schema runs for the rest,
 * to decode what it can (fields inherited rather than own) and to explain a refusal.
 */
export const decodeReply = (u: unknown): Either.Either<Reply, string> =>
  valid(u)
    ? Either.right(u)
    : Either.mapLeft(decode(u), (error) => ParseResult.TreeFormatter.formatErrorSync(error))
