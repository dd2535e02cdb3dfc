/**
 * The pump lets the event loop's I/O in while a long conversation runs (internal/IoSlice.ts):
 * a server's requests and live-event writes are not held back until a conversation ends.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeIoSlice } from "../src/pipeline/internal/IoSlice.js"
import { IoFairness } from "../src/pipeline/IoFairness.js"
import { expectBalanced, longPingpong, Ping, withPump } from "./support/pump.js"

const HOPS = 3000

const pingpong = longPingpong(HOPS)

/** Resolves at the event loop's next check phase: after any pending I/O callbacks. */
const nextMacrotask = () => new Promise<void>((resolve) => setImmediate(resolve))

describe("the pump and the event loop", () => {
  it.live("with IoFairness, a macrotask scheduled while a conversation runs is served long before it ends", () =>
    withPump(pingpong, ({ pump }) =>
      Effect.gen(function*() {
        const before = pump.counters().invocations
        yield* pump.inject("ping", new Ping({ n: 1 }))
        // Three turns of the event loop, each as an HTTP request's callback would get them.
        const seen: Array<number> = []
        yield* Effect.promise(async () => {
          for (let i = 0; i < 3; i++) {
            await nextMacrotask()
            seen.push(pump.counters().invocations - before)
          }
        })
        yield* pump.awaitIdle
        const total = pump.counters().invocations - before
        expect(total).toBeGreaterThanOrEqual(HOPS)
        // Without a slice the first turn came only once all 3,000 hops were done.
        expect(seen[2]!).toBeLessThan(HOPS / 2)
        expectBalanced(pump)
      })).pipe(Effect.provideService(IoFairness, IoFairness.serving)))

  it.live("within a slice the Effect completes without leaving the microtask queue", () =>
    Effect.gen(function*() {
      const slice = makeIoSlice(60_000)
      let immediate = false
      setImmediate(() => {
        immediate = true
      })
      for (let i = 0; i < 100; i++) yield* slice
      expect(immediate).toBe(false)
    }))

  it.live("past its slice it yields to the event loop once, then starts a new slice", () =>
    Effect.gen(function*() {
      const slice = makeIoSlice(0)
      let immediates = 0
      const tick = () => {
        immediates++
      }
      setImmediate(tick)
      yield* slice
      expect(immediates).toBe(1)
    }))
})

describe("IoFairness", () => {
  it.effect("is off unless a host turns it on; the server and the runner use a 1 ms slice", () =>
    Effect.gen(function*() {
      expect((yield* IoFairness).sliceMs).toBeUndefined()
      expect(IoFairness.serving.sliceMs).toBe(1)
    }))
})
