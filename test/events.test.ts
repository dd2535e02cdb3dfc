/**
 * Events built on the pump's hot path (`makeEvent`) are the same events the Schema classes
 * construct: equal, instances of their class, encoded alike.
 */
import { describe, expect, it } from "@effect/vitest"
import { Equal, Schema } from "effect"
import {
  HandlerCompleted,
  handlerCompleted,
  makeEvent,
  MessageReceived,
  messageReceived,
  MessageSent,
  messageSent,
  PumpEvent,
  ThreadCompleted
} from "../src/domain/PumpEvent.js"

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

describe("the hot path's own builders", () => {
  const cases = [
    [MessageSent, messageSent, { thread: "t", root: "r", parent: null, time: 1.5, from: "a", to: "b", payloadType: "P", payload: "<P/>", origin: "reply", envelope: "<m/>" }],
    [MessageReceived, messageReceived, { thread: "t", root: "r", parent: "p", time: 2, from: "a", to: "b", payloadType: "P", payload: "<P/>", diagnostics: ["d"], envelope: "<m/>" }],
    [HandlerCompleted, handlerCompleted, { thread: "t", root: "r", time: 3, listener: "b", replies: ["P"], durationMs: 0.25 }]
  ] as const
  for (const [Class, build, fields] of cases) {
    it(`${Class._tag}: the same event as makeEvent's and the constructor's, field for field`, () => {
      const fast = (build as (f: unknown) => PumpEvent)(fields)
      const built = new (Class as any)(fields, true)
      expect(fast).toBeInstanceOf(Class)
      expect(fast.constructor).toBe(Class)
      expect(Object.keys(fast)).toEqual(Object.keys(makeEvent(Class as any, fields as any)))
      expect(Equal.equals(fast, built)).toBe(true)
      expect(JSON.stringify(fast)).toBe(JSON.stringify(built))
      expect(Schema.encodeSync(PumpEvent)(fast)).toEqual(Schema.encodeSync(PumpEvent)(built))
      // A field the builder forgot would be missing here, not merely undefined.
      expect(Object.keys(fast).sort()).toEqual([...Object.keys(fields), "_tag"].sort())
    })
  }
})
