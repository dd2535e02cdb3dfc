import { Either } from "effect"
import { diagnostic } from "../../domain/Diagnostic.js"
import { MalformedXml, TooDeep } from "../../domain/IngressError.js"
import {
  CanonicalDepthError,
  type CanonicalElement,
  readCanonical
} from "../../domain/xml/CanonicalTree.js"
import type { XmlDocument, XmlEngine } from "../../services/XmlEngine.js"

/** A document in Exclusive C14N form, with the element tree read from that form. */
export interface Canonical {
  readonly doc: XmlDocument
  readonly text: string
  readonly root: CanonicalElement
}

/**
 * Canonicalize: Exclusive C14N 1.0 without comments — the form signatures are computed
 * over and the form every later stage reads. The configured depth limit is enforced here.
 * A document C14N cannot represent (a relative namespace URI) is malformed *for us*: it
 * could never be signed or compared, so it is rejected here rather than passed on.
 */
/**
 * A document whose text is already canonical (an envelope the pump wrote around content a
 * payload encoder wrote: a property test shows C14N gives it back unchanged) is read as it is.
 */
export const alreadyCanonical = (doc: XmlDocument, text: string, maxDepth: number): Either.Either<Canonical, TooDeep | MalformedXml> => {
  try {
    return Either.right({ doc, text, root: readCanonical(text, maxDepth) })
  } catch (e) {
    if (e instanceof CanonicalDepthError) return Either.left(new TooDeep({ diagnostics: [], limit: e.limit }))
    return Either.left(
      new MalformedXml({ diagnostics: [diagnostic(`canonical form unreadable: ${String(e)}`)], stage: "canonicalize" })
    )
  }
}

export const canonicalize = (
  engine: XmlEngine.Service,
  doc: XmlDocument,
  maxDepth: number
): Either.Either<Canonical, TooDeep | MalformedXml> => {
  const canonical = engine.canonicalize(doc)
  if (Either.isLeft(canonical)) {
    return Either.left(
      new MalformedXml({
        diagnostics: [diagnostic("no canonical form (Exclusive C14N 1.0)"), ...canonical.left.diagnostics],
        stage: "canonicalize"
      })
    )
  }
  return alreadyCanonical(doc, canonical.right, maxDepth)
}
