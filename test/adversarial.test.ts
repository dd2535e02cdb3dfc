/**
 * The adversarial corpus: every file in test/adversarial/ is injected as raw bytes into a
 * real pump and must end in the outcome test/adversarial/expected.json gives it — accepted
 * (who sent it, who received it, on which thread, what payload) or rejected at a named
 * stage with a named kind — with the accounting exact for every single input.
 *
 * The corpus runs twice: with repair on (the default) the manifest applies as written; with
 * repair off every case the manifest marks `repaired` must become MalformedXml at repair
 * and every other case must keep its outcome, which pins down exactly what repair reaches.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Chunk, Context, Effect, Layer, Queue, Schema } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { isThreadId } from "../src/domain/Ids.js"
import { type IngressErrorKind, Stage } from "../src/domain/IngressError.js"
import type { MessageReceived, MessageRejected, PumpEvent } from "../src/domain/PumpEvent.js"
import { Pump } from "../src/pipeline/Pump.js"
import { Events } from "../src/services/Events.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { hostileOrganism, looseDocuments } from "./support/hostile.js"
import { expectBalanced } from "./support/pump.js"

// --- the manifest ---------------------------------------------------------------------
const kinds = [
  "MessageTooLarge",
  "InvalidEncoding",
  "MalformedXml",
  "DtdForbidden",
  "TooDeep",
  "WrongRoot",
  "WrongNamespace",
  "MissingMeta",
  "MissingFrom",
  "MissingThread",
  "EnvelopeInvalid",
  "NoPayload",
  "SeveralPayloads",
  "UnknownRoute",
  "PayloadInvalid",
  "DecodeFailed"
] as const satisfies ReadonlyArray<IngressErrorKind>
// A new kind of ingress error must be added here (and then to the corpus). InternalError is
// the pump's safety net for exceptions: no input may produce it, so the expected outcomes
// (whose kinds come from this list) can never name it. PeerViolation (a reply to a listener
// that is not a peer) and StageRejected (an organism's own stage) judge replies and
// organisms, not raw input: the corpus has no organism stage and no peers to violate.
// ApprovalDenied is a person's decision (approval: required), never the input's.
const everyKind: [
  Exclude<IngressErrorKind, (typeof kinds)[number] | "InternalError" | "PeerViolation" | "StageRejected" | "ApprovalDenied">
] extends [never] ? true : never = true

const Accepted = Schema.Struct({
  /** The sender as delivered (trimmed). */
  from: Schema.String,
  /** Every receiver, sorted. */
  to: Schema.NonEmptyArray(Schema.String),
  type: Schema.String,
  /** The root thread id the message travels on, or "replaced" for a fresh one. */
  thread: Schema.String,
  /** The payload in canonical form, as handlers' events show it. */
  payload: Schema.optional(Schema.String),
  /** echo's reply came back to the sender through the pipeline. */
  answered: Schema.optional(Schema.Boolean)
})

const Rejected = Schema.Struct({
  stage: Stage,
  kind: Schema.Literal(...kinds),
  /** A substring of the rejection's reason. */
  reason: Schema.optional(Schema.String)
})

const common = { repaired: Schema.optional(Schema.Boolean), note: Schema.NonEmptyString }
const Case = Schema.Union(
  Schema.Struct({ accepted: Accepted, ...common }),
  Schema.Struct({ rejected: Rejected, ...common })
)
type Case = typeof Case.Type
type Outcome = { readonly accepted: typeof Accepted.Type } | { readonly rejected: typeof Rejected.Type }

const dir = join(__dirname, "adversarial")
const manifest = Schema.decodeUnknownSync(Schema.Struct({ cases: Schema.Record({ key: Schema.String, value: Case }) }))(
  JSON.parse(readFileSync(join(dir, "expected.json"), "utf8"))
)
const cases = Object.entries(manifest.cases)

/** With repair off, what only the recovering parser could read is malformed. */
const strictOutcome = (c: Case): Outcome => c.repaired === true ? { rejected: { stage: "parse", kind: "MalformedXml" } } : c

// --- the organism (test/support/hostile.ts) ----------------------------------------------
const organism = (recover: boolean) => hostileOrganism({ ingress: { maxBytes: 65_536, maxDepth: 64, recover } })

class Corpus extends Context.Tag("test/Corpus")<Corpus, {
  readonly pump: Pump.Service
  readonly events: Queue.Dequeue<PumpEvent>
  readonly engine: XmlEngine.Service
  readonly baseline: { readonly documents: number; readonly schemas: number }
}>() {
  static readonly layer = (recover: boolean) =>
    Layer.scoped(
      Corpus,
      Effect.gen(function*() {
        const events = yield* (yield* Events).subscribe
        const engine = yield* XmlEngine
        const pump = yield* Pump.make(organism(recover))
        yield* pump.awaitIdle
        return { pump, events, engine, baseline: engine.liveHandles() }
      })
    ).pipe(Layer.provide(Pump.layerServices))
}

// --- running one case ---------------------------------------------------------------------
const isReceived = (e: PumpEvent): e is MessageReceived => e._tag === "MessageReceived"
const isRejected = (e: PumpEvent): e is MessageRejected => e._tag === "MessageRejected"

const runCase = (file: string, expected: Outcome) =>
  Effect.gen(function*() {
    const { events, pump } = yield* Corpus
    yield* Queue.takeAll(events)
    const before = pump.counters()
    yield* pump.injectRaw(new Uint8Array(readFileSync(join(dir, file))))
    // A crash of the pump's inbox fiber shows up as a message that never settles.
    yield* pump.awaitIdle.pipe(
      Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error(`${file} did not settle within 10 s`) })
    )
    const window = Chunk.toReadonlyArray(yield* Queue.takeAll(events))
    const after = pump.counters()
    const delta = {
      injected: after.injected - before.injected,
      delivered: after.delivered - before.delivered,
      rejected: after.rejected - before.rejected,
      guardStopped: after.guardStopped - before.guardStopped
    }
    const received = window.filter(isReceived)
    const rejections = window.filter(isRejected)
    expect(after.inFlight).toBe(0)

    if ("rejected" in expected) {
      const { kind, reason, stage } = expected.rejected
      expect(rejections.map((r) => `${r.stage}/${r.kind}`), rejections.map((r) => r.reason).join("\n")).toEqual([`${stage}/${kind}`])
      if (reason !== undefined) expect(rejections[0]!.reason).toContain(reason)
      expect(received).toEqual([])
      expect(delta).toEqual({ injected: 1, delivered: 0, rejected: 1, guardStopped: 0 })
      const key = `${stage}/${kind}`
      expect((after.rejectedBy[key] ?? 0) - (before.rejectedBy[key] ?? 0)).toBe(1)
      return
    }

    const a = expected.accepted
    expect(rejections.map((r) => `${r.stage}/${r.kind}: ${r.reason}`)).toEqual([])
    const mine = received.filter((e) => e.from === a.from)
    expect(mine.map((e) => e.to).sort()).toEqual(a.to)
    for (const e of mine) {
      expect(e.payloadType).toBe(a.type)
      if (a.thread === "replaced") {
        expect(isThreadId(e.root ?? "")).toBe(true)
        expect(e.diagnostics.join("\n")).toMatch(/replaced with a new root thread/)
      } else {
        expect(e.root).toBe(a.thread)
        expect(e.diagnostics.join("\n")).not.toMatch(/replaced with a new root thread/)
      }
      if (a.payload !== undefined) expect(e.payload).toBe(a.payload)
    }
    const replies = received.filter((e) => e.from !== a.from)
    const answered = a.answered === true ? 1 : 0
    if (answered === 1) {
      // The reply envelope the pump wrote (with the sender's name escaped) passed ingress.
      expect(replies.map((e) => [e.from, e.to, e.payloadType])).toEqual([["echo", a.from, "Pong"]])
    } else {
      expect(replies).toEqual([])
    }
    expect(delta).toEqual({ injected: 1 + answered, delivered: 1 + answered, rejected: 0, guardStopped: 0 })
  })

const corpus = (recover: boolean, outcomeOf: (c: Case) => Outcome) =>
  layer(Corpus.layer(recover), { excludeTestServices: true })(`repair ${recover ? "on" : "off"}`, (it) => {
    for (const [file, c] of cases) {
      const outcome = outcomeOf(c)
      const label = "rejected" in outcome ? `${outcome.rejected.stage}/${outcome.rejected.kind}` : `accepted`
      it.effect(`${file}: ${label}`, () => runCase(file, outcome))
    }

    it.effect("afterwards: the accounting balances and no XML document outlived its message", () =>
      Effect.gen(function*() {
        const { baseline, engine, pump } = yield* Corpus
        expectBalanced(pump)
        expect(pump.counters().injected).toBeGreaterThan(cases.length)
        expect(looseDocuments(engine.liveHandles())).toBe(looseDocuments(baseline))
      }))
  })

describe("adversarial corpus", () => {
  it("every file has an expectation and every expectation a file", () => {
    const files = readdirSync(dir).filter((f) => f !== "expected.json" && !f.startsWith(".")).sort()
    expect(cases.map(([file]) => file).sort()).toEqual(files)
    expect(files.length).toBeGreaterThanOrEqual(100)
  })

  it("the corpus reaches every kind of ingress rejection, and acceptance, with and without repair", () => {
    expect(everyKind).toBe(true)
    const seen = new Set(cases.flatMap(([, c]) => ("rejected" in c ? [c.rejected.kind] : [])))
    expect([...kinds].filter((k) => !seen.has(k))).toEqual([])
    expect(cases.filter(([, c]) => "accepted" in c && c.repaired === true).length).toBeGreaterThan(0)
    expect(cases.filter(([, c]) => "accepted" in c && c.repaired !== true).length).toBeGreaterThan(0)
  })
})

corpus(true, (c) => c)
corpus(false, strictOutcome)
