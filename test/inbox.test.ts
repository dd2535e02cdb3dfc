/**
 * The pump's inbox (internal/Inbox.ts) and the inline intake that reads it: taking what is
 * waiting is a plain call, an empty inbox is waited for as an Effect, a shut-down one takes
 * nothing more — and delivering many chunks per step still lets other fibers run.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { Inbox } from "../src/pipeline/internal/Inbox.js"
import { expectBalanced, longPingpong, Ping, withPump } from "./support/pump.js"

describe("Inbox", () => {
  it("gives items back oldest first, at most `max` at a time, and nothing when empty", () => {
    const inbox = new Inbox<number>()
    expect(inbox.poll(10)).toBeUndefined()
    for (let i = 0; i < 5; i++) expect(inbox.unsafeOffer(i)).toBe(true)
    expect(inbox.size).toBe(5)
    expect(inbox.poll(2)).toEqual([0, 1])
    inbox.unsafeOffer(5)
    expect(inbox.poll(10)).toEqual([2, 3, 4, 5])
    expect(inbox.size).toBe(0)
    expect(inbox.poll(10)).toBeUndefined()
  })

  it("keeps the order over many small takes interleaved with offers (the array is compacted on the way)", () => {
    const inbox = new Inbox<number>()
    const seen: Array<number> = []
    let next = 0
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 100; i++) inbox.unsafeOffer(next++)
      for (let i = 0; i < 30; i++) seen.push(...(inbox.poll(3) ?? []))
    }
    for (let batch = inbox.poll(7); batch !== undefined; batch = inbox.poll(7)) seen.push(...batch)
    expect(seen.length).toBe(next)
    expect(seen.every((v, i) => v === i)).toBe(true)
  })

  it.effect("a take on an empty inbox waits for the next offer", () =>
    Effect.gen(function*() {
      const inbox = new Inbox<string>()
      const reader = yield* Effect.fork(inbox.take(10))
      yield* Effect.yieldNow()
      expect(reader.unsafePoll()).toBeNull()
      inbox.unsafeOffer("a")
      inbox.unsafeOffer("b")
      expect(yield* Fiber.join(reader)).toEqual(["a", "b"])
      // Items already waiting are taken without suspending.
      inbox.unsafeOffer("c")
      expect(yield* inbox.take(10)).toEqual(["c"])
    }))

  it.effect("shut down, it refuses offers and interrupts a waiting or later take", () =>
    Effect.gen(function*() {
      const inbox = new Inbox<number>()
      const reader = yield* Effect.fork(inbox.take(10))
      yield* Effect.yieldNow()
      yield* inbox.shutdown
      expect(Exit.isInterrupted(yield* Fiber.await(reader))).toBe(true)
      expect(inbox.unsafeOffer(1)).toBe(false)
      expect(inbox.size).toBe(0)
      expect(Exit.isInterrupted(yield* Effect.exit(inbox.take(10)))).toBe(true)
    }))

  it.effect("an interrupted take leaves no waiter behind: the next take gets the next offer", () =>
    Effect.gen(function*() {
      const inbox = new Inbox<number>()
      const first = yield* Effect.fork(inbox.take(10))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(first)
      const second = yield* Effect.fork(inbox.take(10))
      yield* Effect.yieldNow()
      inbox.unsafeOffer(7)
      expect(yield* Fiber.join(second)).toEqual([7])
    }))
})

const HOPS = 3000

const pingpong = longPingpong(HOPS)

describe("the inline intake", () => {
  it.live("delivers a long conversation in chunks of one without starving the other fibers", () =>
    withPump(pingpong, ({ pump }) =>
      Effect.gen(function*() {
        const before = pump.counters().invocations
        // Another fiber that wants the thread back regularly, as a subscriber or a suspended
        // handler does: it notes how far the conversation was each time it ran.
        const seen: Array<number> = []
        const other = yield* Effect.fork(Effect.forever(Effect.zipRight(Effect.sync(() => seen.push(pump.counters().invocations - before)), Effect.yieldNow())))
        yield* pump.inject("ping", new Ping({ n: 1 }))
        yield* pump.awaitIdle
        yield* Fiber.interrupt(other)
        expect(pump.counters().invocations - before).toBeGreaterThanOrEqual(HOPS)
        // It ran many times while the conversation went on, not only once it had ended.
        expect(seen.filter((n) => n > 0 && n < HOPS).length).toBeGreaterThanOrEqual(5)
        expectBalanced(pump)
      })))
})
