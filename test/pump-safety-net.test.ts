/**
 * The pump's safety net: an exception thrown inside the pipeline (a trap in the XML engine, a
 * registry Layer that throws) rejects the one message concerned as an InternalError — an
 * event, a dead letter, a counter — and the pump goes on with the next message.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { ENVELOPE_NS } from "../src/domain/Envelope.js"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { Reply } from "../src/domain/Reply.js"
import { Pump } from "../src/pipeline/Pump.js"
import { ContextBuffer } from "../src/services/ContextBuffer.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { Note, withPump } from "./support/pump.js"

const echo = Organism.make({
  listeners: [
    Listener.make({ name: "echo", payload: Note, handler: (p) => Reply.respond(new Note({ text: `echo ${p.text}` })) })
  ]
})

const envelope = (text: string) =>
  `<message xmlns="${ENVELOPE_NS}"><meta><from>console</from><to>echo</to><thread>t-${text}</thread></meta><Note xmlns=""><Text>${text}</Text></Note></message>`

/** The real engine, except that parsing a message that mentions TRAP throws, like a wasm trap. */
const trappingEngine = Layer.scoped(
  XmlEngine,
  Effect.map(XmlEngine.make, (engine): XmlEngine.Service => ({
    ...engine,
    parse: (input, options) => {
      const text = typeof input === "string" ? input : new TextDecoder().decode(input)
      if (text.includes("TRAP")) throw Object.assign(new Error("memory access out of bounds"), { name: "RuntimeError" })
      return engine.parse(input, options)
    }
  }))
)

/** The real history, except that recording a message that says "boom" throws. */
const throwingHistory = Layer.effect(
  ContextBuffer,
  Effect.map(ContextBuffer.make(), (buffer): ContextBuffer.Service => ({
    ...buffer,
    unsafeAppend: (message) => {
      if ((message.payload as { text?: string } | undefined)?.text === "boom") throw new Error("history store unavailable")
      return buffer.unsafeAppend(message)
    }
  }))
)

describe("the pump's safety net", () => {
  it.effect("an exception in the ingress stages rejects that message only", () =>
    withPump(echo, ({ eventsOf, pump }) =>
      Effect.gen(function*() {
        yield* pump.injectRaw(envelope("one"))
        yield* pump.injectRaw(envelope("TRAP"))
        yield* pump.injectRaw(envelope("two"))
        yield* pump.awaitIdle
        const rejected = yield* eventsOf("MessageRejected")
        expect(rejected).toHaveLength(1)
        expect(rejected[0]).toMatchObject({ stage: "ingress", kind: "InternalError" })
        expect(rejected[0]!.reason).toMatch(/RuntimeError: memory access out of bounds/)
        // The messages around it were delivered and answered.
        const handled = (yield* eventsOf("HandlerCompleted")).filter((e) => e.listener === "echo")
        expect(handled).toHaveLength(2)
        expect(pump.counters().rejectedBy).toEqual({ "ingress/InternalError": 1 })
        expect(pump.deadLetters()[0]).toMatchObject({ kind: "InternalError" })
      }), Layer.mergeAll(Pump.layerServices, trappingEngine)))

  it.effect("an exception while delivering rejects that message, releases its thread and keeps the pump running", () =>
    withPump(echo, ({ eventsOf, pump }) =>
      Effect.gen(function*() {
        yield* pump.inject("echo", new Note({ text: "before" }))
        yield* pump.inject("echo", new Note({ text: "boom" }))
        yield* pump.inject("echo", new Note({ text: "after" }))
        yield* pump.awaitIdle
        const rejected = yield* eventsOf("MessageRejected")
        expect(rejected).toHaveLength(1)
        expect(rejected[0]).toMatchObject({ stage: "dispatch", kind: "InternalError", from: "console", to: "echo" })
        expect(rejected[0]!.reason).toMatch(/history store unavailable/)
        const replies = (yield* eventsOf("MessageReceived")).filter((e) => e.from === "echo").map((e) => e.payload)
        expect(replies).toEqual(["<Note><Text>echo before</Text></Note>", "<Note><Text>echo after</Text></Note>"])
        // Nothing of the failed conversation is left behind.
        expect(pump.threads()).toEqual({ roots: 0, nodes: 0 })
      }), Layer.mergeAll(Pump.layerServices, throwingHistory)))
})
