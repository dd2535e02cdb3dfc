import { Either } from "effect"
import type { PayloadValue } from "../../domain/Reply.js"
import { RawPayload } from "../../domain/Reply.js"
import { CanonicalReadError, readCanonical } from "../../domain/xml/CanonicalTree.js"

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
