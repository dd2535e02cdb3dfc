/**
 * No identity work: an envelope the pump writes is already in Exclusive C14N form. Whatever
 * the payload (every field kind, in both wire forms) and whatever the names and thread (text
 * that needs escaping, `\r`, non-ASCII), canonicalizing what `writeEnvelope` wrote gives the
 * same text back — which is what lets the pump skip that C14N pass for its own envelopes.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Either, FastCheck as fc } from "effect"
import { writeEnvelope } from "../src/domain/Envelope.js"
import { specOf, type WireMode } from "../src/domain/Payload.js"
import { instances, xmlString } from "./support/arbitraries.js"
import { IngressFixture } from "./support/ingress.js"

const wires: ReadonlyArray<WireMode> = ["native", "xmlify"]

layer(IngressFixture.layer)("an envelope the pump writes is canonical", (it) => {
  for (const [kind, arbitrary] of Object.entries(instances)) {
    it.effect.prop(
      `${kind} payloads, any names and threads, both wire forms`,
      [arbitrary as fc.Arbitrary<object>, xmlString, fc.option(xmlString, { nil: undefined }), fc.oneof(fc.uuid(), xmlString), fc.constantFrom(...wires)],
      ([value, from, to, thread, wire]) =>
        Effect.gen(function*() {
          const { engine } = yield* IngressFixture
          const spec = specOf((value as { constructor: never }).constructor, wire)
          let inner: string
          try {
            inner = spec.encodeInner(value)
          } catch {
            return // a value this wire form refuses to write (xmlify: NaN) is never written
          }
          const written = writeEnvelope({ from, to, thread, payloadTag: spec.tag, payloadInner: inner })
          const doc = engine.parse(written, { recover: false })
          if (Either.isLeft(doc)) throw new Error(`the pump wrote something libxml2 refuses: ${written}`)
          try {
            const canonical = engine.canonicalize(doc.right)
            expect(Either.getOrThrow(canonical)).toBe(written)
          } finally {
            engine.release(doc.right)
          }
        }),
      { fastCheck: { numRuns: 150 } }
    )
  }
})
