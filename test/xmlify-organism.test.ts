/**
 * `wire: xmlify` on a whole organism: the YAML key, and a running pump that reads what
 * xml-pipeline wrote and writes its replies and SystemErrors the way xml-pipeline reads them.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { loadOrganism } from "../src/config/loadOrganism.js"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { Reply } from "../src/domain/Reply.js"
import { SystemError } from "../src/domain/SystemPayloads.js"
import { Pump } from "../src/pipeline/Pump.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { Lists, Nested, Optionals, Point } from "./fixtures/xmlify/payloads.js"
import { Question } from "./fixtures/modules.js"
import { layerWithoutModels, withPump } from "./support/pump.js"

const fixture = (name: string) => readFileSync(join(import.meta.dirname, "fixtures", "xmlify", name), "utf8")

describe("wire: xmlify in YAML", () => {
  const dir = mkdtempSync(join(tmpdir(), "organism-wire-"))
  const modules = relative(dir, join(import.meta.dirname, "fixtures", "modules.ts"))
  const write = (name: string, wire: string) => {
    const file = join(dir, name)
    writeFileSync(
      file,
      `organism:\n  name: bridge\n  wire: ${wire}\nlisteners:\n  - name: oracle\n    payload: ${modules}#Question\n    handler: ${modules}#answer\n`
    )
    return file
  }

  it.effect("sets the organism's wire form, and a request runs through it", () =>
    Effect.gen(function*() {
      const { organism } = yield* loadOrganism(write("xmlify.yaml", "xmlify"))
      expect(organism.settings.wire).toBe("xmlify")
      const reply = yield* Effect.scoped(Effect.flatMap(Pump.make(organism), (pump) => pump.request("oracle", new Question({ text: "why" }))))
      expect((reply as { text: string }).text).toBe("you asked: why")
    }).pipe(Effect.provide(layerWithoutModels)))

  it.effect("defaults to native; anything else is refused with what is expected", () =>
    Effect.gen(function*() {
      const { organism } = yield* loadOrganism(write("native.yaml", "native"))
      expect(organism.settings.wire).toBe("native")
      const refused = yield* Effect.either(loadOrganism(write("json.yaml", "json")))
      expect(Either.isLeft(refused)).toBe(true)
      if (Either.isLeft(refused)) {
        const problem = refused.left.problems[0]!
        expect(problem.key).toBe("organism.wire")
        expect(problem.message).toMatch(/expected "native" or "xmlify"/)
      }
    }).pipe(Effect.provide(XmlEngine.layer)))
})

describe("an organism with wire: xmlify", () => {
  it.effect("reads xml-pipeline's envelope typed, writes its forward and the SystemError as xml-pipeline reads them", () =>
    Effect.gen(function*() {
      const received: Array<Optionals> = []
      const collected: Array<Lists> = []
      const errors: Array<SystemError> = []
      const organism = Organism.make({
        settings: { wire: "xmlify" },
        listeners: [
          Listener.make({
            name: "ts-listener",
            payload: Optionals,
            handler: (o) => {
              received.push(o)
              return Reply.all(
                Reply.forward("collector", new Lists({ tags: [], counts: [7], scores: [1e-7], flags: [], points: [] })),
                Reply.forward("nobody", new Nested({ center: new Point({ x: 1, y: 2 }), label: "l" }))
              )
            },
            onSystem: (e) => void (e instanceof SystemError && errors.push(e))
          }),
          Listener.make({ name: "collector", payload: Lists, handler: (l) => void collected.push(l) })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.injectRaw(fixture("optionals-some.envelope.xml"))
          yield* pump.awaitIdle
          expect(received.map((o) => ({ ...o, at: { ...o.at } }))).toEqual([
            { note: "n & m", count: 3, ratio: 2.25, ok: false, at: { x: 1, y: -2 } }
          ])
          expect(collected.map((l) => ({ ...l }))).toEqual([{ tags: [], counts: [7], scores: [1e-7], flags: [], points: [] }])
          expect(errors.map((e) => e.code)).toEqual(["routing"])
          const sent = (yield* eventsOf("MessageSent")).map((e) => e.payload)
          expect(sent).toContain(
            "<Lists><Tags></Tags><Counts><Int>7</Int></Counts><Scores><Float>0.0000001</Float></Scores><Flags></Flags><Points></Points></Lists>"
          )
          expect(sent.find((p) => p.startsWith("<SystemError>"))).toMatch(
            /^<SystemError><code>routing<\/code><message>[^<]+<\/message><retry-allowed>true<\/retry-allowed><\/SystemError>$/
          )
        }))
    }))

  it.effect("a native organism rejects the same envelope instead of misreading it", () =>
    Effect.gen(function*() {
      const received: Array<Optionals> = []
      const organism = Organism.make({
        listeners: [Listener.make({ name: "ts-listener", payload: Optionals, handler: (o) => void received.push(o) })]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.injectRaw(fixture("optionals-none.envelope.xml"))
          yield* pump.awaitIdle
          expect(received).toEqual([])
          expect((yield* eventsOf("MessageRejected")).map((e) => e.kind)).toEqual(["PayloadInvalid"])
        }))
    }))
})
