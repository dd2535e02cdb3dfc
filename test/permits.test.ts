/** The producers' permits: a reload to fewer permits holds new producers back until enough are given back. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { Permits } from "../src/pipeline/internal/Permits.js"

describe("Permits", () => {
  it.effect("after a resize to fewer, a waiter gets a permit only once those held are under the new capacity", () =>
    Effect.gen(function*() {
      const permits = new Permits(3)
      for (let i = 0; i < 3; i++) yield* permits.acquire
      permits.resize(1)
      const waiter = yield* Effect.fork(permits.acquire)
      yield* Effect.yieldNow()
      permits.release() // 2 held, capacity 1
      yield* Effect.yieldNow()
      expect(waiter.unsafePoll()).toBeNull()
      permits.release() // 1 held
      yield* Effect.yieldNow()
      expect(waiter.unsafePoll()).toBeNull()
      permits.release() // 0 held: the waiter takes the one permit
      yield* Fiber.join(waiter)
      const next = yield* Effect.fork(permits.acquire)
      yield* Effect.yieldNow()
      expect(next.unsafePoll()).toBeNull()
      permits.resize(2) // a larger capacity lets it in at once
      yield* Fiber.join(next)
    }))
})
