/**
 * The xmlify wire form against envelopes xml-pipeline wrote itself (test/fixtures/xmlify,
 * see its README for how they were made and from which commit), and the native form's
 * refusal to misread them.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Schema } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as Payload from "../src/domain/Payload.js"
import { SystemError } from "../src/domain/SystemPayloads.js"
import type { RouteResolver, RouteTarget } from "../src/pipeline/Router.js"
import type { CompiledSchema } from "../src/services/XmlEngine.js"
import { fixturePayloads, Lists, Optionals, pythonValues, Scalars } from "./fixtures/xmlify/payloads.js"
import { instances } from "./support/arbitraries.js"
import { envelopeOf, IngressFixture } from "./support/ingress.js"
import * as P from "./support/payloads.js"

const FIXTURES = join(import.meta.dirname, "fixtures", "xmlify")
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8")

/** Routes by payload tag, every spec taken in one wire form (what an organism's Router does). */
const routesFor = (payloads: ReadonlyArray<Payload.PayloadType>, wire: Payload.WireMode) =>
  Effect.gen(function*() {
    const { engine } = yield* IngressFixture
    const byTag = new Map<string, RouteTarget>()
    for (const payload of payloads) {
      const spec = Payload.specOf(payload, wire)
      byTag.set(spec.routeTag, { name: undefined, spec, schema: yield* engine.compileSchema(spec.tag, spec.xsd), listener: undefined })
    }
    const resolver: RouteResolver = {
      resolve: (_to, tag) => {
        const target = byTag.get(tag.toLowerCase())
        return target === undefined ? undefined : { key: tag.toLowerCase(), targets: [target] }
      }
    }
    return resolver
  })

/** The fixtures' types (P.Lists shares the tag <Lists>: kept apart). */
const allTypes: ReadonlyArray<Payload.PayloadType> = [...fixturePayloads, SystemError]

const comparable = (value: unknown) => Schema.encodeSync(Payload.typeOfValue(value)!)(value)

/** Comments, the XML declaration and whitespace between tags do not change what an XSD says. */
const normalizeXsd = (xsd: string) =>
  xsd
    .replace(/<\?xml[^>]*\?>/, "")
    .replace(/<!--[\s\S]*?-->/g, "")
    .replace(/>\s+</g, "><")
    .replace(/<(xs:element[^>]*?)><\/xs:element>/g, "<$1/>")
    .trim()

layer(IngressFixture.layer)("xmlify wire form: what xml-pipeline writes", (it) => {
  for (const [name, expected] of Object.entries(pythonValues)) {
    it.effect(`${name}: xml-pipeline's envelope decodes to the value it was written from`, () =>
      Effect.gen(function*() {
        const { ingress } = yield* IngressFixture
        const routes = yield* routesFor(allTypes, "xmlify")
        const outcome = ingress.run(Buffer.from(fixture(`${name}.envelope.xml`)), routes)
        if (outcome._tag === "Rejected") throw new Error(`${outcome.error._tag}: ${outcome.error.message}`)
        const decoded = outcome.decoded!.deliveries[0]!.payload
        expect(decoded).toBeInstanceOf(Payload.typeOfValue(expected) as any)
        expect(comparable(decoded)).toStrictEqual(comparable(expected))
      }).pipe(Effect.scoped))
  }

  it.effect("an empty xmlify list is [], a list of one empty string is [\"\"]", () =>
    Effect.gen(function*() {
      const { ingress } = yield* IngressFixture
      const routes = yield* routesFor(allTypes, "xmlify")
      const empty = ingress.run(Buffer.from(fixture("lists-empty.envelope.xml")), routes)
      const one = ingress.run(Buffer.from(fixture("lists-one-empty-string.envelope.xml")), routes)
      expect((empty._tag === "Accepted" ? empty.decoded!.deliveries[0]!.payload : undefined) as Lists).toMatchObject({ tags: [] })
      expect((one._tag === "Accepted" ? one.decoded!.deliveries[0]!.payload : undefined) as Lists).toMatchObject({ tags: [""] })
    }).pipe(Effect.scoped))

  it.effect("SystemError as xml-pipeline writes it (<code>, <message>, <retry-allowed>, indented)", () =>
    Effect.gen(function*() {
      const { ingress } = yield* IngressFixture
      const routes = yield* routesFor(allTypes, "xmlify")
      const outcome = ingress.run(Buffer.from(fixture("system-error.envelope.xml")), routes)
      if (outcome._tag === "Rejected") throw new Error(outcome.error.message)
      const error = outcome.decoded!.deliveries[0]!.payload as SystemError
      expect(error).toBeInstanceOf(SystemError)
      expect({ ...error }).toStrictEqual({
        code: "routing",
        message: "Message could not be delivered. Please verify your target and try again.",
        retryAllowed: true
      })
      // xml-pipeline documents a "validation" code too.
      const validation = ingress.run(Buffer.from(fixture("system-error.envelope.xml").replace(">routing<", ">validation<")), routes)
      expect(validation._tag === "Accepted" ? (validation.decoded!.deliveries[0]!.payload as SystemError).code : undefined)
        .toBe("validation")
      // …and written back the same way.
      expect(Either.getOrThrow(Payload.encode(SystemError, error, "xmlify"))).toBe(
        "<SystemError><code>routing</code><message>Message could not be delivered. Please verify your target and try again.</message><retry-allowed>true</retry-allowed></SystemError>"
      )
    }).pipe(Effect.scoped))

  for (const wire of Payload.wireModes) {
    it.effect(`${wire}: a 64-bit integer above 2^53 is a rejection naming the field, never another number`, () =>
      Effect.gen(function*() {
        const { ingress } = yield* IngressFixture
        const routes = yield* routesFor(allTypes, wire)
        const outcome = ingress.run(Buffer.from(fixture("scalars-big-int.envelope.xml")), routes)
        expect(outcome._tag).toBe("Rejected")
        if (outcome._tag === "Rejected") {
          expect(outcome.error._tag).toBe("DecodeFailed")
          expect(outcome.error.message).toMatch(/field "count": 1152921504606846977 cannot be held exactly/)
        }
      }).pipe(Effect.scoped))
  }

  it.effect("native: xml-pipeline's lists and optional wrappers are rejected, never misread ([\"\"] for [])", () =>
    Effect.gen(function*() {
      const { ingress } = yield* IngressFixture
      const routes = yield* routesFor(allTypes, "native")
      for (const name of ["lists-empty", "lists-one-empty-string", "lists-full", "optionals-none", "optionals-some"]) {
        const outcome = ingress.run(Buffer.from(fixture(`${name}.envelope.xml`)), routes)
        expect([name, outcome._tag]).toStrictEqual([name, "Rejected"])
      }
      // The one empty wrapper alone: the native XSD accepts it, the decoder refuses it.
      const lone = ingress.run(
        Buffer.from(fixture("lists-empty.envelope.xml").replace(/<Counts>[\s\S]*<\/Points>/, "<Counts>1</Counts><Scores>1</Scores>")),
        routes
      )
      expect(lone._tag).toBe("Rejected")
      if (lone._tag === "Rejected") expect(lone.error.message).toMatch(/field "tags": a list of exactly one empty item/)
    }).pipe(Effect.scoped))

  it.effect("what we write in xmlify form is what xml-pipeline validated and parsed (fixtures), and fits its XSD", () =>
    Effect.gen(function*() {
      const { engine } = yield* IngressFixture
      const pythonRead = JSON.parse(fixture("python-reads-ours.json")) as Record<string, { valid: boolean; parsed: string }>
      const schemas = new Map<string, CompiledSchema>()
      for (const type of fixturePayloads) schemas.set(type.payloadTag, yield* engine.compileSchema(type.payloadTag, fixture(`${type.payloadTag}.xsd`)))
      let checked = 0
      for (const [name, value] of Object.entries(pythonValues)) {
        const type = Payload.typeOfValue(value)!
        const written = Payload.encode(type, value as any, "xmlify")
        if (Object.values(value).some((v) => typeof v === "number" && !Number.isFinite(v))) {
          expect(Either.isLeft(written)).toBe(true)
          continue
        }
        const xml = Either.getOrThrow(written)
        expect(`${xml}\n`).toBe(fixture(`${name}.ours.xml`))
        expect(pythonRead[`${name}.ours.xml`]?.valid).toBe(true)
        const errors = engine.withDocument(xml, { recover: false }, (doc) => engine.validateDocument(schemas.get(type.payloadTag)!, doc))
        expect(Either.getOrThrow(errors)).toEqual([])
        checked++
      }
      expect(checked).toBe(Object.keys(pythonValues).length - 3)
    }).pipe(Effect.scoped))

  it("derives the XSD xmlify generates for the same dataclass", () => {
    for (const type of fixturePayloads) {
      expect(normalizeXsd(Payload.xmlifyReferenceXsdOf(type))).toBe(normalizeXsd(fixture(`${type.payloadTag}.xsd`)))
    }
  })

  it("refuses NaN and ±Infinity at encode, saying why", () => {
    for (const ratio of [NaN, Infinity, -Infinity]) {
      const result = Payload.encode(Scalars, new Scalars({ text: "", count: 0, ratio, ok: true, original_sender: "" }), "xmlify")
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isLeft(result)) expect(result.left.message).toMatch(/field "ratio": .*has no xs:decimal form/)
    }
  })

  it("writes numbers in decimal form that reads back as the same double", () => {
    fc.assert(fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (n) => {
      const d = Payload.decimalOf(n)
      expect(d).toMatch(/^-?[0-9]+(\.[0-9]+)?$/)
      expect(Object.is(Number(d), n)).toBe(true)
    }), { numRuns: 500 })
  })

  it("a type declared with `wire: \"xmlify\"` keeps its form in a native organism", () => {
    class Fixed extends Payload.Class<Fixed>("Fixed", { wire: "xmlify" })({ note: Schema.optional(Schema.String) }) {}
    expect(Payload.specOf(Fixed, "native").wire).toBe("xmlify")
    expect(Payload.specOf(Optionals, "native").wire).toBe("native")
    expect(Payload.specOf(Optionals, "xmlify").wire).toBe("xmlify")
    expect(Either.getOrThrow(Payload.encode(Fixed, new Fixed({})))).toBe("<Fixed><Note><NoneType></NoneType></Note></Fixed>")
  })
})

describe("numbers and integers the value cannot hold", () => {
  const decodeNative = <A>(type: Payload.PayloadType<A>, inner: string) =>
    Effect.gen(function*() {
      const { ingress } = yield* IngressFixture
      const routes = yield* routesFor([type], "native")
      const tag = type.payloadTag
      return ingress.run(
        `<message xmlns="https://xml-pipeline.org/ns/envelope/v1"><meta><from>a</from><to>b</to><thread>550e8400-e29b-41d4-a716-446655440000</thread></meta><${tag} xmlns="">${inner}</${tag}></message>`,
        routes
      )
    }).pipe(Effect.scoped, Effect.provide(IngressFixture.layer))

  it.effect("an Int beyond ±(2^53 − 1) and a double out of range are refused, naming the field", () =>
    Effect.gen(function*() {
      for (const [type, inner, field] of [
        [P.Int, "<Value>9007199254740993</Value>", "value"],
        [P.Int, "<Value>-9007199254740992</Value>", "value"],
        [P.Num, "<Value>1e400</Value>", "value"],
        [P.Num, "<Value>1e-400</Value>", "value"]
      ] as const) {
        const outcome = yield* decodeNative(type as Payload.PayloadType, inner)
        expect([inner, outcome._tag]).toStrictEqual([inner, "Rejected"])
        if (outcome._tag === "Rejected") expect(outcome.error.message).toContain(`field "${field}"`)
      }
      const max = yield* decodeNative(P.Int, "<Value>9007199254740991</Value>")
      expect(max._tag === "Accepted" ? (max.decoded!.deliveries[0]!.payload as P.Int).value : undefined).toBe(9007199254740991)
    }))

  it("an Int value beyond ±(2^53 − 1) is refused at encode (in both forms)", () => {
    for (const wire of Payload.wireModes) {
      const result = Payload.encode(P.Int, new P.Int({ value: 2 ** 60 }, true), wire)
      expect(Either.isLeft(result)).toBe(true)
    }
  })

  it("native: a list of exactly one empty item is refused at encode; other lists are not", () => {
    expect(Either.isLeft(Payload.encode(P.Lists, new P.Lists({ tags: [""], scores: [1] })))).toBe(true)
    expect(Either.getOrThrow(Payload.encode(P.Lists, new P.Lists({ tags: ["", ""], scores: [1] }))))
      .toBe("<Lists><Tags></Tags><Tags></Tags><Scores>1</Scores></Lists>")
    expect(Either.getOrThrow(Payload.encode(P.Lists, new P.Lists({ tags: [""], scores: [1] }), "xmlify")))
      .toBe("<Lists><Tags><Str></Str></Tags><Scores><Float>1</Float></Scores></Lists>")
  })
})

/** Payload values whose numbers are all finite (the xmlify form refuses the others). */
const finite = (v: unknown): boolean =>
  typeof v === "number"
    ? Number.isFinite(v)
    : Array.isArray(v)
    ? v.every(finite)
    : typeof v === "object" && v !== null
    ? Object.values(v).every(finite)
    : true

layer(IngressFixture.layer)("xmlify and native: round trips", (it) => {
  for (const [name, arbitrary] of Object.entries(instances)) {
    const type = (P as Record<string, unknown>)[name] as Payload.PayloadType
    for (const wire of Payload.wireModes) {
      const values = wire === "xmlify" ? (arbitrary as fc.Arbitrary<unknown>).filter(finite) : arbitrary
      it.effect.prop(`${name} (${wire}): encode → envelope → ingress → decode is the identity`, [values], ([value]) =>
        Effect.gen(function*() {
          const { engine, ingress } = yield* IngressFixture
          const routes = yield* routesFor([type], wire)
          const spec = Payload.specOf(type, wire)
          const outcome = ingress.run(envelopeOf(type, value, {}, wire), routes)
          if (outcome._tag === "Rejected") throw new Error(`${outcome.error._tag}: ${outcome.error.message}`)
          expect(comparable(outcome.decoded!.deliveries[0]!.payload)).toStrictEqual(comparable(value))
          if (wire === "xmlify") {
            // What we write satisfies the XSD xmlify would generate for the same dataclass.
            const reference = yield* engine.compileSchema(`${spec.tag}-reference`, Payload.xmlifyReferenceXsdOf(type))
            const element = `<${spec.tag}>${spec.encodeInner(value)}</${spec.tag}>`
            const errors = engine.withDocument(element, { recover: false }, (doc) => engine.validateDocument(reference, doc))
            expect(Either.getOrThrow(errors)).toEqual([])
          }
        }).pipe(Effect.scoped), { fastCheck: { numRuns: 60 } })
    }
  }

  it.effect("the xmlify example document of every payload validates against its xmlify XSD", () =>
    Effect.gen(function*() {
      const { engine } = yield* IngressFixture
      for (const type of [...allTypes, ...P.allPayloads]) {
        const schema = yield* engine.compileSchema(type.payloadTag, Payload.xsdOf(type, "xmlify"))
        const errors = engine.withDocument(Payload.exampleOf(type, "xmlify"), { recover: false }, (doc) => engine.validateDocument(schema, doc))
        expect([type.payloadTag, Either.getOrThrow(errors)]).toStrictEqual([type.payloadTag, []])
      }
    }).pipe(Effect.scoped))
})

layer(IngressFixture.layer)("a recovering parse that changed the text", (it) => {
  it.effect("says so in the diagnostics of the accepted message (AT&T read as AT)", () =>
    Effect.gen(function*() {
      const { ingress } = yield* IngressFixture
      const routes = yield* routesFor([P.Text], "native")
      const outcome = ingress.run(
        `<message xmlns="https://xml-pipeline.org/ns/envelope/v1"><meta><from>a</from><to>b</to><thread>550e8400-e29b-41d4-a716-446655440000</thread></meta><Text xmlns=""><Text>AT&T</Text></Text></message>`,
        routes
      )
      expect(outcome._tag).toBe("Accepted")
      if (outcome._tag === "Accepted") {
        expect((outcome.decoded!.deliveries[0]!.payload as P.Text).text).toBe("AT")
        expect(outcome.repaired).toBe(true)
        expect(outcome.diagnostics.map(String).join("; ")).toMatch(/EntityRef: expecting ';'/)
      }
    }).pipe(Effect.scoped))
})
