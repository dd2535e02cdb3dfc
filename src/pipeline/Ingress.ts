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
import { type IngressError, InternalError, type Stage } from "../domain/IngressError.js"
import { type CompiledSchema, type SchemaCompileError, type XmlDocument, XmlEngine } from "../services/XmlEngine.js"
import { type AssignedThread, assignThread } from "./stages/assignThread.js"
import { type Canonical, canonicalize } from "./stages/canonicalize.js"
import { checkSize } from "./stages/checkSize.js"
import { type Decoded, decode } from "./stages/decode.js"
import { type Extracted, extract } from "./stages/extract.js"
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
  readonly run: (input: Uint8Array | string, routes: RouteResolver | undefined) => IngressOutcome
  /** `run` for a chunk of messages, stage by stage; outcomes in input order. */
  readonly runBatch: (inputs: ReadonlyArray<Uint8Array | string>, routes: RouteResolver | undefined) => Array<IngressOutcome>
}

export const makeIngress = (
  engine: XmlEngine.Service,
  envelopeSchema: CompiledSchema,
  config: IngressConfig
): Ingress => {
  const runUnsafe = (input: Uint8Array | string, routes: RouteResolver | undefined): IngressOutcome => {
    const sized = checkSize(input, config.maxBytes)
    if (Either.isLeft(sized)) return rejected(sized.left)
    const parsed = repair(engine, input, config.recover)
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
  /**
   * The same stages for a chunk of messages, one stage at a time across the chunk: the libxml2
   * code of each stage stays hot in the CPU caches instead of being evicted by the next
   * stage's code for every message. Outcomes are in input order.
   */
  const runBatchUnsafe = (inputs: ReadonlyArray<Uint8Array | string>, routes: RouteResolver | undefined): Array<IngressOutcome> => {
    const n = inputs.length
    const out: Array<IngressOutcome | undefined> = new Array(n)
    const docs: Array<XmlDocument | undefined> = new Array(n)
    const canon: Array<Canonical | undefined> = new Array(n)
    const extracted: Array<Extracted | undefined> = new Array(n)
    const threads: Array<AssignedThread | undefined> = new Array(n)
    try {
      for (let i = 0; i < n; i++) {
        const input = inputs[i]!
        const sized = checkSize(input, config.maxBytes)
        if (Either.isLeft(sized)) {
          out[i] = rejected(sized.left)
          continue
        }
        const parsed = repair(engine, input, config.recover)
        if (Either.isLeft(parsed)) out[i] = rejected(parsed.left)
        else docs[i] = parsed.right
      }
      for (let i = 0; i < n; i++) {
        const doc = docs[i]
        if (doc === undefined) continue
        const c = canonicalize(engine, doc, config.maxDepth)
        if (Either.isLeft(c)) out[i] = rejected(c.left, nothingSeen, undefined, doc.diagnostics)
        else canon[i] = c.right
      }
      for (let i = 0; i < n; i++) {
        const c = canon[i]
        if (c === undefined) continue
        const ok = validateEnvelope(engine, envelopeSchema, c)
        if (Either.isLeft(ok)) {
          out[i] = rejected(ok.left, nothingSeen, c.text, c.doc.diagnostics)
          continue
        }
        const e = extract(c)
        if (Either.isLeft(e)) {
          out[i] = rejected(e.left, nothingSeen, c.text, c.doc.diagnostics)
          continue
        }
        extracted[i] = e.right
        threads[i] = assignThread(e.right.envelope.thread)
      }
      for (let i = 0; i < n; i++) {
        const c = canon[i]
        const e = extracted[i]
        if (c === undefined || e === undefined) continue
        const thread = threads[i]!
        const envelope = e.envelope
        const notes = c.doc.diagnostics
        const diagnostics = thread.diagnostics.length === 0 ? notes : [...notes, ...thread.diagnostics]
        if (routes === undefined) {
          out[i] = { _tag: "Accepted", stage: "assign-thread", envelope, thread, canonical: c.text, repaired: c.doc.repaired, diagnostics, decoded: undefined }
          continue
        }
        const seen: Seen = { from: envelope.from, to: envelope.to, thread: thread.thread, payloadTag: envelope.payloadTag }
        const validated = validatePayload(engine, c, e, thread, routes)
        if (Either.isLeft(validated)) {
          out[i] = rejected(validated.left, seen, c.text, diagnostics)
          continue
        }
        const decoded = decode(c, validated.right)
        out[i] = Either.isLeft(decoded)
          ? rejected(decoded.left, seen, c.text, diagnostics)
          : { _tag: "Accepted", stage: "decode", envelope, thread, canonical: c.text, repaired: c.doc.repaired, diagnostics, decoded: decoded.right }
      }
    } finally {
      for (let i = 0; i < n; i++) if (docs[i] !== undefined) engine.release(docs[i]!)
    }
    return out as Array<IngressOutcome>
  }

  // Both are total: whatever throws inside (a trap in the WebAssembly module, a bug in a
  // stage) becomes an InternalError rejection of the message concerned, never an exception
  // that would end the pump's inbox fiber.
  const run = (input: Uint8Array | string, routes: RouteResolver | undefined): IngressOutcome => {
    try {
      return runUnsafe(input, routes)
    } catch (thrown) {
      return rejected(new InternalError({ diagnostics: [], detail: describeThrown(thrown) }))
    }
  }
  const runBatch = (inputs: ReadonlyArray<Uint8Array | string>, routes: RouteResolver | undefined): Array<IngressOutcome> => {
    try {
      return runBatchUnsafe(inputs, routes)
    } catch {
      // One message broke the batch: redo them one by one so only that one is rejected.
      return inputs.map((input) => run(input, routes))
    }
  }
  return { config, run, runBatch }
}

/** A thrown value as one line of text. */
export const describeThrown = (thrown: unknown): string =>
  thrown instanceof Error ? `${thrown.name}: ${thrown.message}` : String(thrown)

/** Compiles the envelope XSD (once) and returns the composed ingress. */
export const Ingress = {
  make: Effect.fn("Ingress.make")(function*(config: IngressConfig = defaultIngressConfig) {
    const engine = yield* XmlEngine
    const envelopeSchema = yield* engine.compileSchema("envelope", ENVELOPE_XSD)
    return makeIngress(engine, envelopeSchema, config)
  }) as (config?: IngressConfig) => Effect.Effect<Ingress, SchemaCompileError, XmlEngine | Scope.Scope>
}
