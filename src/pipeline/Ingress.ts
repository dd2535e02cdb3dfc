/**
 * The ingress half of the pipeline, composed: ingress → repair → canonicalize → validate
 * envelope → extract → assign thread → validate payload → decode.
 *
 * Each stage is a typed transformation returning Either; this module only sequences them,
 * owns the parsed document for exactly the duration of one message, and records what was
 * seen so a rejection can still say who sent what.
 */
import { Effect, Either, type Scope } from "effect"
import type { Diagnostic } from "../domain/Diagnostic.js"
import { defaultIngressConfig, type IngressConfig } from "../domain/IngressConfig.js"
import { ENVELOPE_XSD, type Envelope } from "../domain/Envelope.js"
import type { IngressError, Stage } from "../domain/IngressError.js"
import { type CompiledSchema, type SchemaCompileError, XmlEngine } from "../services/XmlEngine.js"
import { type AssignedThread, assignThread } from "./stages/assignThread.js"
import { canonicalize } from "./stages/canonicalize.js"
import { checkSize } from "./stages/checkSize.js"
import { type Decoded, decode } from "./stages/decode.js"
import { extract } from "./stages/extract.js"
import { repair } from "./stages/repair.js"
import { validateEnvelope } from "./stages/validateEnvelope.js"

export { defaultIngressConfig, type IngressConfig } from "../domain/IngressConfig.js"
import { type RouteResolver, validatePayload } from "./stages/validatePayload.js"

/** What was read from a message before it was accepted or rejected. */
export interface Seen {
  readonly from: string | undefined
  readonly to: string | undefined
  readonly thread: string | undefined
  readonly payloadTag: string | undefined
}

const nothingSeen: Seen = { from: undefined, to: undefined, thread: undefined, payloadTag: undefined }

export interface Accepted {
  readonly _tag: "Accepted"
  /** The last stage that ran ("assign-thread" when no routes were given, else "decode"). */
  readonly stage: Stage
  readonly envelope: Envelope
  readonly thread: AssignedThread
  readonly canonical: string
  readonly repaired: boolean
  /** Repair notes and thread replacement notes. */
  readonly diagnostics: ReadonlyArray<Diagnostic>
  /** Present when routes were given. */
  readonly decoded: Decoded | undefined
}

export interface Rejected {
  readonly _tag: "Rejected"
  readonly error: IngressError
  readonly seen: Seen
  readonly canonical: string | undefined
  readonly diagnostics: ReadonlyArray<Diagnostic>
}

export type IngressOutcome = Accepted | Rejected

const rejected = (
  error: IngressError,
  seen: Seen = nothingSeen,
  canonical?: string,
  diagnostics: ReadonlyArray<Diagnostic> = []
): Rejected => ({ _tag: "Rejected", error, seen, canonical, diagnostics })

export interface Ingress {
  readonly config: IngressConfig
  /** Runs every ingress stage on one message. Pure apart from libxml2 work; never throws. */
  readonly run: (bytes: Uint8Array, routes: RouteResolver | undefined) => IngressOutcome
}

export const makeIngress = (
  engine: XmlEngine.Service,
  envelopeSchema: CompiledSchema,
  config: IngressConfig
): Ingress => {
  const run = (bytes: Uint8Array, routes: RouteResolver | undefined): IngressOutcome => {
    const sized = checkSize(bytes, config.maxBytes)
    if (Either.isLeft(sized)) return rejected(sized.left)
    const parsed = repair(engine, bytes, config.recover)
    if (Either.isLeft(parsed)) return rejected(parsed.left)
    const doc = parsed.right
    try {
      const notes = doc.diagnostics
      const canonical = canonicalize(engine, doc, config.maxDepth)
      if (Either.isLeft(canonical)) return rejected(canonical.left, nothingSeen, undefined, notes)
      const c = canonical.right
      const envelopeOk = validateEnvelope(engine, envelopeSchema, c)
      if (Either.isLeft(envelopeOk)) return rejected(envelopeOk.left, nothingSeen, c.text, notes)
      const extracted = extract(c)
      if (Either.isLeft(extracted)) return rejected(extracted.left, nothingSeen, c.text, notes)
      const envelope = extracted.right.envelope
      const thread = assignThread(envelope.thread)
      const diagnostics = thread.diagnostics.length === 0 ? notes : [...notes, ...thread.diagnostics]
      const seen: Seen = { from: envelope.from, to: envelope.to, thread: thread.thread, payloadTag: envelope.payloadTag }
      if (routes === undefined) {
        return {
          _tag: "Accepted",
          stage: "assign-thread",
          envelope,
          thread,
          canonical: c.text,
          repaired: doc.repaired,
          diagnostics,
          decoded: undefined
        }
      }
      const validated = validatePayload(engine, c, extracted.right, thread, routes)
      if (Either.isLeft(validated)) return rejected(validated.left, seen, c.text, diagnostics)
      const decoded = decode(c, validated.right)
      if (Either.isLeft(decoded)) return rejected(decoded.left, seen, c.text, diagnostics)
      return {
        _tag: "Accepted",
        stage: "decode",
        envelope,
        thread,
        canonical: c.text,
        repaired: doc.repaired,
        diagnostics,
        decoded: decoded.right
      }
    } finally {
      engine.release(doc)
    }
  }
  return { config, run }
}

/** Compiles the envelope XSD (once) and returns the composed ingress. */
export const Ingress = {
  make: Effect.fn("Ingress.make")(function*(config: IngressConfig = defaultIngressConfig) {
    const engine = yield* XmlEngine
    const envelopeSchema = yield* engine.compileSchema("envelope", ENVELOPE_XSD)
    return makeIngress(engine, envelopeSchema, config)
  }) as (config?: IngressConfig) => Effect.Effect<Ingress, SchemaCompileError, XmlEngine | Scope.Scope>
}
