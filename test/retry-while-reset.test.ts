/**
 * A cluster client's request is made again while the connection it wrote on was reset (a
 * runner killed mid-write), and only then (src/cluster/retryWhileReset.ts).
 */
import * as Socket from "@effect/platform/Socket"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, TestClock } from "effect"
import { retryWhileReset } from "../src/cluster/retryWhileReset.js"

const reset = () => new Socket.SocketGenericError({ reason: "Write", cause: new Error("write ECONNRESET") })

/** A request that fails as `failures` says, one entry per attempt, then answers "ended". */
const request = (failures: ReadonlyArray<"fail" | "die" | "other">) => {
  let attempts = 0
  const effect = Effect.suspend(() => {
    const next = failures[attempts++]
    if (next === "fail") return Effect.fail(reset())
    if (next === "die") return Effect.die(reset())
    if (next === "other") return Effect.fail(new Error("no such listener"))
    return Effect.succeed("ended")
  })
  return { effect, attempts: () => attempts }
}

describe("retryWhileReset", () => {
  it.effect("sends again after a reset connection, whether it failed or died of it", () =>
    Effect.gen(function*() {
      const r = request(["fail", "die", "fail"])
      const fiber = yield* Effect.fork(retryWhileReset(r.effect))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("ended")
      expect(r.attempts()).toBe(4)
    }))

  it.effect("any other failure fails at once, as before", () =>
    Effect.gen(function*() {
      const r = request(["other"])
      const exit = yield* Effect.exit(retryWhileReset(r.effect))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(r.attempts()).toBe(1)
    }))

  it.effect("gives up after a minute of resets, with the reset", () =>
    Effect.gen(function*() {
      const r = request(Array.from({ length: 1000 }, () => "fail" as const))
      const fiber = yield* Effect.fork(Effect.exit(retryWhileReset(r.effect)))
      yield* TestClock.adjust("2 minutes")
      const exit = yield* Fiber.join(fiber)
      expect(Exit.isFailure(exit) && Socket.isSocketError(Cause.squash(exit.cause))).toBe(true)
      expect(r.attempts()).toBeGreaterThan(200)
      expect(r.attempts()).toBeLessThan(250)
    }))
})
