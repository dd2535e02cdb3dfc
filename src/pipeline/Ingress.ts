/**
 * The ingress half of the pipeline: size → parse → canonicalize → envelope → extract →
 * thread → route → payload → decode.
 *
 * Each stage is a typed transformation of a chunk of messages (`Stage<A, B>`): what one stage
 * produces is what the next one takes, and a message a stage rejects skips the rest as its
 * `Rejected` outcome. The stages run one at a time across the whole chunk, so the libxml2
 * code of each stays hot in the CPU caches instead of being evicted by the next stage's code
 * for every message. The pump, `organism inspect` and the tests all run this one composition;
 * `run(input)` is the chunk of one.
 */
import { Effect, Either, type Scope } from "effect"
import type { Diagnostic } from "../domain/Diagnostic.js"
import { ENVELOPE_XSD, type Envelope } from "../domain/Envelope.js"
import { defaultIngressConfig, type IngressConfig } from "../domain/IngressConfig.js"
import { type IngressError, InternalError, PayloadInvalid, type Stage as StageName } from "../domain/IngressError.js"
import type { DocPtr } from "../services/internal/libxml2.js"
import { type CompiledSchema, type SchemaCompileError, XmlDocument, XmlEngine } from "../services/XmlEngine.js"
import { readCanonical } from "../domain/xml/CanonicalTree.js"
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

/**
 * A stage: a typed transformation of a chunk. It rewrites the slots in place (no chunk is
 * copied per stage) and returns them typed as what they now hold.
 */
export type Stage<A, B> = (slots: Array<Slot<A>>) => Array<Slot<B>>

/**
 * A stage from what it does to one message (given its position in the chunk); rejected
 * messages pass through untouched.
 */
export const stage = <A, B>(f: (a: A, index: number) => Slot<B>): Stage<A, B> => (slots) => {
  for (let i = 0; i < slots.length; i++) {
    const s = slots[i]!
    if (!(s instanceof Rejected)) (slots as Array<unknown>)[i] = f(s, i)
  }
  return slots as unknown as Array<Slot<B>>
}

/** A message once its envelope is read: everything a later rejection can still report. */
interface Read extends Extracted {
  readonly canonical: Canonical
  readonly thread: AssignedThread
  readonly diagnostics: ReadonlyArray<Diagnostic>
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

export const makeIngress = (
  engine: XmlEngine.Service,
  envelopeSchema: CompiledSchema,
  config: IngressConfig
): Ingress => {
  const size = stage((input: Uint8Array | string): Slot<Uint8Array | string> => {
    const sized = checkSize(input, config.maxBytes)
    return Either.isLeft(sized) ? new Rejected(sized.left) : input
  })


  const envelope = stage((c: Canonical): Slot<Canonical> => {
    const ok = checkEnvelope(engine, envelopeSchema, c)
    return Either.isLeft(ok) ? new Rejected(ok.left, nothingSeen, c.text, c.doc.diagnostics) : c
  })

  const extracted = stage((c: Canonical): Slot<Extracted & { readonly canonical: Canonical }> => {
    const e = extract(c)
    if (Either.isLeft(e)) return new Rejected(e.left, nothingSeen, c.text, c.doc.diagnostics)
    return { envelope: e.right.envelope, payload: e.right.payload, payloadIndex: e.right.payloadIndex, canonical: c }
  })

  const thread = stage((e: Extracted & { readonly canonical: Canonical }): Slot<Read> => {
    const t = assignThread(e.envelope.thread)
    const notes = e.canonical.doc.diagnostics
    return {
      envelope: e.envelope,
      payload: e.payload,
      payloadIndex: e.payloadIndex,
      canonical: e.canonical,
      thread: t,
      diagnostics: t.diagnostics.length === 0 ? notes : [...notes, ...t.diagnostics]
    }
  })

  const routeWith = (routes: RouteResolver) =>
    stage((r: Read): Slot<Routed> => {
      const match = resolveRoute(routes, r.envelope, r.thread.thread)
      if (Either.isLeft(match)) return new Rejected(match.left, seenOf(r), r.canonical.text, r.diagnostics)
      return { ...r, route: match.right }
    })

  const payload = stage((r: Routed): Slot<Routed> => {
    const invalid = checkPayload(engine, r.canonical, r.payloadIndex, r.envelope.payloadTag, r.route)
    return invalid === undefined ? r : new Rejected(invalid, seenOf(r), r.canonical.text, r.diagnostics)
  })

  const decoded = stage((r: Routed): Slot<Accepted> => {
    const deliveries = decode(r.canonical.text, r.payload, r.envelope.payloadTag, r.route)
    return Either.isLeft(deliveries)
      ? new Rejected(deliveries.left, seenOf(r), r.canonical.text, r.diagnostics)
      : accepted(r, "decode", { route: r.route, deliveries: deliveries.right })
  })

  const unrouted = stage((r: Read): Slot<Accepted> => accepted(r, "thread", undefined))

  const runChunk = (
    inputs: ReadonlyArray<Uint8Array | string>,
    routes: RouteResolver | undefined,
    known: ReadonlyArray<boolean> | undefined
  ): Array<IngressOutcome> => {
    // Parsed documents live exactly as long as the chunk's stages: released whatever happens.
    const docs: Array<XmlDocument> = []
    const parsed = stage((input: Uint8Array | string): Slot<XmlDocument> => {
      const doc = parse(engine, input, config.recover)
      if (Either.isLeft(doc)) return new Rejected(doc.left)
      docs.push(doc.right)
      return doc.right
    })
    const canonical = stage((doc: XmlDocument, i): Slot<Canonical> => {
      const input = inputs[i]!
      const c = known?.[i] === true && typeof input === "string"
        ? alreadyCanonical(doc, input, config.maxDepth)
        : canonicalize(engine, doc, config.maxDepth)
      return Either.isLeft(c) ? new Rejected(c.left, nothingSeen, undefined, doc.diagnostics) : c.right
    })
    try {
      const read = thread(extracted(envelope(canonical(parsed(size(inputs.slice()))))))
      return routes === undefined ? unrouted(read) : decoded(payload(routeWith(routes)(read)))
    } finally {
      for (const doc of docs) engine.release(doc)
    }
  }

  // Both are total: whatever throws inside (a trap in the WebAssembly module, a bug in a
  // stage) becomes an InternalError rejection of the message concerned, never an exception
  // that would end the pump's inbox fiber.
  const run = (input: Uint8Array | string, routes: RouteResolver | undefined): IngressOutcome => {
    try {
      return runChunk([input], routes, undefined)[0]!
    } catch (thrown) {
      return new Rejected(new InternalError({ diagnostics: [], detail: describeThrown(thrown) }))
    }
  }
  const runBatch = (
    inputs: ReadonlyArray<Uint8Array | string>,
    routes: RouteResolver | undefined,
    known?: ReadonlyArray<boolean>
  ): Array<IngressOutcome> => {
    try {
      return runChunk(inputs, routes, known)
    } catch {
      // One message broke the chunk: redo them one by one so only that one is rejected.
      return inputs.map((input) => run(input, routes))
    }
  }

  /** A stand-in for the worker's document: it carries what later stages read, no handle. */
  const detached = (f: FrontPassed): XmlDocument => {
    const doc = new XmlDocument(0 as DocPtr, f.repaired, toDiagnostics(f.diagnostics))
    doc.released = true
    return doc
  }

  const finishChunk = (
    inputs: ReadonlyArray<Uint8Array | string>,
    fronts: ReadonlyArray<Front>,
    routes: RouteResolver,
    known: ReadonlyArray<boolean> | undefined,
    payloadSchemaId: (schema: CompiledSchema) => number
  ): Array<IngressOutcome> => {
    const slots = fronts.map((f, i): Slot<Extracted & { readonly canonical: Canonical }> => {
      if (!f.ok) return new Rejected(toError(f.error), nothingSeen, f.canonical, toDiagnostics(f.diagnostics))
      const text = f.text ?? (inputs[i] as string)
      // The worker read this text already (depth limit included): it reads the same here.
      const c: Canonical = { doc: detached(f), text, root: readCanonical(text, config.maxDepth) }
      const e = extract(c)
      if (Either.isLeft(e)) return new Rejected(e.left, nothingSeen, c.text, c.doc.diagnostics)
      return { envelope: e.right.envelope, payload: e.right.payload, payloadIndex: e.right.payloadIndex, canonical: c }
    })
    const routed = routeWith(routes)(thread(slots))
    // Messages whose route wants a schema the worker did not check (a type learned after the
    // worker's table was made) run inline from the start.
    const again: Array<number> = []
    const payloadChecked = stage((r: Routed, i): Slot<Routed> => {
      const f = fronts[i] as FrontPassed
      const targets = r.route.targets
      for (let t = 0; t < targets.length; t++) {
        const schema = targets[t]!.schema
        if (schema === undefined) continue
        if (payloadSchemaId(schema) !== f.schema) {
          again.push(i)
          return r
        }
        if (f.payloadErrors.length > 0) {
          return new Rejected(
            new PayloadInvalid({ diagnostics: toDiagnostics(f.payloadErrors), payloadTag: r.envelope.payloadTag }),
            seenOf(r),
            r.canonical.text,
            r.diagnostics
          )
        }
      }
      return r
    })
    const outcomes = decoded(payloadChecked(routed))
    for (const i of again) outcomes[i] = runBatch([inputs[i]!], routes, known === undefined ? undefined : [known[i] === true])[0]!
    return outcomes
  }

  const finish: Ingress["finish"] = (inputs, fronts, routes, known, payloadSchemaId) => {
    try {
      return finishChunk(inputs, fronts, routes, known, payloadSchemaId)
    } catch {
      // Something threw in the main thread's stages: the inline path decides, message by
      // message, exactly as it would have without the worker.
      return runBatch(inputs, routes, known)
    }
  }
  const front: Ingress["front"] = (inputs, known, payloads) => runFront(engine, envelopeSchema, config, payloads, inputs, known)
  return { config, run, runBatch, front, finish }
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
