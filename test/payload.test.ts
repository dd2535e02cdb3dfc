import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import * as Payload from "../src/domain/Payload.js"
import { instances } from "./support/arbitraries.js"
import { envelopeOf, IngressFixture } from "./support/ingress.js"
import * as P from "./support/payloads.js"

describe("Payload declaration", () => {
  it("derives PascalCase field elements from camelCase and snake_case keys", () => {
    expect(Payload.elementNameOf("original_sender")).toBe("OriginalSender")
    expect(Payload.elementNameOf("originalSender")).toBe("OriginalSender")
    expect(Payload.elementNameOf("original-sender")).toBe("OriginalSender")
    expect(Payload.elementNameOf("name")).toBe("Name")
    const xml = Either.getOrThrow(
      Payload.encode(P.Everything, Schema.decodeSync(P.Everything)({
        message: "m",
        original_sender: "u",
        ratio: 1,
        ok: true,
        mood: "happy",
        tags: [],
        center: { x: 1, y: 2 },
        corners: [],
        body: ""
      }))
    )
    expect(xml).toContain("<OriginalSender>u</OriginalSender>")
  })

  it("generates an XSD with types, occurrence bounds and enumerations", () => {
    const xsd = Payload.xsdOf(P.Everything)
    expect(xsd).toContain(`<xs:element name="Everything">`)
    expect(xsd).toContain(`<xs:element name="Message" type="xs:string"/>`)
    expect(xsd).toMatch(/<xs:element name="Count" type="xs:integer" minOccurs="0"/)
    expect(xsd).toContain(`<xs:element name="Ratio" type="xs:double"/>`)
    expect(xsd).toContain(`<xs:element name="Ok" type="xs:boolean"/>`)
    expect(xsd).toContain(`<xs:enumeration value="sad"/>`)
    expect(xsd).toContain(`<xs:element name="Tags" type="xs:string" minOccurs="0" maxOccurs="unbounded"/>`)
    expect(xsd).toContain(`<xs:complexType mixed="true">`)
    expect(Payload.xsdOf(P.Lists)).toContain(`<xs:element name="Scores" type="xs:double" maxOccurs="unbounded"/>`)
  })

  const rejects = (build: () => unknown, field: string, reason: RegExp) => {
    let error: unknown
    try {
      build()
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(Payload.PayloadDeclarationError)
    const e = error as Payload.PayloadDeclarationError
    expect(e.field).toBe(field)
    expect(e.message).toContain(`"${field}"`)
    expect(e.message).toMatch(reason)
  }

  it("rejects shapes XML cannot express, naming the field", () => {
    rejects(() => Payload.Class<any>("A")({ when: Schema.DateFromSelf }), "when", /no XML text form/)
    rejects(() => Payload.Class<any>("B")({ either: Schema.Union(Schema.String, Schema.Number) }), "either", /literals only/)
    rejects(() => Payload.Class<any>("C")({ grid: Schema.Array(Schema.Array(Schema.Int)) }), "grid", /arrays of arrays/)
    rejects(() => Payload.Class<any>("D")({ pair: Schema.Tuple(Schema.String, Schema.Int) }), "pair", /tuples/)
    rejects(() => Payload.Class<any>("E")({ bag: Schema.Record({ key: Schema.String, value: Schema.String }) }), "bag", /records/)
    rejects(
      () => Payload.Class<any>("F")({ outer: Schema.Struct({ inner: Schema.Struct({ n: Schema.BigIntFromSelf }) }) }),
      "outer.inner.n",
      /cannot be expressed/
    )
    rejects(() => Payload.Class<any>("G")({ tags: Schema.optional(Schema.Array(Schema.String)) }), "tags", /already optional/)
    rejects(() => Payload.Class<any>("H")({ user_name: Schema.String, userName: Schema.String }), "userName", /also used/)
    rejects(() => Payload.Class<any>("I")({ n: Schema.NullOr(Schema.String) }), "n", /literals only|cannot/)
  })

  it("refuses wrong values at construction with Schema's own error, and drops unknown keys", () => {
    expect(() => new P.Int({ value: 1.5 })).toThrow(/Expected an integer/)
    expect(() => new P.Text({ text: 5 as unknown as string })).toThrow(/Expected string/)
    expect(() => new P.Choice({ color: "pink" as "red", level: 1 })).toThrow(/\["color"\][\s\S]*Expected "red"/)
    const extra = new P.Text({ text: "a", extra: 1 } as unknown as { text: string })
    expect(Object.keys(extra)).toEqual(["text"])
  })

  for (const [name, arbitrary] of Object.entries(instances)) {
    const type = (P as Record<string, unknown>)[name] as new(props: unknown, options?: boolean) => object
    it.prop(`${name}: built without Schema's validation (a plain payload) or with it, the same value`, [arbitrary], ([value]) => {
      const props = { ...(value as object) }
      const quick = new type(props)
      const checked = new type(props, false)
      expect(Object.getPrototypeOf(quick)).toBe(type.prototype)
      // Schema copies arrays where the quick path keeps the caller's: equal, not identical.
      expect(quick).toStrictEqual(checked)
      expect(Schema.is(type as unknown as Schema.Schema<object>)(quick)).toBe(true)
    }, { fastCheck: { numRuns: 100 } })
  }

  it("rejects a tag that is not an XML name", () => {
    expect(() => Payload.Class<any>("1bad")({ a: Schema.String })).toThrow(/not a valid XML element name/)
  })

  it("refuses to encode characters XML 1.0 cannot carry, naming the field", () => {
    const result = Payload.encode(P.Text, new P.Text({ text: "bell\u0007" }))
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isLeft(result)) expect(result.left.message).toMatch(/field "text".*U\+0007/)
  })
})

layer(IngressFixture.layer)("Payload round trip through ingress", (it) => {
  const roundTrip = <A>(type: Payload.PayloadType<A>, value: A) =>
    Effect.gen(function*() {
      const { engine, ingress, routes } = yield* IngressFixture
      // The encoded element validates against the derived XSD on its own…
      const element = Either.getOrThrow(Payload.encode(type, value))
      const schema = yield* engine.compileSchema(type.payloadTag, Payload.xsdOf(type))
      const standalone = engine.withDocument(Buffer.from(element), { recover: false }, (doc) => engine.validateDocument(schema, doc))
      expect(Either.getOrThrow(standalone)).toEqual([])
      // …and inside an envelope, through every ingress stage, it decodes to an equal value.
      const outcome = ingress.run(envelopeOf(type, value), routes)
      if (outcome._tag === "Rejected") throw new Error(`${outcome.error._tag}: ${outcome.error.message}`)
      expect(outcome.repaired).toBe(false)
      const decoded = outcome.decoded!.deliveries[0]!.payload as A
      expect(decoded).toBeInstanceOf(type as any)
      const encode = Schema.encodeSync(type)
      expect(encode(decoded)).toStrictEqual(encode(value))
    }).pipe(Effect.scoped)

  for (const [name, arbitrary] of Object.entries(instances)) {
    const type = (P as Record<string, unknown>)[name] as Payload.PayloadType
    it.effect.prop(`${name}: encode → envelope → ingress → decode is the identity`, [arbitrary], ([value]) =>
      roundTrip(type, value), { fastCheck: { numRuns: 150 } })
  }

  it.effect("the example document of every payload validates against its XSD", () =>
    Effect.gen(function*() {
      const { engine } = yield* IngressFixture
      for (const type of P.allPayloads) {
        const schema = yield* engine.compileSchema(type.payloadTag, Payload.xsdOf(type))
        const errors = engine.withDocument(Buffer.from(Payload.exampleOf(type)), { recover: false }, (doc) =>
          engine.validateDocument(schema, doc))
        expect(Either.getOrThrow(errors).map(String)).toEqual([])
      }
    }).pipe(Effect.scoped))
})
