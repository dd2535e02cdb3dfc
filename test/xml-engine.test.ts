import { describe, expect, it, layer } from "@effect/vitest"
import { Context, Effect, Either, Exit, Layer, Scope } from "effect"
import { XmlEngine } from "../src/services/XmlEngine.js"

const utf8 = (s: string) => Buffer.from(s, "utf8")

layer(XmlEngine.layer)("XmlEngine", (it) => {
  const c14n = (xml: string) =>
    Effect.gen(function*() {
      const engine = yield* XmlEngine
      return Either.getOrThrow(Either.flatMap(engine.withDocument(utf8(xml), { recover: false }, engine.canonicalize), (c) => c))
    })

  describe("Exclusive C14N", () => {
    it.effect("attribute order, whitespace inside tags, quote style and empty-element form do not matter", () =>
      Effect.gen(function*() {
        const forms = [
          `<r><e a="1" b="2">t</e><x></x></r>`,
          `<r><e b="2" a="1">t</e><x/></r>`,
          `<r  ><e   b = '2'\n a="1"  >t</e  ><x  /></r >`,
          `<?xml version="1.0" encoding="UTF-8"?>\n<r><e a="1" b="2">t</e><x/></r>\n`
        ]
        const canon = yield* Effect.forEach(forms, c14n)
        expect(new Set(canon).size).toBe(1)
        expect(canon[0]).toBe(`<r><e a="1" b="2">t</e><x></x></r>`)
      }))

    it.effect("redundant and unused namespace declarations canonicalize away", () =>
      Effect.gen(function*() {
        const forms = [
          `<r xmlns="urn:a"><e>t</e></r>`,
          `<r xmlns="urn:a" xmlns:unused="urn:u"><e xmlns="urn:a">t</e></r>`,
          `<p:r xmlns:p="urn:p" xmlns="urn:a"><e xmlns:q="urn:q">t</e></p:r>`.replace("<p:r xmlns:p=\"urn:p\"", "<r").replace("</p:r>", "</r>")
        ]
        const canon = yield* Effect.forEach(forms, c14n)
        expect(new Set(canon).size).toBe(1)
        expect(canon[0]).toBe(`<r xmlns="urn:a"><e>t</e></r>`)
      }))

    it.effect("large output with multi-byte characters split across libxml2's output chunks", () =>
      Effect.gen(function*() {
        const text = "é😀ü€".repeat(40_000) // ~400 KB: many output chunks, boundaries inside characters
        expect(yield* c14n(`<r a="😀">${text}</r>`)).toBe(`<r a="😀">${text}</r>`)
      }))

    it.effect("CDATA becomes escaped text and comments are dropped", () =>
      Effect.gen(function*() {
        expect(yield* c14n(`<r><![CDATA[<a & b>]]><!-- note --></r>`)).toBe(`<r>&lt;a &amp; b&gt;</r>`)
      }))
  })

  describe("hardened parsing", () => {
    it.effect("refuses non-UTF-8 input and says where", () =>
      Effect.gen(function*() {
        const engine = yield* XmlEngine
        const result = engine.parse(Buffer.from([0x3c, 0x72, 0x3e, 0xc3, 0x28, 0x3c, 0x2f, 0x72, 0x3e]), { recover: true })
        expect(Either.isLeft(result)).toBe(true)
        if (Either.isLeft(result)) {
          expect(result.left.reason).toBe("encoding")
          expect(String(result.left.diagnostics[0])).toContain("byte offset 3")
        }
      }))

    it.effect("recovers a broken document only when asked, reporting what was repaired", () =>
      Effect.gen(function*() {
        const engine = yield* XmlEngine
        const broken = utf8(`<r><a>text</r>`)
        const strict = engine.parse(broken, { recover: false })
        expect(Either.isLeft(strict) && strict.left.reason).toBe("malformed")
        const recovered = engine.parse(broken, { recover: true })
        if (Either.isLeft(recovered)) throw new Error("expected a repaired document")
        expect(recovered.right.repaired).toBe(true)
        expect(recovered.right.diagnostics.map(String).join(" ")).toMatch(/1:\d+ .*mismatch/)
        expect(engine.canonicalize(recovered.right)).toEqual(Either.right(`<r><a>text</a></r>`))
        engine.release(recovered.right)
      }))

    it.effect("recovery never changes characters, attributes, entities or namespaces", () =>
      Effect.gen(function*() {
        const engine = yield* XmlEngine
        const refused = [
          `<r><a>ad\u0000min</a></r>`, // a NUL recovery would drop
          `<r><a>text</r><b>&#x1b;</b>`, // the strict parse stops before the bad reference
          `<r><a x="1" x="2"/></r>`, // which x?
          `<r><p:a>text</p:a></r>`, // an undeclared prefix
          `<r>&nbsp;</r>` // an entity nothing declares
        ]
        for (const xml of refused) {
          const result = engine.parse(utf8(xml), { recover: true })
          if (Either.isRight(result)) throw new Error(`repaired ${JSON.stringify(xml)}`)
          expect(result.left.reason).toBe("malformed")
          expect(String(result.left.diagnostics[0])).toMatch(/^not repaired/)
        }
      }))

    it.effect("<!DOCTYPE quoted in a comment or CDATA is not a DTD: the document is repaired", () =>
      Effect.gen(function*() {
        const engine = yield* XmlEngine
        for (const xml of [`<r><!-- <!DOCTYPE html> --><a>text</r>`, `<r><a><![CDATA[<!DOCTYPE html>]]></r>`]) {
          const result = engine.parse(utf8(xml), { recover: true })
          if (Either.isLeft(result)) throw new Error(`${xml}: ${result.left.reason}`)
          expect(result.right.repaired).toBe(true)
          engine.release(result.right)
        }
        const dtd = engine.parse(utf8(`<!-- x --><!DOCTYPE r [<!ENTITY e "x">]><r>&e;</a>`), { recover: true })
        expect(Either.isLeft(dtd) && dtd.left.reason).toBe("dtd")
      }))

    it.effect("releases every document and schema it hands out", () =>
      Effect.gen(function*() {
        const engine = yield* XmlEngine
        const before = engine.liveHandles()
        yield* Effect.scoped(Effect.gen(function*() {
          yield* engine.compileSchema("s", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="r"/></xs:schema>`)
          expect(engine.liveHandles().schemas).toBe(before.schemas + 1)
          for (let i = 0; i < 200; i++) {
            engine.withDocument(utf8(i % 2 === 0 ? `<r>${i}</r>` : `<r>${i}`), { recover: i % 4 === 1 }, () => {
              expect(engine.liveHandles().documents).toBeGreaterThan(before.documents)
            })
          }
          yield* engine.parseScoped(utf8(`<r/>`), { recover: false })
        }))
        expect(engine.liveHandles()).toEqual(before)
      }))

    it.effect("reports XSD compile errors with positions", () =>
      Effect.gen(function*() {
        const engine = yield* XmlEngine
        const error = yield* engine.compileSchema("bad", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element/></xs:schema>`)
          .pipe(Effect.scoped, Effect.flip)
        expect(error._tag).toBe("SchemaCompileError")
        expect(error.message).toContain("bad")
        expect(error.diagnostics.length).toBeGreaterThan(0)
      }))
  })
})

describe("XmlEngine.layer: each build owns its libxml2 instance", () => {
  it.scoped("two engines share no handles, heap or error state; one closing leaves the other working", () =>
    Effect.gen(function*() {
      const engineIn = (scope: Scope.Scope) => Layer.buildWithScope(XmlEngine.layer, scope).pipe(Effect.map(Context.get(XmlEngine)))
      const scopeA = yield* Scope.make()
      const a = yield* engineIn(scopeA)
      const b = yield* engineIn(yield* Effect.scope)
      // A document held in A is not counted in B.
      const held = Either.getOrThrow(a.parse(utf8("<r><x/></r>"), { recover: false }))
      expect(a.liveHandles().documents).toBe(1)
      expect(b.liveHandles().documents).toBe(0)
      // Growing A's heap leaves B's as it was.
      const heapB = b.heapBytes()
      const big = `<r>${"<x>y</x>".repeat(400_000)}</r>`
      a.release(Either.getOrThrow(a.parse(big, { recover: false })))
      expect(a.heapBytes()).toBeGreaterThan(heapB)
      expect(b.heapBytes()).toBe(heapB)
      // A failed parse in B does not leak its diagnostics into A's next parse.
      expect(Either.isLeft(b.parse("<r><unclosed></r>", { recover: false }))).toBe(true)
      const clean = Either.getOrThrow(a.parse("<r/>", { recover: false }))
      expect(clean.diagnostics).toEqual([])
      a.release(clean)
      a.release(held)
      // Closing A's scope releases its instance; B still parses and canonicalizes.
      yield* Scope.close(scopeA, Exit.void)
      const text = Either.getOrThrow(Either.flatMap(b.withDocument("<r  b='2' a='1'/>", { recover: false }, b.canonicalize), (c) => c))
      expect(text).toBe(`<r a="1" b="2"></r>`)
    }))
})
