/**
 * Ingress workers (pipeline/internal/XmlWorkers.ts): the libxml2 stages of a chunk run in a
 * worker thread with its own libxml2 instance and schemas, the rest on the pump's thread.
 * Outcomes are the inline path's, message for message; a worker that dies is replaced and its
 * chunk re-run; a reload recompiles in the workers; and the workers end with their Scope.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Context, Effect, FastCheck as fc, Layer, Option, Schema } from "effect"
import { spawnSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { writeEnvelope } from "../src/domain/Envelope.js"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import * as Payload from "../src/domain/Payload.js"
import { Reply } from "../src/domain/Reply.js"
import { Ingress, type IngressOutcome, type Rejected } from "../src/pipeline/Ingress.js"
import { Pump } from "../src/pipeline/Pump.js"
import { makeXmlWorkers, type WorkerVersion, type XmlWorkers } from "../src/pipeline/internal/XmlWorkers.js"
import { makeRouter, type RouteResolver, type Router, routesForPayloads } from "../src/pipeline/Router.js"
import { ThreadRegistry } from "../src/services/ThreadRegistry.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { Question } from "./fixtures/modules.js"
import { loadOrganism } from "./support/files.js"
import { ENVELOPE_NS, hostileOrganism } from "./support/hostile.js"
import { Doc } from "./support/payloads.js"
import { expectBalanced, layerWithoutModels, Note, Ping, withPump } from "./support/pump.js"

const THREAD = "550e8400-e29b-41d4-a716-446655440000"
const envelope = (meta: string, payload: string) => `<message xmlns="${ENVELOPE_NS}"><meta>${meta}</meta>${payload}</message>`
const utf8 = (s: string) => new Uint8Array(Buffer.from(s, "utf8"))

// --- equivalence ------------------------------------------------------------------------

const seeds = [
  envelope(`<from>outsider</from><to>sink</to><thread>${THREAD}</thread>`, `<Note xmlns=""><Text>hello</Text></Note>`),
  envelope(`<from>outsider</from><to>echo</to><thread>${THREAD}</thread>`, `<Ping xmlns=""><N>7</N></Ping>`),
  envelope(`<from>outsider</from><to>echo</to><thread>${THREAD}</thread>`, `<Ping xmlns=""><N>x</N></Ping>`),
  envelope(`<from>outsider</from><thread>not-a-uuid</thread>`, `<Note xmlns=""><Text>all of you</Text></Note>`),
  envelope(`<from>outsider</from><to>nobody</to><thread>${THREAD}</thread>`, `<Note xmlns=""><Text>x</Text></Note>`),
  envelope(
    `<from>outsider</from><to>sink</to><thread>${THREAD}</thread><x:sig xmlns:x="urn:sig" a="1">abc</x:sig>`,
    `<Doc xmlns=""><Title>t</Title><Body><p a="1">x<![CDATA[<y>]]><!-- c --><q>z</q></p></Body></Doc>`
  ),
  `<?xml version="1.0" encoding="UTF-8"?>\n<e:message xmlns:e="${ENVELOPE_NS}"><e:meta><e:from> outsider </e:from>` +
  `<e:to>sink</e:to><e:thread>${THREAD}</e:thread></e:meta><Note><Text>a &amp; b &lt; c</Text></Note></e:message>`,
  envelope(`<from>outsider</from><to>sink</to><thread>${THREAD}</thread>`, `<Note xmlns=""><Text>unclosed</Note>`)
]

/** Envelopes the pump writes itself (known canonical). */
const written = (n: number) =>
  writeEnvelope({ from: "echo", to: "sink", thread: THREAD, payloadTag: "Note", payloadInner: Payload.specOf(Note).encodeInner(new Note({ text: `n${n} <&>` })) })

const adversarial = readdirSync(new URL("./adversarial/", import.meta.url)).filter((f) => f.endsWith(".xml")).map((f) =>
  new Uint8Array(readFileSync(new URL(`./adversarial/${f}`, import.meta.url)))
)

const tokens = ["<", ">", "&", "]]>", "<!--", "\u0000", "&#0;", "<!DOCTYPE m [<!ENTITY e \"x\">]>", "</meta>", "<a>".repeat(70), " xmlns=\"rel\"", "é"]

/** A seed with a few bytes flipped, cut, or markup spliced in. */
const mutated: fc.Arbitrary<string | Uint8Array> = fc
  .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.nat({ max: tokens.length + 2 })), { maxLength: 3 }), fc.boolean())
  .map(([seed, edits, asBytes]) => {
    let s = seeds[seed]!
    for (const [at, what] of edits) {
      const i = at % (s.length + 1)
      s = what < tokens.length ? s.slice(0, i) + tokens[what] + s.slice(i) : what === tokens.length ? s.slice(0, i) : s.slice(0, i) + s.slice(i + 1)
    }
    return asBytes ? utf8(s) : s
  })

const input: fc.Arbitrary<{ readonly input: string | Uint8Array; readonly known: boolean }> = fc.oneof(
  mutated.map((input) => ({ input, known: false })),
  fc.nat({ max: adversarial.length - 1 }).map((i) => ({ input: adversarial[i]!, known: false })),
  fc.nat({ max: 1000 }).map((n) => ({ input: written(n), known: true })),
  fc.uint8Array({ maxLength: 200 }).map((input) => ({ input, known: false }))
)

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g

/** An outcome as comparable data: fresh thread ids (a replaced thread) become "<fresh>". */
const comparable = (o: IngressOutcome, source: string | Uint8Array) => {
  const text = typeof source === "string" ? source : Buffer.from(source).toString("latin1")
  const data = o._tag === "Rejected"
    ? { _tag: o._tag, error: { ...o.error, _tag: o.error._tag, message: o.error.message }, seen: o.seen, canonical: o.canonical, diagnostics: o.diagnostics.map(String) }
    : {
      ...o,
      diagnostics: o.diagnostics.map(String),
      decoded: o.decoded === undefined
        ? undefined
        : { key: o.decoded.route.key, deliveries: o.decoded.deliveries.map((d) => ({ to: d.target.name, payload: d.payload })) }
    }
  return JSON.stringify(data).replace(UUID, (id) => (text.includes(id) ? id : "<fresh>"))
}

/** A payload type named like Note with another schema. */
class CountedNote extends Payload.Class<CountedNote>("Note")({ count: Schema.Int }) {}

class Both extends Context.Tag("test/Both")<Both, {
  readonly ingress: Ingress
  readonly routes: Router
  readonly workers: XmlWorkers
  readonly version: WorkerVersion
  /** A route table of its own where <Note> has another schema than the workers know. */
  readonly other: RouteResolver
}>() {
  static readonly layer = Layer.scoped(
    Both,
    Effect.gen(function*() {
      const organism = hostileOrganism()
      const routes = yield* makeRouter(organism.listeners, yield* ThreadRegistry)
      const ingress = yield* Ingress.make(organism.settings.ingress)
      const workers = yield* makeXmlWorkers({ workers: 2 })
      const version = (yield* workers.register(routes, organism.settings.ingress))!
      const other = yield* routesForPayloads([CountedNote, Ping, Doc])
      return { ingress, routes, workers, version, other }
    })
  ).pipe(Layer.provide(Layer.mergeAll(XmlEngine.layer, ThreadRegistry.layerMemory)))
}

layer(Both.layer, { excludeTestServices: true })("the workers' outcomes are the inline path's", (it) => {
  const compare = (batch: ReadonlyArray<{ readonly input: string | Uint8Array; readonly known: boolean }>) =>
    Effect.gen(function*() {
      const { ingress, routes, version, workers } = yield* Both
      const inputs = batch.map((b) => b.input)
      const known = batch.map((b) => b.known)
      const inline = ingress.runBatch(inputs, routes, known)
      const expected = inline.map((o, i) => comparable(o, inputs[i]!))
      const fronts = yield* workers.start(version, inputs, known).result
      expect(Option.isSome(fronts)).toBe(true)
      const viaWorker = ingress.finish(inputs, Option.getOrThrow(fronts), routes, known, version.schemaId)
      expect(viaWorker.map((o, i) => comparable(o, inputs[i]!))).toEqual(expected)
      // The same stages run on this thread (what the pump does while its workers are busy).
      const here = ingress.finish(inputs, ingress.front(inputs, known, version.payloads), routes, known, version.schemaId)
      expect(here.map((o, i) => comparable(o, inputs[i]!))).toEqual(expected)
      return inline
    })

  it.effect.prop("random valid, mutated and hostile inputs", [fc.array(input, { minLength: 1, maxLength: 40 })], ([batch]) =>
    Effect.asVoid(compare(batch)), { fastCheck: { numRuns: 120 } })

  it.effect("a route whose payload schema the workers do not have is judged inline, with the same outcome", () =>
    Effect.gen(function*() {
      const { ingress, other, version, workers } = yield* Both
      const inputs = [...seeds, written(7), written(8)]
      const known = inputs.map((_, i) => i >= seeds.length)
      const fronts = Option.getOrThrow(yield* workers.start(version, inputs, known).result)
      const viaWorker = ingress.finish(inputs, fronts, other, known, version.schemaId)
      const inline = ingress.runBatch(inputs, other, known)
      expect(viaWorker.map((o, i) => comparable(o, inputs[i]!))).toEqual(inline.map((o, i) => comparable(o, inputs[i]!)))
      expect(inline.filter((o) => o._tag === "Accepted").length).toBeGreaterThan(0)
      // The workers found these Notes valid under their schema; the route's schema refuses them.
      expect(known.every((k, i) => !k || (inline[i]!._tag === "Rejected" && (inline[i] as Rejected).error._tag === "PayloadInvalid"))).toBe(true)
    }))

  it.effect("the whole adversarial corpus, and each seed, reach every kind of outcome", () =>
    Effect.gen(function*() {
      const outcomes = yield* compare([
        ...adversarial.map((input) => ({ input, known: false })),
        ...seeds.map((input) => ({ input, known: false })),
        { input: written(1), known: true }
      ])
      const kinds = new Set(outcomes.map((o) => (o._tag === "Rejected" ? o.error._tag : o._tag)))
      for (const k of ["Accepted", "MalformedXml", "DtdForbidden", "TooDeep", "PayloadInvalid", "UnknownRoute", "InvalidEncoding"]) {
        expect(kinds).toContain(k)
      }
    }))
})

// --- in the pump ------------------------------------------------------------------------

/** T conversations of H hops between two listeners; every hop a pump-written envelope. */
const pingpong = (threads: number, hops: number, ingress: object) => {
  const organism = Organism.make({
    name: "pingpong",
    settings: { guards: { maxInvocationsPerThread: hops + 10 }, ingress },
    listeners: [
      Listener.make({ name: "ping", payload: Ping, handler: (p) => (p.n >= hops ? Reply.none : Reply.forward("pong", new Ping({ n: p.n + 1 }))) }),
      Listener.make({ name: "pong", payload: Ping, handler: (p) => (p.n >= hops ? Reply.none : Reply.respond(new Ping({ n: p.n + 1 }))) })
    ]
  })
  return withPump(organism, ({ pump }) =>
    Effect.gen(function*() {
      for (let t = 0; t < threads; t++) yield* pump.inject("ping", new Ping({ n: 1 }))
      yield* pump.awaitIdle
      const c = pump.counters()
      expect(c.rejected + c.guardStopped).toBe(0)
      expect(c.invocations).toBe(threads * hops + 1) // + boot
    }))
}

const rawNotes = (n: number, marker = "") =>
  Array.from({ length: n }, (_, i) =>
    envelope(`<from>outsider</from><to>sink</to><thread>${THREAD}</thread>`, `<Note xmlns=""><Text>${i}${marker}</Text></Note>`))

describe("a pump with ingress workers", () => {
  it.live("runs pingpong to the end with every hop delivered", () => pingpong(20, 60, { workers: 1, workerOptions: { threshold: 2 } }))

  it.live("judges raw input like the inline pump: the same counters, message for message", () =>
    Effect.gen(function*() {
      const inputs = [...adversarial, ...seeds, ...rawNotes(30)]
      const run = (ingress: object) =>
        withPump(hostileOrganism({ ingress }), ({ pump }) =>
          Effect.gen(function*() {
            for (const i of inputs) yield* pump.injectRaw(i)
            yield* pump.awaitIdle
            const { delivered, injected, rejected } = pump.counters()
            return { delivered, injected, rejected, dead: pump.deadLetters().map((d) => `${d.kind} ${d.stage} ${d.reason} ${d.thread}`) }
          }))
      const inline = yield* run({ workers: 0 })
      const workers = yield* run({ workers: 1, workerOptions: { threshold: 2 } })
      expect(workers).toEqual(inline)
      expect(inline.rejected).toBeGreaterThan(100)
    }))

  it.live("a worker that dies is replaced and its chunk re-run: every message ends in exactly one outcome", () =>
    Effect.gen(function*() {
      const once = new SharedArrayBuffer(4)
      yield* withPump(
        hostileOrganism({ ingress: { workers: 1, workerOptions: { threshold: 2, testing: { exitOn: "BOOM", exitOnce: once } } } }),
        ({ pump }) =>
          Effect.gen(function*() {
            for (const i of rawNotes(40, "BOOM")) yield* pump.injectRaw(i)
            yield* pump.awaitIdle
            for (const i of rawNotes(40)) yield* pump.injectRaw(i)
            yield* pump.awaitIdle
            const c = pump.counters()
            expectBalanced(pump)
            // Each Note goes to sink and the two broadcast listeners' route is not taken (to: sink).
            expect(c.delivered).toBe(80 + 1)
            expect(c.rejected).toBe(0)
          })
      )
      // A worker did meet the marker, and died.
      expect(new Int32Array(once)[0]).toBe(1)
    }))

  it.live("a chunk that kills every worker it meets is judged inline", () =>
    withPump(
      hostileOrganism({ ingress: { workers: 1, workerOptions: { threshold: 2, testing: { exitOn: "POISON" } } } }),
      ({ pump }) =>
        Effect.gen(function*() {
          for (const i of [...rawNotes(20, "POISON"), ...rawNotes(20)]) yield* pump.injectRaw(i)
          yield* pump.awaitIdle
          for (const i of rawNotes(20)) yield* pump.injectRaw(i)
          yield* pump.awaitIdle
          expectBalanced(pump)
          expect(pump.counters().delivered).toBe(60 + 1)
        })
    ))

  it.live("a reload that changes a payload's XSD takes effect in the workers", () =>
    Effect.gen(function*() {
      class Strict extends Payload.Class<Strict>("Note")({ count: Schema.Int }) {}
      const v1 = hostileOrganism({ ingress: { workers: 1, workerOptions: { threshold: 2 } } })
      const v2 = Organism.make({
        name: "hostile",
        settings: v1.settings,
        listeners: [Listener.make({ name: "sink", payload: Strict, accepts: [Doc], handler: () => Reply.none })]
      })
      yield* withPump(v1, ({ pump }) =>
        Effect.gen(function*() {
          for (const i of rawNotes(20)) yield* pump.injectRaw(i)
          yield* pump.awaitIdle
          expect(pump.counters().rejected).toBe(0)
          yield* pump.reload(v2)
          for (const i of rawNotes(20)) yield* pump.injectRaw(i)
          yield* pump.awaitIdle
          const dead = pump.deadLetters()
          expect(dead).toHaveLength(20)
          expect(new Set(dead.map((d) => d.kind))).toEqual(new Set(["PayloadInvalid"]))
          const counted = envelope(`<from>outsider</from><to>sink</to><thread>${THREAD}</thread>`, `<Note xmlns=""><Count>3</Count></Note>`)
          for (let i = 0; i < 20; i++) yield* pump.injectRaw(counted)
          yield* pump.awaitIdle
          expect(pump.counters().rejected).toBe(20)
        }))
    }))
})

describe("the workers end with their Scope", () => {
  it("a program that used a pump with workers exits on its own", () => {
    const script = `
      import { Effect, Schema } from "effect"
      import { Listener } from "./src/domain/Listener.js"
      import { Organism } from "./src/domain/Organism.js"
      import * as Payload from "./src/domain/Payload.js"
      import { Reply } from "./src/domain/Reply.js"
      import { Pump } from "./src/pipeline/Pump.js"
      class Note extends Payload.Class("Note")({ text: Schema.String }) {}
      const organism = Organism.make({
        settings: { ingress: { workers: 2, workerOptions: { threshold: 2 } } },
        listeners: [Listener.make({ name: "sink", payload: Note, handler: () => Reply.none })]
      })
      const program = Effect.gen(function*() {
        const pump = yield* Pump.make(organism)
        for (let i = 0; i < 50; i++) yield* pump.inject("sink", new Note({ text: String(i) }))
        yield* pump.awaitIdle
        console.log(JSON.stringify(pump.counters()))
      }).pipe(Effect.scoped, Effect.provide(Pump.layerServices))
      await Effect.runPromise(program)
    `
    const started = Date.now()
    const out = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: new URL("..", import.meta.url),
      encoding: "utf8",
      timeout: 60_000
    })
    expect(out.stderr).toBe("")
    expect(out.status).toBe(0)
    expect(JSON.parse(out.stdout.trim())).toMatchObject({ delivered: 51, rejected: 0 }) // + boot
    expect(Date.now() - started).toBeLessThan(60_000)
  }, 90_000)
})

describe("ingress.workers in an organism file", () => {
  const dir = mkdtempSync(join(tmpdir(), "organism-workers-"))
  const modules = relative(dir, join(__dirname, "fixtures", "modules.ts"))
  const file = (workers: string) => {
    const path = join(dir, `workers-${workers}.yaml`)
    writeFileSync(
      path,
      `organism:\n  name: qa\n  ingress:\n    workers: ${workers}\nlisteners:\n  - name: oracle\n    payload: ${modules}#Question\n    handler: ${modules}#answer\n`
    )
    return path
  }

  it.live("sets the pump's worker count", () =>
    Effect.gen(function*() {
      const { organism } = yield* loadOrganism(file("1"))
      expect(organism.settings.ingress.workers).toBe(1)
      const reply = yield* Effect.scoped(Effect.flatMap(Pump.make(organism), (pump) => pump.request("oracle", new Question({ text: "why" }))))
      expect((reply as { text: string }).text).toBe("you asked: why")
    }).pipe(Effect.provide(layerWithoutModels)))

  it.effect("refuses a negative count", () =>
    Effect.gen(function*() {
      const refused = yield* Effect.flip(loadOrganism(file("-1")))
      expect(refused.problems.map((p) => p.key)).toEqual(["organism.ingress.workers"])
    }).pipe(Effect.provide(XmlEngine.layer)))
})
