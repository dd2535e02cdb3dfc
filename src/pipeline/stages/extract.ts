import { Either } from "effect"
import { diagnostic } from "../../domain/Diagnostic.js"
import { type Envelope, ENVELOPE_NS } from "../../domain/Envelope.js"
import { MissingFrom, NoPayload, SeveralPayloads } from "../../domain/IngressError.js"
import { type CanonicalElement, textOf } from "../../domain/xml/CanonicalTree.js"
import type { Canonical } from "./canonicalize.js"

export interface Extracted {
  readonly envelope: Envelope
  /** The payload element in the canonical tree. */
  readonly payload: CanonicalElement
  /** Index of the payload among the root's element children (for XSD validation). */
  readonly payloadIndex: number
}

/**
 * Extract: meta fields (whitespace around them is not significant, as in xml-pipeline),
 * foreign-namespace extras, and exactly one payload element.
 */
export const extract = (canonical: Canonical): Either.Either<Extracted, NoPayload | SeveralPayloads | MissingFrom> => {
  const { root, text } = canonical
  let meta: CanonicalElement | undefined
  let payload: CanonicalElement | undefined
  let payloadIndex = -1
  let payloads = 0
  let index = 0
  for (const c of root.children) {
    if (typeof c === "string") continue
    if (meta === undefined && c.localName === "meta" && c.namespace === ENVELOPE_NS) meta = c
    else {
      payloads++
      if (payload === undefined) {
        payload = c
        payloadIndex = index
      }
    }
    index++
  }
  if (payload === undefined) return Either.left(new NoPayload({ diagnostics: [] }))
  if (payloads > 1) return Either.left(new SeveralPayloads({ diagnostics: [], count: payloads }))
  let from = ""
  let to: string | undefined
  let thread = ""
  const extras: Array<string> = []
  for (const f of meta!.children) {
    if (typeof f === "string") continue
    if (f.namespace !== ENVELOPE_NS) extras.push(text.slice(f.start, f.end))
    else if (f.localName === "from") from = textOf(f).trim()
    else if (f.localName === "to") to = textOf(f).trim()
    else if (f.localName === "thread") thread = textOf(f).trim()
  }
  if (from === "") return Either.left(new MissingFrom({ diagnostics: [diagnostic("<from> is empty")], stage: "extract" }))
  let payloadXml = text.slice(payload.start, payload.end)
  // Canonical XML writes the namespace undeclaration first; the payload on its own has none.
  const undeclare = `<${payload.qname} xmlns="">`
  if (payload.namespace === "" && payloadXml.startsWith(undeclare)) {
    payloadXml = `<${payload.qname}>${payloadXml.slice(undeclare.length)}`
  } else if (payload.namespace === "" && payloadXml.startsWith(`${undeclare.slice(0, -1)} `)) {
    // Further declarations or attributes follow (`xmlns:xsi="…"`): keep them whole.
    payloadXml = `<${payload.qname} ${payloadXml.slice(undeclare.length)}`
  }
  const envelope: Envelope = {
    from,
    ...(to === undefined || to === "" ? {} : { to }),
    thread,
    extras,
    payloadTag: payload.localName,
    payloadNamespace: payload.namespace,
    payloadXml
  }
  return Either.right({ envelope, payload, payloadIndex })
}
