/**
 * Fuzzing the pump: random bytes, random XML-ish token soup and random mutations of valid
 * envelopes, injected in bulk into one real pump. Whatever arrives, the pump never crashes,
 * every batch settles within a bounded time, every input ends in exactly one outcome (the
 * counters add up, nothing stays in flight) and no parsed document outlives its message.
 */
import { expect, layer } from "@effect/vitest"
import { Context, Effect, FastCheck as fc, Layer } from "effect"
import { Pump } from "../src/pipeline/Pump.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { ENVELOPE_NS, hostileOrganism, looseDocuments } from "./support/hostile.js"
import { expectBalanced, Note, Ping } from "./support/pump.js"

const THREAD = "550e8400-e29b-41d4-a716-446655440000"
const utf8 = (s: string) => new Uint8Array(Buffer.from(s, "utf8"))
const envelope = (meta: string, payload: string) => `<message xmlns="${ENVELOPE_NS}"><meta>${meta}</meta>${payload}</message>`

/** Valid envelopes of every route the organism has: the seeds mutations start from. */
const seeds = [
  envelope(`<from>outsider</from><to>sink</to><thread>${THREAD}</thread>`, `<Note xmlns=""><Text>hello</Text></Note>`),
  envelope(`<from>outsider</from><to>echo</to><thread>${THREAD}</thread>`, `<Ping xmlns=""><N>7</N></Ping>`),
  envelope(`<from>outsider</from><thread>not-a-uuid</thread>`, `<Note xmlns=""><Text>all of you</Text></Note>`),
  envelope(
    `<from>outsider</from><to>sink</to><thread>${THREAD}</thread><x:sig xmlns:x="urn:sig" a="1">abc</x:sig>`,
    `<Doc xmlns=""><Title>t</Title><Body><p a="1">x<![CDATA[<y>]]><!-- c --><q>z</q></p></Body></Doc>`
  ),
  `<?xml version="1.0" encoding="UTF-8"?>\n<e:message xmlns:e="${ENVELOPE_NS}"><e:meta><e:from> outsider </e:from>` +
  `<e:to>sink</e:to><e:thread>${THREAD}</e:thread></e:meta><Note><Text>a &amp; b &lt; c</Text></Note></e:message>`
].map(utf8)

/** Markup fragments that tend to reach parser corners when spliced in anywhere. */
const tokens = [
  "<", ">", "&", ";", "\"", "'", "=", "/", "]]>", "<![CDATA[", "<!--", "-->", "<?", "?>", "\u0000", "\u0001", "\uFFFE",
  "\uFEFF", "é", "😀", "&amp;", "&lt;", "&#0;", "&#x10FFFF;", "&#xD800;", "&e;", "&nbsp;", "<!DOCTYPE m [<!ENTITY e \"x\">]>",
  "<!DOCTYPE m SYSTEM \"http://127.0.0.1:9/x\">", "xmlns=\"\"", ` xmlns="${ENVELOPE_NS}"`, " xmlns=\"rel\"", " xmlns:p=\"\"",
  "<p:x>", "</meta>", "<meta>", "<from>", "</from>", "<to>admin</to>", "<thread>", "</thread>", "</message>",
  "<Note xmlns=\"\"><Text>x</Text></Note>", "<a>".repeat(70), "<a>".repeat(300), " a=\"1\" a=\"2\"", "<?xml version=\"1.0\"?>"
].map(utf8)

type Mutation =
  | { readonly _tag: "Flip"; readonly at: number; readonly byte: number }
  | { readonly _tag: "Truncate"; readonly at: number }
  | { readonly _tag: "Delete"; readonly at: number; readonly length: number }
  | { readonly _tag: "Duplicate"; readonly at: number; readonly length: number; readonly to: number }
  | { readonly _tag: "Insert"; readonly at: number; readonly token: number }

const position = fc.nat({ max: 100_000 })
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ _tag: fc.constant("Flip" as const), at: position, byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ _tag: fc.constant("Truncate" as const), at: position }),
  fc.record({ _tag: fc.constant("Delete" as const), at: position, length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ _tag: fc.constant("Duplicate" as const), at: position, length: fc.integer({ min: 1, max: 80 }), to: position }),
  fc.record({ _tag: fc.constant("Insert" as const), at: position, token: fc.nat({ max: tokens.length - 1 }) })
)

const concat = (...parts: ReadonlyArray<Uint8Array>) => new Uint8Array(Buffer.concat(parts))

const apply = (bytes: Uint8Array, m: Mutation): Uint8Array => {
  const n = bytes.length
  switch (m._tag) {
    case "Flip": {
      if (n === 0) return bytes
      const out = bytes.slice()
      out[m.at % n] = m.byte
      return out
    }
    case "Truncate":
      return bytes.subarray(0, m.at % (n + 1))
    case "Delete": {
      const at = m.at % (n + 1)
      return concat(bytes.subarray(0, at), bytes.subarray(at + m.length))
    }
    case "Duplicate": {
      const at = m.at % (n + 1)
      const to = m.to % (n + 1)
      return concat(bytes.subarray(0, to), bytes.subarray(at, at + m.length), bytes.subarray(to))
    }
    case "Insert": {
      const at = m.at % (n + 1)
      return concat(bytes.subarray(0, at), tokens[m.token]!, bytes.subarray(at))
    }
  }
}

const mutated: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 6 }))
  .map(([seed, mutations]) => mutations.reduce(apply, seeds[seed]!))

/** Tag soup: tokens and names in random order, now and then a well-formed envelope. */
const soup: fc.Arbitrary<Uint8Array> = fc
  .array(
    fc.oneof(
      fc.nat({ max: tokens.length - 1 }).map((i) => tokens[i]!),
      fc.constantFrom("message", "meta", "from", "to", "thread", "Note", "Text", "sink", "echo", THREAD).map(utf8),
      fc.constantFrom(...seeds)
    ),
    { maxLength: 30 }
  )
  .map((parts) => concat(...parts))

const bytes: fc.Arbitrary<Uint8Array> = fc.uint8Array({ maxLength: 600 })

/** Strings reach the engine by another path (encoded straight into the wasm heap). */
const strings: fc.Arbitrary<string> = fc.oneof(
  fc.fullUnicodeString({ maxLength: 200 }),
  fc.string({ unit: "binary", maxLength: 200 }),
  mutated.map((b) => Buffer.from(b).toString("utf8"))
)

// --- the pump -------------------------------------------------------------------------
class Fuzzed extends Context.Tag("test/Fuzzed")<Fuzzed, {
  readonly pump: Pump.Service
  readonly engine: XmlEngine.Service
  readonly baseline: number
}>() {
  static readonly layer = Layer.scoped(
    Fuzzed,
    Effect.gen(function*() {
      const engine = yield* XmlEngine
      // A small inbox: concurrent producers wait for permits while the pump works.
      const pump = yield* Pump.make(hostileOrganism({ inboxCapacity: 8 }))
      yield* pump.awaitIdle
      return { pump, engine, baseline: looseDocuments(engine.liveHandles()) }
    })
  ).pipe(Layer.provide(Pump.layerServices))
}

/** Injects a batch from four producers at once, then checks the invariants. */
const injectAll = (inputs: ReadonlyArray<Uint8Array | string>) =>
  Effect.gen(function*() {
    const { baseline, engine, pump } = yield* Fuzzed
    const before = pump.counters()
    yield* Effect.forEach(inputs, (input) => pump.injectRaw(input), { concurrency: 4, discard: true })
    yield* pump.awaitIdle.pipe(
      Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`a batch of ${inputs.length} did not settle in 5 s`) })
    )
    const after = pump.counters()
    const injected = after.injected - before.injected
    const outcomes = after.delivered - before.delivered + after.rejected - before.rejected + after.guardStopped -
      before.guardStopped
    // Replies (echo answering a Ping) are injected too, so at least one per input.
    expect(injected).toBeGreaterThanOrEqual(inputs.length)
    expect(outcomes).toBe(injected)
    expect(after.inFlight).toBe(0)
    expect(after.running).toBe(0)
    expect(looseDocuments(engine.liveHandles())).toBe(baseline)
  })

const batch = <A>(arb: fc.Arbitrary<A>) => fc.array(arb, { minLength: 1, maxLength: 40 })

// One pump serves every run, so a failure leaves it in a state shrinking cannot undo (a
// dead pump makes every shrink wait for the settle timeout): report the first failing batch.
const runs = (numRuns: number) => ({ fastCheck: { numRuns, endOnFailure: true } })

layer(Fuzzed.layer, { excludeTestServices: true })("fuzzing a real pump", (it) => {
  it.effect.prop("arbitrary bytes", [batch(bytes)], ([inputs]) => injectAll(inputs), runs(60))

  it.effect.prop("valid envelopes with bytes flipped, cut, deleted, duplicated and markup spliced in", [batch(mutated)], ([inputs]) =>
    injectAll(inputs), runs(150))

  it.effect.prop("tag soup of envelope fragments", [batch(soup)], ([inputs]) => injectAll(inputs), runs(80))

  it.effect.prop("strings, including lone surrogates", [batch(strings)], ([inputs]) => injectAll(inputs), runs(60))

  it.effect("afterwards the pump still delivers, and everything ever injected is accounted for", () =>
    Effect.gen(function*() {
      const { pump } = yield* Fuzzed
      const reply = yield* pump.request("echo", new Ping({ n: 41 }))
      expect(reply).toMatchObject({ n: 41 })
      yield* pump.inject("sink", new Note({ text: "still here" }))
      yield* pump.awaitIdle
      expectBalanced(pump)
      expect(pump.counters().rejected).toBeGreaterThan(1000)
      expect(pump.counters().delivered).toBeGreaterThan(100)
    }))
})
