import { Either } from "effect"
import type { Diagnostic } from "../../domain/Diagnostic.js"
import { ENVELOPE_NS } from "../../domain/Envelope.js"
import {
  EnvelopeInvalid,
  MissingFrom,
  MissingMeta,
  MissingThread,
  SeveralPayloads,
  WrongNamespace,
  WrongRoot
} from "../../domain/IngressError.js"
import { type CanonicalElement, childElements } from "../../domain/xml/CanonicalTree.js"
import type { CompiledSchema, XmlEngine } from "../../services/XmlEngine.js"
import type { Canonical } from "./canonicalize.js"

export type EnvelopeError =
  | WrongRoot
  | WrongNamespace
  | MissingMeta
  | MissingFrom
  | MissingThread
  | SeveralPayloads
  | EnvelopeInvalid

const isEnv = (el: CanonicalElement, name: string) => el.localName === name && el.namespace === ENVELOPE_NS

/**
 * The XSD says *that* an envelope is wrong; users need to know *which* rule it broke, so a
 * failed validation is classified from the tree into one kind per defect.
 */
const classify = (root: CanonicalElement, diagnostics: ReadonlyArray<Diagnostic>): EnvelopeError => {
  const children = childElements(root)
  const meta = children[0]
  if (meta === undefined || !isEnv(meta, "meta")) return new MissingMeta({ diagnostics })
  const fields = childElements(meta)
  if (!fields.some((f) => isEnv(f, "from"))) return new MissingFrom({ diagnostics })
  if (!fields.some((f) => isEnv(f, "thread"))) return new MissingThread({ diagnostics })
  const payloads = children.length - 1
  if (payloads > 1 && !children.slice(1).some((c) => isEnv(c, "meta"))) {
    return new SeveralPayloads({ diagnostics, count: payloads })
  }
  return new EnvelopeInvalid({ diagnostics })
}

/** Validate envelope: root must be `{envelope-ns}message`, then the envelope XSD. */
export const envelope = (
  engine: XmlEngine.Service,
  schema: CompiledSchema,
  canonical: Canonical
): Either.Either<Canonical, EnvelopeError> => {
  const root = canonical.root
  if (root.localName !== "message") return Either.left(new WrongRoot({ diagnostics: [], root: root.qname }))
  if (root.namespace !== ENVELOPE_NS) {
    return Either.left(new WrongNamespace({ diagnostics: [], namespace: root.namespace }))
  }
  const errors = engine.validateDocument(schema, canonical.doc)
  return errors.length === 0 ? Either.right(canonical) : Either.left(classify(root, errors))
}
