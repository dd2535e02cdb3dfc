/**
 * Events cross from a shard to the main thread packed in columns (src/shards/internal/EventBatch.ts):
 * what arrives must be the event that left — same class, same fields in the same order,
 * same values — whatever the events and their strings hold.
 */
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, FastCheck as fc } from "effect"
import { PumpEvent } from "../src/domain/PumpEvent.js"
import { decodeEvents, encodeEvents } from "../src/shards/internal/EventBatch.js"

const prototypes = new Map<string, object>(PumpEvent.members.map((m) => [m._tag as string, m.prototype as object]))
const anyEvent = Arbitrary.make(PumpEvent)

/** Through structured clone, as postMessage carries it. */
const crossed = (events: ReadonlyArray<PumpEvent>) => decodeEvents(structuredClone(encodeEvents(events)), prototypes)

describe("shard event batches", () => {
  it("every event arrives as it left: class, fields, their order and values", () => {
    fc.assert(
      fc.property(fc.array(anyEvent, { maxLength: 40 }), (events) => {
        const arrived = crossed(events)
        expect(arrived).toStrictEqual(events)
        arrived.forEach((e, i) => {
          expect(Object.getPrototypeOf(e)).toBe(Object.getPrototypeOf(events[i]))
          expect(Object.keys(e)).toEqual(Object.keys(events[i]!))
        })
      }),
      { numRuns: 300 }
    )
  })

  it("strings of any content come back whole, next to one another", () => {
    const text = fc.string({ unit: "binary", maxLength: 30 })
    fc.assert(
      fc.property(fc.array(fc.tuple(text, text, fc.double()), { minLength: 1, maxLength: 20 }), (rows) => {
        const events = rows.map(([thread, reason, time]) => ({ _tag: "Custom", thread, reason, time })) as unknown as ReadonlyArray<PumpEvent>
        // An unknown tag arrives as a plain object with the same fields.
        expect(crossed(events)).toStrictEqual(events.map((e) => ({ ...e })))
      })
    )
  })

  it("an empty batch is empty", () => {
    expect(crossed([])).toEqual([])
  })
})
