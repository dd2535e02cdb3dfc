/**
 * Events built on the pump's hot path (`makeEvent`) are the same events the Schema classes
 * construct: equal, instances of their class, encoded alike.
 */
import { describe, expect, it } from "@effect/vitest"
import { Equal, Schema } from "effect"
import { HandlerCompleted, makeEvent, MessageReceived, MessageSent, PumpEvent, ThreadCompleted } from "../src/domain/PumpEvent.js"

describe("makeEvent", () => {
  const cases = [
    [MessageSent, { thread: "t", root: "r", parent: null, time: 1.5, from: "a", to: "b", payloadType: "P", payload: "<P/>", origin: "reply", envelope: "<m/>" }],
    [MessageReceived, { thread: "t", root: "r", parent: "p", time: 2, from: "a", to: "b", payloadType: "P", payload: "<P/>", diagnostics: ["d"], envelope: "<m/>" }],
    [HandlerCompleted, { thread: "t", root: "r", time: 3, listener: "b", replies: ["P"], durationMs: 0.25 }],
    [ThreadCompleted, { thread: "t", time: 4, invocations: 2, reason: "guard", detail: "max-invocations: …" }]
  ] as const
  for (const [Class, fields] of cases) {
    it(`${Class._tag}: equal to the constructed event, and encoded alike`, () => {
      const fast = makeEvent(Class as any, fields as any)
      const built = new (Class as any)(fields, true)
      expect(fast).toBeInstanceOf(Class)
      expect(Equal.equals(fast, built)).toBe(true)
      expect(JSON.stringify(fast)).toBe(JSON.stringify(built))
      expect(Schema.encodeSync(PumpEvent)(fast)).toEqual(Schema.encodeSync(PumpEvent)(built))
    })
  }
})
