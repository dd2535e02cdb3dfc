/**
 * The pump's millisecond clock (internal/MillisClock.ts): on Effect's default Clock it reads
 * `performance.now()` plus an offset instead of BigInt nanoseconds, and must give the same
 * figure; any other Clock (TestClock) is read as it is.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, TestClock } from "effect"
import { millisOf } from "../src/pipeline/internal/MillisClock.js"

describe("millisOf", () => {
  it("on the default Clock: the Clock's own nanoseconds as milliseconds, never going back", () => {
    const clock = Clock.make()
    const now = millisOf(clock)
    let last = now()
    for (let i = 0; i < 1000; i++) {
      const exact = Number(clock.unsafeCurrentTimeNanos()) / 1_000_000
      const fast = now()
      // Both read the same monotonic clock: apart by the time between the two reads only.
      expect(Math.abs(fast - exact)).toBeLessThan(1)
      expect(fast).toBeGreaterThanOrEqual(last)
      last = fast
    }
    // Epoch milliseconds, like Date.now().
    expect(Math.abs(now() - Date.now())).toBeLessThan(50)
  })

  it.effect("on a TestClock: the TestClock's time, as it is adjusted", () =>
    Effect.gen(function*() {
      const now = millisOf(yield* Effect.clock)
      const before = now()
      yield* TestClock.adjust(Duration.millis(1500))
      expect(now() - before).toBe(1500)
    }))
})
