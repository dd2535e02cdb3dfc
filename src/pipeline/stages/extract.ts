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

/** What follows the payload's name in its start tag when the envelope undeclares its namespace. */
const UNDECLARE = ' xmlns=""'

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
  // Canonical XML writes the namespace undeclaration first; the payload on its own has none
  // (further declarations or attributes after it, `xmlns:xsi="…"`, are kept whole).
  const qname = payload.qname
  const afterName = payload.start + 1 + qname.length
  const rest = afterName + UNDECLARE.length
  const payloadXml = payload.namespace === "" && text.startsWith(UNDECLARE, afterName) &&
      (text.charCodeAt(rest) === 0x3e /* > */ || text.charCodeAt(rest) === 0x20)
    ? `<${qname}${text.slice(rest, payload.end)}`
    : text.slice(payload.start, payload.end)
  const envelope: Envelope = to === undefined || to === ""
    ? { from, thread, extras, payloadTag: payload.localName, payloadNamespace: payload.namespace, payloadXml }
    : { from, to, thread, extras, payloadTag: payload.localName, payloadNamespace: payload.namespace, payloadXml }
  return Either.right({ envelope, payload, payloadIndex })
}
