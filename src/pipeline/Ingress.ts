/**
 * The ingress half of the pipeline: size → parse → canonicalize → envelope → extract →
 * thread → route → payload → decode.
 *
 * Each stage is a typed transformation of a chunk of messages: what one stage
 * produces is what the next one takes, and a message a stage rejects skips the rest as its
 * `Rejected` outcome. The stages run one at a time across the whole chunk, so the libxml2
 * code of each stays hot in the CPU caches instead of being evicted by the next stage's code
 * for every message (extract, thread and route, JavaScript only, share one pass). The pump, `organism inspect` and the tests all run this one composition;
 * `run(input)` is the chunk of one.
 */
import { Effect, Either, type Scope } from "effect"
import type { Diagnostic } from "../domain/Diagnostic.js"
import { ENVELOPE_XSD, type Envelope } from "../domain/Envelope.js"
import { defaultIngressConfig, type IngressConfig } from "../domain/IngressConfig.js"
import { type IngressError, InternalError, PayloadInvalid, type Stage as StageName } from "../domain/IngressError.js"
import type { DocPtr } from "../services/internal/libxml2.js"
import { type CompiledSchema, type SchemaCompileError, XmlDocument, XmlEngine } from "../services/XmlEngine.js"
import { type CanonicalElement, readCanonical } from "../domain/xml/CanonicalTree.js"
import { type Front, type FrontPassed, type PayloadSchemas, runFront, toDiagnostics, toError } from "./internal/IngressFront.js"
import type { RouteMatch, RouteResolver } from "./Router.js"
import { alreadyCanonical, type Canonical, canonicalize } from "./stages/canonicalize.js"
import { decode, type Delivery } from "./stages/decode.js"
import { envelope as checkEnvelope } from "./stages/envelope.js"
import { type Extracted, extract } from "./stages/extract.js"
import { parse } from "./stages/parse.js"
import { payload as checkPayload } from "./stages/payload.js"
import { route as resolveRoute } from "./stages/route.js"
import { checkSize } from "./stages/size.js"
import { type AssignedThread, assignThread } from "./stages/thread.js"

export { defaultIngressConfig, type IngressConfig } from "../domain/IngressConfig.js"

/** What was read from a message before it was accepted or rejected. */
export interface Seen {
  readonly from: string | undefined
  readonly to: string | undefined
  readonly thread: string | undefined
  readonly payloadTag: string | undefined
}

const nothingSeen: Seen = { from: undefined, to: undefined, thread: undefined, payloadTag: undefined }

/** What the stages decided to deliver, and to whom. */
export interface Decoded {
  readonly route: RouteMatch
  readonly deliveries: ReadonlyArray<Delivery>
}

export interface Accepted {
  readonly _tag: "Accepted"
  /** The last stage that ran ("thread" when no routes were given, else "decode"). */
  readonly stage: StageName
  readonly envelope: Envelope
  readonly thread: AssignedThread
  readonly canonical: string
  readonly repaired: boolean
  /** Repair notes and thread replacement notes. */
  readonly diagnostics: ReadonlyArray<Diagnostic>
  /** Present when routes were given. */
  readonly decoded: Decoded | undefined
}

export class Rejected {
  readonly _tag = "Rejected"
  constructor(
    readonly error: IngressError,
    readonly seen: Seen = nothingSeen,
    /** The canonical text, when the message got that far. */
    readonly canonical: string | undefined = undefined,
    readonly diagnostics: ReadonlyArray<Diagnostic> = []
  ) {}
}

export type IngressOutcome = Accepted | Rejected

/** A message between two stages: what the last stage made of it, or its rejection. */
export type Slot<A> = A | Rejected

// Each stage below is a typed transformation of a chunk: it rewrites the slots in place (no
// chunk is copied per stage) and returns them typed as what they now hold; rejected messages
// pass through untouched. Each is a loop of its own at module level rather than one generic
// loop calling a function per stage: that call saw every stage's function, so V8 inlined none
// of them, and the closures made per pump and per chunk were compiled anew for every pump.

/**
 * A message once its envelope is read: everything a later rejection can still report. One
 * object carries it through the rest of the stages (the route stage fills in `route`).
 */
class Read implements Extracted {
  route: RouteMatch | undefined = undefined
  constructor(
    readonly canonical: Canonical,
    readonly envelope: Envelope,
    readonly payload: CanonicalElement,
    readonly payloadIndex: number,
    readonly thread: AssignedThread,
    readonly diagnostics: ReadonlyArray<Diagnostic>
  ) {}
}

interface Routed extends Read {
  readonly route: RouteMatch
}

const seenOf = (r: Read): Seen => ({
  from: r.envelope.from,
  to: r.envelope.to,
  thread: r.thread.thread,
  payloadTag: r.envelope.payloadTag
})

const accepted = (r: Read, stage: StageName, decoded: Decoded | undefined): Accepted => ({
  _tag: "Accepted",
  stage,
  envelope: r.envelope,
  thread: r.thread,
  canonical: r.canonical.text,
  repaired: r.canonical.doc.repaired,
  diagnostics: r.diagnostics,
  decoded
})

/** The slots as an array of anything: a stage writes its own type over the last one's. */
const rewritten = <A>(slots: Array<Slot<A>>): Array<unknown> => slots as Array<unknown>

/** Size, then parse; the documents parsed are added to `docs` (the caller releases them). */
const sizedAndParsed = (
  engine: XmlEngine.Service,
  config: IngressConfig,
  inputs: Array<Slot<Uint8Array | string>>,
  docs: Array<XmlDocument>
): Array<Slot<XmlDocument>> => {
  const out = rewritten(inputs)
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i]!
    if (input instanceof Rejected) continue
    const sized = checkSize(input, config.maxBytes)
    if (Either.isLeft(sized)) {
      out[i] = new Rejected(sized.left)
      continue
    }
    const doc = parse(engine, input, config.recover)
    if (Either.isLeft(doc)) {
      out[i] = new Rejected(doc.left)
      continue
    }
    docs.push(doc.right)
    out[i] = doc.right
  }
  return out as Array<Slot<XmlDocument>>
}

/** Canonicalize; `known[i]`: input i is canonical already (an envelope the pump wrote). */
const canonicalized = (
  engine: XmlEngine.Service,
  config: IngressConfig,
  docs: Array<Slot<XmlDocument>>,
  inputs: ReadonlyArray<Uint8Array | string>,
  known: ReadonlyArray<boolean> | undefined
): Array<Slot<Canonical>> => {
  const out = rewritten(docs)
  for (let i = 0; i < docs.length; i++) {
    const doc = docs[i]!
    if (doc instanceof Rejected) continue
    const input = inputs[i]!
    const c = known?.[i] === true && typeof input === "string"
      ? alreadyCanonical(doc, input, config.maxDepth)
      : canonicalize(engine, doc, config.maxDepth)
    out[i] = Either.isLeft(c) ? new Rejected(c.left, nothingSeen, undefined, doc.diagnostics) : c.right
  }
  return out as Array<Slot<Canonical>>
}

/** The envelope XSD. */
const envelopeChecked = (
  engine: XmlEngine.Service,
  envelopeSchema: CompiledSchema,
  slots: Array<Slot<Canonical>>
): Array<Slot<Canonical>> => {
  for (let i = 0; i < slots.length; i++) {
    const c = slots[i]!
    if (c instanceof Rejected) continue
    const ok = checkEnvelope(engine, envelopeSchema, c)
    if (Either.isLeft(ok)) slots[i] = new Rejected(ok.left, nothingSeen, c.text, c.doc.diagnostics)
  }
  return slots
}

/** Extract, then thread (JavaScript only: one pass). */
const readEnvelope = (c: Canonical): Slot<Read> => {
  const e = extract(c)
  if (Either.isLeft(e)) return new Rejected(e.left, nothingSeen, c.text, c.doc.diagnostics)
  const { envelope, payload, payloadIndex } = e.right
  const t = assignThread(envelope.thread)
  const notes = c.doc.diagnostics
  return new Read(c, envelope, payload, payloadIndex, t, t.diagnostics.length === 0 ? notes : [...notes, ...t.diagnostics])
}

/** Extract, thread, and route when routes are given (JavaScript only: one pass). */
const readAndRouted = (slots: Array<Slot<Canonical>>, routes: RouteResolver | undefined): Array<Slot<Read>> => {
  const out = rewritten(slots)
  for (let i = 0; i < slots.length; i++) {
    const c = slots[i]!
    if (c instanceof Rejected) continue
    const r = readEnvelope(c)
    out[i] = routes === undefined || r instanceof Rejected ? r : routed(r, routes)
  }
  return out as Array<Slot<Read>>
}

const routed = (r: Read, routes: RouteResolver): Slot<Read> => {
  const match = resolveRoute(routes, r.envelope, r.thread.thread)
  if (Either.isLeft(match)) return new Rejected(match.left, seenOf(r), r.canonical.text, r.diagnostics)
  r.route = match.right
  return r
}

/** The payload XSD of every receiver. */
const payloadChecked = (engine: XmlEngine.Service, slots: Array<Slot<Routed>>): Array<Slot<Routed>> => {
  for (let i = 0; i < slots.length; i++) {
    const r = slots[i]!
    if (r instanceof Rejected) continue
    const invalid = checkPayload(engine, r.canonical, r.payloadIndex, r.envelope.payloadTag, r.route)
    if (invalid !== undefined) slots[i] = new Rejected(invalid, seenOf(r), r.canonical.text, r.diagnostics)
  }
  return slots
}

const decoded = (slots: Array<Slot<Routed>>): Array<Slot<Accepted>> => {
  const out = rewritten(slots)
  for (let i = 0; i < slots.length; i++) {
    const r = slots[i]!
    if (r instanceof Rejected) continue
    const deliveries = decode(r.canonical.text, r.payload, r.envelope.payloadTag, r.route)
    out[i] = Either.isLeft(deliveries)
      ? new Rejected(deliveries.left, seenOf(r), r.canonical.text, r.diagnostics)
      : accepted(r, "decode", { route: r.route, deliveries: deliveries.right })
  }
  return out as Array<Slot<Accepted>>
}

const unrouted = (slots: Array<Slot<Read>>): Array<Slot<Accepted>> => {
  const out = rewritten(slots)
  for (let i = 0; i < slots.length; i++) {
    const r = slots[i]!
    if (!(r instanceof Rejected)) out[i] = accepted(r, "thread", undefined)
  }
  return out as Array<Slot<Accepted>>
}

export interface Ingress {
  readonly config: IngressConfig
  /** Every ingress stage for one message: the chunk of one. Never throws. */
  readonly run: (input: Uint8Array | string, routes: RouteResolver | undefined) => IngressOutcome
  /**
   * Every ingress stage for a chunk of messages; outcomes in input order. Without routes it
   * stops after `thread` (what `inspect` shows of an envelope on its own). `canonical[i]`
   * says input i is known to be canonical already (an envelope the pump wrote): it is
   * parsed and validated like any other, but not canonicalized again. Never throws.
   */
  readonly runBatch: (
    inputs: ReadonlyArray<Uint8Array | string>,
    routes: RouteResolver | undefined,
    canonical?: ReadonlyArray<boolean>
  ) => Array<IngressOutcome>
  /**
   * The libxml2 stages of a chunk on this thread, as an ingress worker runs them
   * (internal/IngressFront.ts): what the pump does itself while its workers are busy.
   */
  readonly front: (
    inputs: ReadonlyArray<Uint8Array | string>,
    canonical: ReadonlyArray<boolean> | undefined,
    payloads: PayloadSchemas
  ) => Array<Front>
  /**
   * The rest of `runBatch` after an ingress worker ran the libxml2 stages of the chunk
   * (internal/IngressFront.ts): thread, route, payload (the worker's verdict for the payload
   * schema it checked) and decode. The outcomes are the ones `runBatch` gives for the same
   * inputs. `payloadSchemaId` names the schema behind an id of the worker's table. Never throws.
   */
  readonly finish: (
    inputs: ReadonlyArray<Uint8Array | string>,
    fronts: ReadonlyArray<Front>,
    routes: RouteResolver,
    canonical: ReadonlyArray<boolean> | undefined,
    payloadSchemaId: (schema: CompiledSchema) => number
  ) => Array<IngressOutcome>
}

/**
 * The composed stages of one engine and envelope schema. A class, so that its methods are
 * the same functions for every pump: a fresh pump finds them optimized already.
 */
class Stages implements Ingress {
  constructor(
    readonly engine: XmlEngine.Service,
    readonly envelopeSchema: CompiledSchema,
    readonly config: IngressConfig
  ) {}

  private runChunk(
    inputs: ReadonlyArray<Uint8Array | string>,
    routes: RouteResolver | undefined,
    known: ReadonlyArray<boolean> | undefined
  ): Array<IngressOutcome> {
    const { engine, config } = this
    // Parsed documents live exactly as long as the chunk's stages: released whatever happens.
    const docs: Array<XmlDocument> = []
    try {
      const canonical = canonicalized(engine, config, sizedAndParsed(engine, config, inputs.slice(), docs), inputs, known)
      const read = readAndRouted(envelopeChecked(engine, this.envelopeSchema, canonical), routes)
      return routes === undefined ? unrouted(read) : decoded(payloadChecked(engine, read as Array<Slot<Routed>>))
    } finally {
      for (const doc of docs) engine.release(doc)
    }
  }

  // Both are total: whatever throws inside (a trap in the WebAssembly module, a bug in a
  // stage) becomes an InternalError rejection of the message concerned, never an exception
  // that would end the pump's inbox fiber.
  run(input: Uint8Array | string, routes: RouteResolver | undefined): IngressOutcome {
    try {
      return this.runChunk([input], routes, undefined)[0]!
    } catch (thrown) {
      return new Rejected(new InternalError({ diagnostics: [], detail: describeThrown(thrown) }))
    }
  }

  runBatch(
    inputs: ReadonlyArray<Uint8Array | string>,
    routes: RouteResolver | undefined,
    known?: ReadonlyArray<boolean>
  ): Array<IngressOutcome> {
    try {
      return this.runChunk(inputs, routes, known)
    } catch {
      // One message broke the chunk: redo them one by one so only that one is rejected.
      return inputs.map((input) => this.run(input, routes))
    }
  }

  front(
    inputs: ReadonlyArray<Uint8Array | string>,
    known: ReadonlyArray<boolean> | undefined,
    payloads: PayloadSchemas
  ): Array<Front> {
    return runFront(this.engine, this.envelopeSchema, this.config, payloads, inputs, known)
  }

  finish(
    inputs: ReadonlyArray<Uint8Array | string>,
    fronts: ReadonlyArray<Front>,
    routes: RouteResolver,
    known: ReadonlyArray<boolean> | undefined,
    payloadSchemaId: (schema: CompiledSchema) => number
  ): Array<IngressOutcome> {
    try {
      return this.finishChunk(inputs, fronts, routes, known, payloadSchemaId)
    } catch {
      // Something threw in the main thread's stages: the inline path decides, message by
      // message, exactly as it would have without the worker.
      return this.runBatch(inputs, routes, known)
    }
  }

  private finishChunk(
    inputs: ReadonlyArray<Uint8Array | string>,
    fronts: ReadonlyArray<Front>,
    routes: RouteResolver,
    known: ReadonlyArray<boolean> | undefined,
    payloadSchemaId: (schema: CompiledSchema) => number
  ): Array<IngressOutcome> {
    const maxDepth = this.config.maxDepth
    const slots = fronts.map((f, i): Slot<Read> => {
      if (!f.ok) return new Rejected(toError(f.error), nothingSeen, f.canonical, toDiagnostics(f.diagnostics))
      const text = f.text ?? (inputs[i] as string)
      // The worker read this text already (depth limit included): it reads the same here.
      const c: Canonical = { doc: detached(f), text, root: readCanonical(text, maxDepth) }
      const r = readEnvelope(c)
      return r instanceof Rejected ? r : routed(r, routes)
    })
    // Messages whose route wants a schema the worker did not check (a type learned after the
    // worker's table was made) run inline from the start.
    const again: Array<number> = []
    for (let i = 0; i < slots.length; i++) {
      const r = slots[i]!
      if (r instanceof Rejected) continue
      const f = fronts[i] as FrontPassed
      const targets = r.route!.targets
      for (let t = 0; t < targets.length; t++) {
        const schema = targets[t]!.schema
        if (schema === undefined) continue
        if (payloadSchemaId(schema) !== f.schema) {
          again.push(i)
          break
        }
        if (f.payloadErrors.length > 0) {
          slots[i] = new Rejected(
            new PayloadInvalid({ diagnostics: toDiagnostics(f.payloadErrors), payloadTag: r.envelope.payloadTag }),
            seenOf(r),
            r.canonical.text,
            r.diagnostics
          )
          break
        }
      }
    }
    const outcomes = decoded(slots as Array<Slot<Routed>>)
    for (const i of again) outcomes[i] = this.runBatch([inputs[i]!], routes, known === undefined ? undefined : [known[i] === true])[0]!
    return outcomes
  }
}

/** A stand-in for the worker's document: it carries what later stages read, no handle. */
const detached = (f: FrontPassed): XmlDocument => {
  const doc = new XmlDocument(0 as DocPtr, f.repaired, toDiagnostics(f.diagnostics))
  doc.released = true
  return doc
}

export const makeIngress = (
  engine: XmlEngine.Service,
  envelopeSchema: CompiledSchema,
  config: IngressConfig
): Ingress => new Stages(engine, envelopeSchema, config)

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
