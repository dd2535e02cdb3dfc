/**
 * An organism's own stages: they see every message at their point of the pipeline, typed by
 * its payload, and pass it, replace its payload (redaction) or drop it with a reason — which
 * is settled like any rejection: a dead letter, an event, and the sender hears why.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Layer } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { loadOrganism } from "../src/config/loadOrganism.js"
import { CustomStage, type StageMessage } from "../src/domain/CustomStage.js"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { Reply } from "../src/domain/Reply.js"
import { SystemError } from "../src/domain/SystemPayloads.js"
import { Pump } from "../src/pipeline/Pump.js"
import { CustomStages } from "../src/pipeline/pump/CustomStages.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { Note, Ping, withPump } from "./support/pump.js"

const redactDigits = CustomStage.make({
  name: "redact-digits",
  at: "after-decode",
  run: (m) => Effect.succeed(m.payload instanceof Note ? new Note({ text: m.payload.text.replace(/\d/g, "#") }) : m.payload)
})

const received: Array<string> = []
const sink = Listener.make({ name: "sink", payload: Note, handler: (p) => void received.push(p.text) })

describe("an organism's own stages", () => {
  it.effect("after-decode: a replaced payload is what the handler gets and what the history records", () =>
    withPump(Organism.make({ listeners: [sink], stages: [redactDigits] }), ({ eventsOf, pump }) =>
      Effect.gen(function*() {
        received.length = 0
        yield* pump.inject("sink", new Note({ text: "card 4111 1111" }))
        yield* pump.awaitIdle
        expect(received).toEqual(["card #### ####"])
        const delivered = (yield* eventsOf("MessageReceived")).filter((e) => e.to === "sink")
        expect(delivered.map((e) => e.payload)).toEqual(["<Note><Text>card #### ####</Text></Note>"])
      })))

  it.effect("a drop is a rejection with its reason, and the sending listener hears why", () => {
    const heard: Array<string> = []
    const asker = Listener.make({
      name: "asker",
      payload: Ping,
      handler: () => Reply.forward("sink", new Note({ text: "secret plans" })),
      onSystem: (e) => void (e instanceof SystemError && heard.push(e.code))
    })
    const policy = CustomStage.drop("no-secrets", "before-dispatch", (m) =>
      m.payload instanceof Note && m.payload.text.includes("secret") ? `no secrets for ${m.to.join(", ")}` : undefined)
    return withPump(Organism.make({ listeners: [asker, sink], stages: [policy] }), ({ eventsOf, pump }) =>
      Effect.gen(function*() {
        yield* pump.inject("asker", new Ping({ n: 1 }))
        yield* pump.awaitIdle
        const rejected = yield* eventsOf("MessageRejected")
        expect(rejected).toHaveLength(1)
        expect(rejected[0]).toMatchObject({ stage: "stage", kind: "StageRejected", from: "asker", to: "sink" })
        expect(rejected[0]!.reason).toBe("refused by stage no-secrets: no secrets for sink")
        expect(pump.counters().rejectedBy).toEqual({ "stage/StageRejected": 1 })
        expect(pump.deadLetters()[0]).toMatchObject({ kind: "StageRejected", payloadType: "Note" })
        expect(heard).toEqual(["invalid"])
      }))
  })

  it.effect("before-reply: a reply a stage drops is never written; the replying listener hears why", () => {
    const heard: Array<string> = []
    const chatty = Listener.make({
      name: "chatty",
      payload: Ping,
      handler: () => Reply.forward("sink", new Note({ text: "too loud" })),
      onSystem: (e) => void (e instanceof SystemError && heard.push(e.code))
    })
    const quiet = CustomStage.drop("quiet", "before-reply", (m) => (m.from === "chatty" ? "chatty may not speak" : undefined))
    return withPump(Organism.make({ listeners: [chatty, sink], stages: [quiet] }), ({ eventsOf, pump }) =>
      Effect.gen(function*() {
        received.length = 0
        yield* pump.inject("chatty", new Ping({ n: 1 }))
        yield* pump.awaitIdle
        expect(received).toEqual([])
        expect((yield* eventsOf("MessageSent")).some((e) => e.from === "chatty")).toBe(false)
        expect(pump.counters().rejectedBy).toEqual({ "outbox/StageRejected": 1 })
        expect(heard).toEqual(["invalid"])
      }))
  })

  it.effect("stages from a Layer run before the organism's own, in order, and see where messages go", () => {
    const seen: Array<string> = []
    const audit = (tag: string) => CustomStage.tap(tag, "before-dispatch", (m: StageMessage) => void seen.push(`${tag} ${m.from}→${m.to.join(",")}`))
    const organism = Organism.make({ listeners: [sink], stages: [audit("own")] })
    return withPump(organism, ({ pump }) =>
      Effect.gen(function*() {
        yield* pump.inject("sink", new Note({ text: "hi" }))
        yield* pump.awaitIdle
        expect(seen.filter((s) => s.includes("console"))).toEqual(["layer console→sink", "own console→sink"])
        // The organism's own boot message passes them too: every message does.
        expect(seen.filter((s) => s.includes("system.boot"))).toEqual(["layer system→system.boot", "own system→system.boot"])
      }), Layer.merge(Pump.layerServices, CustomStages.layer([audit("layer")])))
  })

  it.effect("a stage that suspends, throws or changes the payload type rejects the message, and the pump goes on", () => {
    const bad = (name: string, run: CustomStage["run"]) => CustomStage.make({ name, at: "after-decode", run })
    const stages = [
      bad("sleepy", (m) => m.payload instanceof Note && m.payload.text === "sleep" ? Effect.as(Effect.sleep(Duration.seconds(1)), m.payload) : Effect.succeed(m.payload)),
      bad("thrower", (m) => Effect.sync(() => {
        if (m.payload instanceof Note && m.payload.text === "throw") throw new Error("stage bug")
        return m.payload
      })),
      bad("shapeshifter", (m) => Effect.succeed(m.payload instanceof Note && m.payload.text === "shift" ? new Ping({ n: 1 }) : m.payload))
    ]
    return withPump(Organism.make({ listeners: [sink], stages }), ({ eventsOf, pump }) =>
      Effect.gen(function*() {
        received.length = 0
        for (const text of ["sleep", "throw", "shift", "fine"]) yield* pump.inject("sink", new Note({ text }))
        yield* pump.awaitIdle
        expect(received).toEqual(["fine"])
        const rejected = yield* eventsOf("MessageRejected")
        expect(rejected.map((e) => e.kind)).toEqual(["InternalError", "InternalError", "StageRejected"])
        expect(rejected[0]!.reason).toMatch(/stage sleepy/)
        expect(rejected[1]!.reason).toMatch(/stage thrower: .*stage bug/)
        expect(rejected[2]!.reason).toMatch(/shapeshifter: the stage returned a value that is not a <Note> payload/)
      }))
  })

  it.effect("an organism file lists its stages; a wrong reference is reported at its line", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "stages-"))
      writeFileSync(join(dir, "payloads.ts"), `import { Schema } from "effect"\nimport { Payload } from "${process.cwd()}/src/index.js"\nexport class Memo extends Payload.Class<Memo>("Memo")({ text: Schema.String }) {}\n`)
      writeFileSync(join(dir, "handlers.ts"), `export const keep = () => undefined\n`)
      writeFileSync(
        join(dir, "stages.ts"),
        `import { Memo } from "./payloads.ts"\nexport const shout = (m: { payload: Memo }) => new Memo({ text: m.payload.text.toUpperCase() })\n`
      )
      const yaml = (run: string) =>
        `organism:\n  name: staged\nlisteners:\n  - name: keeper\n    payload: ./payloads.ts#Memo\n    handler: ./handlers.ts#keep\nstages:\n  - at: after-decode\n    run: ${run}\n`
      writeFileSync(join(dir, "good.yaml"), yaml("./stages.ts#shout"))
      writeFileSync(join(dir, "bad.yaml"), yaml("./stages.ts#whisper"))
      const good = yield* loadOrganism(join(dir, "good.yaml"))
      expect(good.organism.stages.map((s) => [s.name, s.at])).toEqual([["shout", "after-decode"]])
      const bad = yield* Effect.either(loadOrganism(join(dir, "bad.yaml")))
      expect(Either.isLeft(bad) && bad.left.problems.map(String).join("\n")).toMatch(/bad\.yaml:9.*stages\[0\]\.run.*whisper/)
    }).pipe(Effect.provide(XmlEngine.layer)))
})
