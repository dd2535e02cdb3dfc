import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { ENVELOPE_NS, ENVELOPE_XSD, writeEnvelope } from "../src/domain/Envelope.js"
import { isThreadId } from "../src/domain/Ids.js"
import { defaultIngressConfig, type IngressOutcome, makeIngress } from "../src/pipeline/Ingress.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { bytes, IngressFixture, THREAD } from "./support/ingress.js"
import * as P from "./support/payloads.js"

const env = (meta: string, payload: string) => `<message xmlns="${ENVELOPE_NS}"><meta>${meta}</meta>${payload}</message>`
const fullMeta = `<from>console</from><to>greeter</to><thread>${THREAD}</thread>`
const greeting = `<Greeting xmlns=""><Name>World</Name></Greeting>`

const rejectedAs = (outcome: IngressOutcome, kind: string, stage: string) => {
  if (outcome._tag !== "Rejected") throw new Error(`expected ${kind}, got Accepted`)
  expect({ kind: outcome.error._tag, stage: outcome.error.stage }).toEqual({ kind, stage })
  return outcome
}

const accepted = (outcome: IngressOutcome) => {
  if (outcome._tag === "Rejected") throw new Error(`expected Accepted, got ${outcome.error._tag}: ${outcome.error.message}`)
  return outcome
}

layer(IngressFixture.layer)("Ingress", (it) => {
  const run = (xml: string | Uint8Array) =>
    Effect.map(IngressFixture, ({ ingress, routes }) => ingress.run(typeof xml === "string" ? bytes(xml) : xml, routes))

  describe("envelope defects each have their own kind", () => {
    const cases: Array<[string, string, string, string]> = [
      ["no meta", `<message xmlns="${ENVELOPE_NS}">${greeting}</message>`, "MissingMeta", "envelope"],
      ["no from", env(`<to>greeter</to><thread>${THREAD}</thread>`, greeting), "MissingFrom", "envelope"],
      ["empty from", env(`<from> </from><thread>${THREAD}</thread>`, greeting), "MissingFrom", "extract"],
      ["no thread", env(`<from>console</from><to>greeter</to>`, greeting), "MissingThread", "envelope"],
      ["no payload", env(fullMeta, ""), "NoPayload", "extract"],
      ["two payloads", env(fullMeta, greeting + greeting), "SeveralPayloads", "envelope"],
      ["wrong root", `<envelope xmlns="${ENVELOPE_NS}"><meta>${fullMeta}</meta>${greeting}</envelope>`, "WrongRoot", "envelope"],
      ["root in another namespace", `<message xmlns="urn:other"><meta>${fullMeta}</meta>${greeting}</message>`, "WrongNamespace", "envelope"],
      ["root in no namespace", `<message><meta>${fullMeta}</meta>${greeting}</message>`, "WrongNamespace", "envelope"],
      ["meta out of order", env(`<thread>${THREAD}</thread><from>console</from>`, greeting), "EnvelopeInvalid", "envelope"],
      ["unknown route", env(fullMeta, `<Nobody xmlns=""/>`), "UnknownRoute", "route"],
      ["payload invalid", env(fullMeta, `<Greeting xmlns=""><Nom>x</Nom></Greeting>`), "PayloadInvalid", "payload"],
      ["payload in the envelope namespace", env(fullMeta, `<Greeting><Name>x</Name></Greeting>`), "PayloadInvalid", "payload"],
      ["not XML at all", `hello`, "MalformedXml", "parse"]
    ]
    for (const [name, xml, kind, stage] of cases) {
      it.effect(name, () => Effect.map(run(xml), (o) => rejectedAs(o, kind, stage)))
    }

    it.effect("payload invalid carries libxml2's diagnostics", () =>
      Effect.gen(function*() {
        const o = rejectedAs(yield* run(env(fullMeta, `<Int xmlns=""><Value>x</Value></Int>`)), "PayloadInvalid", "payload")
        expect(o.error.diagnostics.map(String).join("\n")).toMatch(/'x' is not a valid value of the atomic type 'xs:integer'/)
        expect(o.seen).toEqual({ from: "console", to: "greeter", thread: THREAD, payloadTag: "Int" })
      }))

    it.effect("a value the Schema refines further fails at decode", () =>
      Effect.gen(function*() {
        // 1e400 is a valid xs:integer lexically but not a finite JavaScript integer.
        const o = rejectedAs(yield* run(env(fullMeta, `<Int xmlns=""><Value>1${"0".repeat(400)}</Value></Int>`)), "DecodeFailed", "decode")
        expect(o.error.message).toMatch(/Int/)
      }))
  })

  describe("hostile input never crashes and never expands", () => {
    it.effect("external entities are neither resolved from files nor fetched over HTTP", () =>
      Effect.gen(function*() {
        let requests = 0
        const server = createServer((_, res) => {
          requests++
          res.end("<!ENTITY leak 'LEAKED'>")
        })
        yield* Effect.promise(() => new Promise<void>((r) => server.listen(0, "127.0.0.1", r)))
        const port = (server.address() as AddressInfo).port
        try {
          const docs = [
            `<?xml version="1.0"?><!DOCTYPE message [<!ENTITY x SYSTEM "file:///etc/passwd">]>` +
            env(fullMeta, `<Greeting xmlns=""><Name>&x;</Name></Greeting>`),
            `<?xml version="1.0"?><!DOCTYPE message [<!ENTITY x SYSTEM "http://127.0.0.1:${port}/e">]>` +
            env(fullMeta, `<Greeting xmlns=""><Name>&x;</Name></Greeting>`),
            `<?xml version="1.0"?><!DOCTYPE message SYSTEM "http://127.0.0.1:${port}/dtd">` + env(fullMeta, greeting),
            `<?xml version="1.0"?><!DOCTYPE message [<!ENTITY % p SYSTEM "http://127.0.0.1:${port}/p"> %p;]>` +
            env(fullMeta, greeting)
          ]
          for (const doc of docs) {
            const o = rejectedAs(yield* run(doc), "DtdForbidden", "parse")
            expect(JSON.stringify(o)).not.toMatch(/root:|LEAKED/)
          }
          expect(requests).toBe(0)
        } finally {
          server.close()
        }
      }))

    it.effect("a billion-laughs document is rejected quickly with bounded memory", () =>
      Effect.gen(function*() {
        const levels = Array.from({ length: 9 }, (_, i) =>
          `<!ENTITY lol${i + 1} "${`&lol${i};`.repeat(10)}">`).join("")
        const doc = `<?xml version="1.0"?><!DOCTYPE message [<!ENTITY lol0 "lol">${levels}]>` +
          env(fullMeta, `<Greeting xmlns=""><Name>&lol9;</Name></Greeting>`)
        const rss = process.memoryUsage().rss
        const started = performance.now()
        rejectedAs(yield* run(doc), "DtdForbidden", "parse")
        expect(performance.now() - started).toBeLessThan(2000)
        expect(process.memoryUsage().rss - rss).toBeLessThan(64 * 1024 * 1024)
      }))

    it.effect("10,000-deep nesting is rejected; so is anything past the configured depth", () =>
      Effect.gen(function*() {
        const deep = (n: number) => env(fullMeta, `<Greeting xmlns=""><Name>${"<a>".repeat(n)}${"</a>".repeat(n)}</Name></Greeting>`)
        rejectedAs(yield* run(deep(10_000)), "TooDeep", "parse")
        const o = rejectedAs(yield* run(deep(100)), "TooDeep", "canonicalize")
        expect((o.error as { limit: number }).limit).toBe(defaultIngressConfig.maxDepth)
      }))

    it.effect("an over-size message is rejected before it is parsed", () =>
      Effect.gen(function*() {
        const { engine, routes } = yield* IngressFixture
        let parses = 0
        const counting: XmlEngine.Service = { ...engine, parse: (b, o) => (parses++, engine.parse(b, o)) }
        const envelopeSchema = yield* engine.compileSchema("envelope", ENVELOPE_XSD)
        const limited = makeIngress(counting, envelopeSchema, { ...defaultIngressConfig, maxBytes: 1000 })
        const big = env(fullMeta, `<Greeting xmlns=""><Name>${"x".repeat(2000)}</Name></Greeting>`)
        const o = rejectedAs(limited.run(bytes(big), routes), "MessageTooLarge", "ingress")
        expect(o.error.message).toMatch(/exceeds the limit of 1000 bytes/)
        expect(parses).toBe(0)
        accepted(limited.run(bytes(env(fullMeta, greeting)), routes))
        expect(parses).toBe(1)
      }).pipe(Effect.scoped))

    it.effect("invalid UTF-8 is rejected", () =>
      Effect.gen(function*() {
        const raw = Buffer.concat([bytes(env(fullMeta, `<Greeting xmlns=""><Name>`)), Buffer.from([0xff, 0xfe]), bytes(`</Name></Greeting>`)])
        const o = rejectedAs(yield* run(raw), "InvalidEncoding", "ingress")
        expect(o.error.message).toMatch(/byte offset \d+/)
      }))
  })

  describe("what is accepted", () => {
    it.effect("an envelope written the way Python xml-pipeline writes it", () =>
      Effect.gen(function*() {
        const python = `<?xml version='1.0' encoding='utf-8'?>\n` +
          `<message xmlns="${ENVELOPE_NS}"><meta><from>console</from><to>greeter</to>` +
          `<thread>${THREAD}</thread></meta><Greeting xmlns=""><Name>World</Name></Greeting></message>`
        const o = accepted(yield* run(python))
        expect(o.stage).toBe("decode")
        expect(o.envelope.from).toBe("console")
        expect(o.envelope.to).toBe("greeter")
        expect(o.thread).toMatchObject({ thread: THREAD, replaced: false })
        const value = o.decoded!.deliveries[0]!.payload
        expect(value).toBeInstanceOf(P.Greeting)
        expect((value as P.Greeting).name).toBe("World")
      }))

    it.effect("pretty-printed envelopes with whitespace around meta values", () =>
      Effect.gen(function*() {
        const o = accepted(yield* run(
          `<message xmlns="${ENVELOPE_NS}">\n  <meta>\n    <from> console </from>\n    <to>greeter</to>\n` +
            `    <thread>\n${THREAD}\n</thread>\n  </meta>\n  <Greeting xmlns="">\n    <Name>World</Name>\n  </Greeting>\n</message>\n`
        ))
        expect(o.envelope.from).toBe("console")
        expect(o.thread.thread).toBe(THREAD)
      }))

    it.effect("foreign-namespace extras in meta are kept in canonical form", () =>
      Effect.gen(function*() {
        const o = accepted(yield* run(env(`${fullMeta}<sig:sig xmlns:sig="urn:sig" b="2" a="1">abc</sig:sig>`, greeting)))
        expect(o.envelope.extras).toEqual([`<sig:sig xmlns:sig="urn:sig" a="1" b="2">abc</sig:sig>`])
      }))

    it.effect("the payload's own XML keeps declarations and attributes that follow xmlns=\"\"", () =>
      Effect.gen(function*() {
        const xsi = `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"`
        const o = accepted(yield* run(env(fullMeta, `<Greeting xmlns="" ${xsi} xsi:noNamespaceSchemaLocation="x.xsd"><Name>W</Name></Greeting>`)))
        expect(o.envelope.payloadXml).toBe(`<Greeting ${xsi} xsi:noNamespaceSchemaLocation="x.xsd"><Name>W</Name></Greeting>`)
      }))

    it.effect("<, &, ]]> and quotes in meta fields round-trip escaped", () =>
      Effect.gen(function*() {
        const tricky = `a<b & c]]>"d" 'e'`
        const xml = writeEnvelope({ from: tricky, to: tricky, thread: THREAD, payloadTag: "Greeting", payloadInner: "<Name>x</Name>" })
        expect(xml).toContain(`<from>a&lt;b &amp; c]]&gt;"d" 'e'</from>`)
        const { ingress } = yield* IngressFixture
        const o = accepted(ingress.run(bytes(xml), undefined))
        expect(o.envelope.from).toBe(tricky)
        expect(o.envelope.to).toBe(tricky)
        // Our envelopes are already canonical: C14N reproduces the bytes we wrote.
        expect(o.canonical).toBe(xml)
      }))

    it.effect("a broken payload from a model is repaired, with the repair reported", () =>
      Effect.gen(function*() {
        const o = accepted(yield* run(env(fullMeta, `<Greeting xmlns=""><Name>World</Greeting>`)))
        expect(o.repaired).toBe(true)
        expect(o.diagnostics.map(String).join(" ")).toMatch(/mismatch/)
        expect((o.decoded!.deliveries[0]!.payload as P.Greeting).name).toBe("World")
      }))

    for (const bad of ["550E8400-E29B-41D4-A716-446655440000", "{550e8400-e29b-41d4-a716-446655440000}",
      "550e8400-e29b-11d4-a716-446655440000", "system.org.console.greeter", ""]) {
      it.effect(`thread ${JSON.stringify(bad)} is replaced by a fresh root thread`, () =>
        Effect.gen(function*() {
          const o = accepted(yield* run(env(`<from>console</from><to>greeter</to><thread>${bad}</thread>`, greeting)))
          expect(o.thread.replaced).toBe(true)
          expect(isThreadId(o.thread.thread)).toBe(true)
          expect(o.thread.thread).not.toBe(bad)
          expect(o.diagnostics.map(String).join(" ")).toMatch(/replaced with a new root thread/)
        }))
    }
  })

  it.effect("no document handle outlives its message", () =>
    Effect.gen(function*() {
      const { engine } = yield* IngressFixture
      const before = engine.liveHandles()
      for (const xml of [env(fullMeta, greeting), env(fullMeta, ""), `<x>`, env(fullMeta, `<Nobody xmlns=""/>`)]) {
        yield* run(xml)
      }
      expect(engine.liveHandles()).toEqual(before)
    }))
})
