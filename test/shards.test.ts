/**
 * Shards: one organism on worker threads, each a whole pump. Every test starts real worker
 * threads loading test/support/shard-organism.ts (or an organism file) through tsx.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Queue } from "effect"
import { layerForOrganism } from "../src/config/layerForOrganism.js"
import { loadOrganism } from "../src/config/loadOrganism.js"
import { PayloadNotEncodable } from "../src/domain/PumpError.js"
import { ThreadCompleted } from "../src/domain/PumpEvent.js"
import { Pump } from "../src/pipeline/Pump.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { ShardCallFailed, ShardFailed, Shards } from "../src/shards/Shards.js"
import { Ping } from "./support/shard-organism.js"

const module = new URL("./support/shard-organism.ts", import.meta.url)
const pingpong = (hops: number) => ({ module, export: "pingpong", args: [hops] })
const TIMEOUT = 60_000

interface Stats {
  readonly threadId: number
  readonly handled: number
}

describe("Shards", () => {
  it.live("spreads conversations over the shards, each on its own thread, and adds up their books", () =>
    Effect.gen(function*() {
      const shards = yield* Shards.make({ source: pingpong(40), shards: 2 })
      expect(shards.shards).toBe(2)
      expect(shards.name).toBe("shard-pingpong")
      expect(shards.listeners).toEqual(expect.arrayContaining(["ping", "pong"]))
      const threads = yield* Effect.forEach(Array.from({ length: 10 }, () => 0), () => shards.inject("ping", new Ping({ n: 1 })))
      expect(new Set(threads).size).toBe(10)
      yield* shards.awaitIdle
      const c = yield* shards.counters
      expect(c.injected).toBe(c.delivered + c.rejected + c.guardStopped)
      expect(c.rejected + c.guardStopped).toBe(0)
      expect(c.inFlight).toBe(0)
      // 10 conversations of 40 hops, plus each shard's Boot.
      expect(c.invocations).toBe(10 * 40 + 2)
      const stats = (yield* shards.call("stats")) as ReadonlyArray<Stats>
      expect(new Set(stats.map((s) => s.threadId)).size).toBe(2)
      expect(stats.map((s) => s.handled)).toEqual([200, 200])
    }).pipe(Effect.scoped), TIMEOUT)

  it.live("cancel finds the conversation in whichever shard has it; drain stops them all", () =>
    Effect.gen(function*() {
      const shards = yield* Shards.make({ source: { module, export: "waiting" }, shards: 2 })
      const threads = yield* Effect.forEach([1, 2, 3, 4], () => shards.inject("wait", new Ping({ n: 1 })))
      // Each shard has two conversations, waiting in their handlers.
      yield* Effect.sleep("200 millis")
      expect(yield* shards.threads).toEqual({ roots: 4, nodes: 8 })
      expect(yield* shards.cancel(threads[1]!, { by: "test" })).toBe(true)
      expect(yield* shards.cancel(threads[1]!)).toBe(false)
      expect(yield* shards.cancel("00000000-0000-4000-8000-000000000000")).toBe(false)
      const drained = yield* shards.drain("300 millis")
      expect(drained).toEqual({ finished: false, interrupted: 3 })
      const c = yield* shards.counters
      expect(c.injected).toBe(c.delivered + c.rejected + c.guardStopped)
      expect(c.inFlight).toBe(0)
      expect((yield* shards.threads).roots).toBe(0)
      // Drained: no new conversation is taken.
      const refused = yield* Effect.flip(shards.inject("wait", new Ping({ n: 1 })))
      expect(refused._tag).toBe("PumpStopped")
    }).pipe(Effect.scoped), TIMEOUT)

  it.live("dead letters come from every shard, oldest first", () =>
    Effect.gen(function*() {
      const shards = yield* Shards.make({ source: pingpong(2), shards: 2 })
      yield* Effect.forEach(["nobody", "noone"], (to) => shards.inject(to, new Ping({ n: 1 })))
      yield* shards.awaitIdle
      const letters = yield* shards.deadLetters
      expect(letters.map((l) => l.to).sort()).toEqual(["nobody", "noone"])
      expect(letters[0]!.time).toBeLessThanOrEqual(letters[1]!.time)
      expect(letters.every((l) => l.stage === "route")).toBe(true)
    }).pipe(Effect.scoped), TIMEOUT)

  it.live("a subscriber gets every shard's events, as the pump's own classes, all in before awaitIdle returns", () =>
    Effect.gen(function*() {
      const shards = yield* Shards.make({ source: pingpong(6), shards: 2 })
      const events = yield* shards.subscribe
      const threads = yield* Effect.forEach([1, 2, 3, 4], () => shards.inject("ping", new Ping({ n: 1 })))
      yield* shards.awaitIdle
      // Every event of the work before awaitIdle has arrived when it returns.
      const completed = Chunk.toReadonlyArray(yield* Queue.takeAll(events)).filter((e) => e instanceof ThreadCompleted)
      expect(completed.map((e) => e.thread).sort()).toEqual([...threads].sort())
      expect(completed.every((e) => e.invocations === 6 && e.reason === "completed")).toBe(true)
    }).pipe(Effect.scoped), TIMEOUT)

  it.live("a subscription ends with its Scope, and a new one gets events again", () =>
    Effect.gen(function*() {
      const shards = yield* Shards.make({ source: pingpong(4), shards: 2 })
      const later = yield* Effect.scoped(Effect.gen(function*() {
        const events = yield* shards.subscribe
        yield* shards.inject("ping", new Ping({ n: 1 }))
        yield* shards.awaitIdle
        return events
      }))
      // The subscription's Scope closed: its queue is shut down, and nothing more is sent.
      expect(yield* Queue.isShutdown(later)).toBe(true)
      const after = yield* shards.subscribe
      yield* shards.inject("ping", new Ping({ n: 1 }))
      yield* shards.awaitIdle
      const got = Chunk.toReadonlyArray(yield* Queue.takeBetween(after, 1, 1000))
      expect(got.length).toBeGreaterThan(0)
    }).pipe(Effect.scoped), TIMEOUT)

  it.live("an organism file boots once, however many shards run it", () =>
    Effect.gen(function*() {
      const file = "examples/hello/organism.yaml"
      const single = yield* Effect.gen(function*() {
        const loaded = yield* loadOrganism(file)
        const pump = yield* Pump.make(loaded.organism).pipe(Effect.provide(layerForOrganism(loaded)))
        yield* pump.awaitIdle
        return pump.counters()
      }).pipe(Effect.scoped, Effect.provide(XmlEngine.layer))
      const shards = yield* Shards.make({ source: { yaml: file }, shards: 2 })
      yield* shards.awaitIdle
      const c = yield* shards.counters
      // The same conversations as one pump, plus the second shard's own Boot.
      expect(c.invocations).toBe(single.invocations + 1)
      expect(c.delivered).toBe(single.delivered + 1)
      expect(c.rejected).toBe(single.rejected)
    }).pipe(Effect.scoped), TIMEOUT)

  it.live("a source that gives no organism fails to start, saying what is wrong", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.exit(Shards.make({ source: { module, export: "nowhere" }, shards: 1 }))
      expect(missing).toStrictEqual(Exit.fail(expect.any(ShardFailed)))
      const error = Exit.isFailure(missing) && missing.cause._tag === "Fail" ? missing.cause.error : undefined
      expect(error?.message).toMatch(/shard 0: could not start: .*shard-organism\.ts has no export nowhere \(it exports .*pingpong/)
      const wrong = yield* Effect.flip(Shards.make({ source: { module, export: "notAnOrganism" }, shards: 1 }))
      expect(wrong.message).toMatch(/shard-organism\.ts#notAnOrganism is not an Organism/)
      const stuck = yield* Effect.flip(Shards.make({ source: { module, export: "never" }, shards: 1, startTimeout: "3 seconds" }))
      expect(stuck.message).toBe("shard 0: could not start: not ready after 3s")
      const zero = yield* Effect.flip(Shards.make({ source: pingpong(2), shards: 0 }))
      expect(zero.message).toBe("shards must be a whole number ≥ 1, got 0")
    }).pipe(Effect.scoped), TIMEOUT)

  it.live("when one shard cannot start, the shards already started are stopped", () =>
    Effect.gen(function*() {
      const flag = new SharedArrayBuffer(8)
      const error = yield* Effect.flip(Effect.scoped(Shards.make({ source: { module, export: "failAllButOne", args: [flag] }, shards: 2 })))
      expect(error.message).toMatch(/could not start: only one shard may load this/)
      const counts = new Int32Array(flag)
      expect(counts[0]).toBe(2)
      // Both threads have ended, the one that failed and the one that had started: their
      // timers tick no more.
      yield* Effect.sleep("200 millis")
      const ticks = Atomics.load(counts, 1)
      yield* Effect.sleep("300 millis")
      expect(Atomics.load(counts, 1)).toBe(ticks)
    }), TIMEOUT)

  it.live("a value that is not a payload is refused before it leaves the main thread", () =>
    Effect.gen(function*() {
      const shards = yield* Shards.make({ source: pingpong(2), shards: 1 })
      const error = yield* Effect.flip(shards.inject("ping", { n: 1 }))
      expect(error).toBeInstanceOf(PayloadNotEncodable)
      const c = yield* shards.counters
      expect(c.injected).toBe(1) // the Boot only
    }).pipe(Effect.scoped), TIMEOUT)

  it.live("a function that fails in a shard is a ShardCallFailed, and the shard goes on", () =>
    Effect.gen(function*() {
      const shards = yield* Shards.make({ source: pingpong(2), shards: 2 })
      const error = yield* Effect.flip(shards.call("fails", "on purpose"))
      expect(error).toBeInstanceOf(ShardCallFailed)
      expect(error.message).toBe("fails failed in shard 0: on purpose")
      yield* shards.inject("ping", new Ping({ n: 1 }))
      yield* shards.awaitIdle
    }).pipe(Effect.scoped), TIMEOUT)

  it.live("a shard whose thread ends is reported, and new conversations go to the others", () =>
    Effect.gen(function*() {
      const shards = yield* Shards.make({ source: pingpong(4), shards: 2 })
      const crashed = yield* Effect.flip(shards.call("crashOne", new SharedArrayBuffer(4)))
      expect(crashed).toBeInstanceOf(ShardFailed)
      expect(crashed.message).toMatch(/its thread exited \(code 3\)/)
      // Its books are gone: waiting for every shard says which one failed.
      const idle = yield* Effect.flip(shards.awaitIdle)
      expect(idle.message).toMatch(/^shard \d: its thread exited \(code 3\)$/)
      const dead = (idle as ShardFailed).shard
      expect(idle).toStrictEqual(crashed)
      // New conversations all land on the live shard, and run to their end.
      const threads = yield* Effect.forEach([1, 2, 3], () => shards.inject("ping", new Ping({ n: 1 })))
      expect(threads.length).toBe(3)
      const live = yield* Effect.flip(shards.call("stats"))
      expect((live as ShardFailed).shard).toBe(dead)
    }).pipe(Effect.scoped), TIMEOUT)
})
