/**
 * The libxml2 half of the ingress stages — size → parse → canonicalize → envelope → extract,
 * and the payload XSD of the payload's type — as plain data that crosses a worker boundary
 * (structured clone keeps no classes). An ingress worker (XmlWorker.ts) runs `runFront` on its
 * own libxml2 instance; the main thread turns each result back into the very outcome the
 * inline stages give (Ingress.ts `finish`), running the JavaScript-only stages itself
 * (thread, route, decode) under the live route table.
 */
import { Either } from "effect"
import { Diagnostic } from "../../domain/Diagnostic.js"
import {
  DtdForbidden,
  EnvelopeInvalid,
  type IngressError,
  InternalError,
  InvalidEncoding,
  MalformedXml,
  MessageTooLarge,
  MissingFrom,
  MissingMeta,
  MissingThread,
  NoPayload,
  SeveralPayloads,
  TooDeep,
  WrongNamespace,
  WrongRoot
} from "../../domain/IngressError.js"
import type { IngressConfig } from "../../domain/IngressConfig.js"
import type { CompiledSchema, XmlDocument, XmlEngine } from "../../services/XmlEngine.js"
import { alreadyCanonical, canonicalize } from "../stages/canonicalize.js"
import { envelope as checkEnvelope } from "../stages/envelope.js"
import { extract } from "../stages/extract.js"
import { parse } from "../stages/parse.js"
import { checkSize } from "../stages/size.js"

/** A Diagnostic's fields. */
export interface PlainDiagnostic {
  readonly message: string
  readonly line?: number | undefined
  readonly column?: number | undefined
  readonly path?: string | undefined
}

/** An ingress error's tag and fields. */
export interface PlainError {
  readonly _tag: string
  readonly fields: Record<string, unknown>
  readonly diagnostics: ReadonlyArray<PlainDiagnostic>
}

/** A message one of the front stages rejected. */
export interface FrontRejected {
  readonly ok: false
  readonly error: PlainError
  /** The canonical text, when the message got that far. */
  readonly canonical: string | undefined
  readonly diagnostics: ReadonlyArray<PlainDiagnostic>
}

/** A message that passed the front stages. */
export interface FrontPassed {
  readonly ok: true
  /** The canonical text; undefined when it is the input string itself (known canonical). */
  readonly text: string | undefined
  readonly repaired: boolean
  /** The parser's notes (warnings, repaired errors). */
  readonly diagnostics: ReadonlyArray<PlainDiagnostic>
  /** The payload schema validated against (its id in the version's table), or -1: none. */
  readonly schema: number
  /** That validation's errors (empty: valid). */
  readonly payloadErrors: ReadonlyArray<PlainDiagnostic>
}

export type Front = FrontRejected | FrontPassed

export const plainDiagnostics = (ds: ReadonlyArray<Diagnostic>): ReadonlyArray<PlainDiagnostic> =>
  ds.length === 0 ? [] : ds.map((d) => ({ ...d }))

const noDiagnostics: ReadonlyArray<Diagnostic> = Object.freeze([])

export const toDiagnostics = (ds: ReadonlyArray<PlainDiagnostic>): ReadonlyArray<Diagnostic> =>
  ds.length === 0 ? noDiagnostics : ds.map((d) => new Diagnostic(d, true))

export const plainError = (e: IngressError | InternalError): PlainError => {
  const { _tag, diagnostics, ...fields } = { ...e } as unknown as { _tag: string; diagnostics: ReadonlyArray<Diagnostic> }
  return { _tag: e._tag, fields, diagnostics: plainDiagnostics(diagnostics) }
}

/** The error kinds the front stages produce, by tag. */
const frontErrors: Record<string, new(fields: any, skipValidation?: boolean) => IngressError | InternalError> = {
  MessageTooLarge,
  InvalidEncoding,
  MalformedXml,
  DtdForbidden,
  TooDeep,
  WrongRoot,
  WrongNamespace,
  MissingMeta,
  MissingFrom,
  MissingThread,
  EnvelopeInvalid,
  NoPayload,
  SeveralPayloads,
  InternalError
}

export const toError = (e: PlainError): IngressError | InternalError => {
  const make = frontErrors[e._tag]
  if (make === undefined) {
    return new InternalError({ diagnostics: [], detail: `an ingress worker returned an unknown error kind ${e._tag}` })
  }
  // Validated like the inline stages' errors are: the same defaults, the same field order.
  return new make({ diagnostics: toDiagnostics(e.diagnostics), ...e.fields })
}

/** What a worker validates payloads with: each known payload tag (lowercase) → its schema. */
export interface PayloadSchemas {
  readonly byTag: ReadonlyMap<string, { readonly id: number; readonly schema: CompiledSchema }>
}

const describe = (thrown: unknown): string =>
  thrown instanceof Error ? `${thrown.name}: ${thrown.message}` : String(thrown)

/** The front stages for one message, in the order the inline stages run them. */
const frontOf = (
  engine: XmlEngine.Service,
  envelopeSchema: CompiledSchema,
  config: IngressConfig,
  payloads: PayloadSchemas,
  input: Uint8Array | string,
  known: boolean
): Front => {
  const sized = checkSize(input, config.maxBytes)
  if (Either.isLeft(sized)) return { ok: false, error: plainError(sized.left), canonical: undefined, diagnostics: [] }
  const parsed = parse(engine, input, config.recover)
  if (Either.isLeft(parsed)) return { ok: false, error: plainError(parsed.left), canonical: undefined, diagnostics: [] }
  const doc: XmlDocument = parsed.right
  try {
    const notes = plainDiagnostics(doc.diagnostics)
    const c = known && typeof input === "string"
      ? alreadyCanonical(doc, input, config.maxDepth)
      : canonicalize(engine, doc, config.maxDepth)
    if (Either.isLeft(c)) return { ok: false, error: plainError(c.left), canonical: undefined, diagnostics: notes }
    const canonical = c.right
    const valid = checkEnvelope(engine, envelopeSchema, canonical)
    if (Either.isLeft(valid)) return { ok: false, error: plainError(valid.left), canonical: canonical.text, diagnostics: notes }
    const e = extract(canonical)
    if (Either.isLeft(e)) return { ok: false, error: plainError(e.left), canonical: canonical.text, diagnostics: notes }
    const entry = payloads.byTag.get(e.right.envelope.payloadTag.toLowerCase())
    const payloadErrors = entry === undefined
      ? []
      : plainDiagnostics(engine.validateRootChild(entry.schema, doc, e.right.payloadIndex))
    return {
      ok: true,
      text: canonical.text === input ? undefined : canonical.text,
      repaired: doc.repaired,
      diagnostics: notes,
      schema: entry === undefined ? -1 : entry.id,
      payloadErrors
    }
  } finally {
    engine.release(doc)
  }
}

/** The front stages for a chunk; results in input order. Never throws. */
export const runFront = (
  engine: XmlEngine.Service,
  envelopeSchema: CompiledSchema,
  config: IngressConfig,
  payloads: PayloadSchemas,
  inputs: ReadonlyArray<Uint8Array | string>,
  known: ReadonlyArray<boolean> | undefined
): Array<Front> =>
  inputs.map((input, i) => {
    try {
      return frontOf(engine, envelopeSchema, config, payloads, input, known?.[i] === true)
    } catch (thrown) {
      return {
        ok: false,
        error: plainError(new InternalError({ diagnostics: [], detail: describe(thrown) })),
        canonical: undefined,
        diagnostics: []
      }
    }
  })
