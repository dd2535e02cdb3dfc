import { Either } from "effect"
import type { ThreadId } from "../../domain/Ids.js"
import type { PayloadValue, Reply } from "../../domain/Reply.js"
import { RawPayload } from "../../domain/Reply.js"
import { CanonicalReadError, readCanonical } from "../../domain/xml/CanonicalTree.js"

/**
 * What the built-in orchestration listeners need from the pump beyond a handler's usual
 * powers: to learn when a branch they started has ended without replying, and to reply on
 * a thread outside an invocation (from that notification).
 */
export interface PrimitiveContext {
  /** Runs `hook` once nothing is live at or below `thread` any more. */
  readonly onBranchEnd: (thread: ThreadId, hook: () => void) => void
  /** Sends `reply` from `listener` on `thread`, as if its handler had returned it. */
  readonly reply: (listener: string, thread: ThreadId, reply: Reply) => void
  /** A payload value as XML text (the payload element). */
  readonly xmlOf: (payload: unknown) => string
  /** Runs `hook` when the conversation `root` completes (state cleanup). */
  readonly onRootComplete: (root: ThreadId, hook: () => void) => void
  /** The root thread of a thread. */
  readonly rootOf: (thread: ThreadId) => ThreadId | undefined
  /** The hop a thread was forwarded from (its parent). */
  readonly callerThread: (thread: ThreadId) => ThreadId | undefined
}

/** A free-form XML field that must hold exactly one payload element → a RawPayload. */
export const payloadFromXml = (xml: string): Either.Either<PayloadValue, string> => {
  try {
    const el = readCanonical(xml)
    if (el.namespace !== "") return Either.left(`the payload <${el.localName}> must be in no namespace`)
    return Either.right(new RawPayload({ tag: el.localName, inner: xml.slice(el.contentStart, el.contentEnd) }))
  } catch (e) {
    return Either.left(
      e instanceof CanonicalReadError
        ? "expected exactly one payload element"
        : `not a payload element: ${e instanceof Error ? e.message : String(e)}`
    )
  }
}
