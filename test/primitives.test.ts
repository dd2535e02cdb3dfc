import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import {
  BufferComplete,
  BufferDispatched,
  BufferStart,
  SequenceComplete,
  SequenceError,
  SequenceStart
} from "../src/domain/PrimitivePayloads.js"
import { Reply } from "../src/domain/Reply.js"
import { Note, Ping, Pong, withPump } from "./support/pump.js"

const ping = (n: number) => `<Ping><N>${n}</N></Ping>`

const arithmetic = Organism.make({
  listeners: [
    Listener.make({ name: "inc", payload: Ping, handler: (p) => Reply.respond(new Ping({ n: p.n + 1 })) }),
    Listener.make({ name: "double", payload: Ping, handler: (p) => Reply.respond(new Ping({ n: p.n * 2 })) }),
    Listener.make({ name: "broken", payload: Ping, handler: () => Effect.fail("broken on purpose") }),
    Listener.make({ name: "silent", payload: Ping, handler: () => Reply.none }),
    Listener.make({ name: "pong", payload: Ping, handler: (p) => Reply.respond(new Pong({ n: p.n })) }),
    Listener.make({
      name: "picky",
      payload: Ping,
      // Fails on odd numbers, answers even ones — after a delay that reverses the order.
      handler: (p) =>
        p.n % 2 === 1
          ? Effect.fail(`odd ${p.n}`)
          : Effect.as(Effect.sleep(`${(10 - p.n) * 3} millis`), Reply.respond(new Pong({ n: p.n })))
    })
  ]
})

describe("Sequence", () => {
  it.effect("a 3-step sequence returns every step's result, each step's reply feeding the next", () =>
    withPump(arithmetic, ({ pump }) =>
      Effect.gen(function*() {
        const reply = yield* pump.request("system.sequence", new SequenceStart({ steps: ["inc", "double", "inc"], payload: ping(1) }))
        expect(reply).toBeInstanceOf(SequenceComplete)
        expect((reply as SequenceComplete).results).toEqual([ping(2), ping(4), ping(5)])
      })))

  it.effect("a failing step returns SequenceError with its index", () =>
    withPump(arithmetic, ({ pump }) =>
      Effect.gen(function*() {
        const reply = yield* pump.request("system.sequence", new SequenceStart({ steps: ["inc", "broken", "inc"], payload: ping(1) }))
        expect(reply).toBeInstanceOf(SequenceError)
        expect(reply).toMatchObject({ failedStep: "broken", index: 1 })
        expect((reply as SequenceError).error).toMatch(/failed/)
      })))

  it.effect("a step that ends without replying is reported, not waited for forever", () =>
    withPump(arithmetic, ({ pump }) =>
      Effect.gen(function*() {
        const reply = yield* pump.request("system.sequence", new SequenceStart({ steps: ["inc", "silent", "inc"], payload: ping(1) }))
        expect(reply).toMatchObject({ failedStep: "silent", index: 1, error: "silent ended without a reply" })
      })))

  it.effect("each step's payload is validated like any message", () =>
    withPump(arithmetic, ({ pump }) =>
      Effect.gen(function*() {
        // pong answers a Pong, which `inc` (a Ping listener) does not accept.
        const reply = yield* pump.request("system.sequence", new SequenceStart({ steps: ["pong", "inc"], payload: ping(3) }))
        expect(reply).toMatchObject({ failedStep: "inc", index: 1 })
        const bad = yield* pump.request("system.sequence", new SequenceStart({ steps: ["inc"], payload: "<Ping><N>x</N></Ping>" }))
        expect(bad).toMatchObject({ failedStep: "inc", index: 0 })
        expect((bad as SequenceError).error).toMatch(/xs:integer/)
        const notOne = yield* pump.request("system.sequence", new SequenceStart({ steps: ["inc"], payload: "<A/><B/>" }))
        expect(notOne).toMatchObject({ index: -1 })
      })))

  it.effect("returnTo sends the result elsewhere", () =>
    Effect.gen(function*() {
      const got = yield* Deferred.make<unknown>()
      const organism = Organism.make({
        listeners: [
          ...arithmetic.listeners,
          Listener.make({ name: "collector", payload: SequenceComplete, handler: (c) => Deferred.succeed(got, c).pipe(Effect.as(Reply.none)) })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("system.sequence", new SequenceStart({ steps: ["double"], payload: ping(21), returnTo: "collector" }))
          const result = yield* Deferred.await(got)
          expect((result as SequenceComplete).results).toEqual([ping(42)])
        }))
    }))
})

describe("Buffer", () => {
  it.live("5 items, 2 failing: 3 successes and 2 failures in item order, whatever order they finish in", () =>
    withPump(arithmetic, ({ pump }) =>
      Effect.gen(function*() {
        const reply = yield* pump.request("system.buffer", new BufferStart({ target: "picky", items: [0, 1, 2, 3, 4].map(ping), collect: true }))
        expect(reply).toBeInstanceOf(BufferComplete)
        const done = reply as BufferComplete
        expect(done.total).toBe(5)
        expect(done.successful).toBe(3)
        expect(done.results.map((r) => [r.index, r.success])).toEqual([[0, true], [1, false], [2, true], [3, false], [4, true]])
        expect(done.results[2]!.result).toBe("<Pong><N>2</N></Pong>")
        expect(done.results[1]!.error).toMatch(/failed/)
      })))

  it.live("at most maxConcurrent items are in flight", () =>
    Effect.gen(function*() {
      let now = 0
      let max = 0
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "slow",
            payload: Ping,
            handler: (p) =>
              Effect.acquireUseRelease(
                Effect.sync(() => void (max = Math.max(max, ++now))),
                () => Effect.as(Effect.sleep("3 millis"), Reply.respond(p)),
                () => Effect.sync(() => void now--)
              )
          })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          const items = Array.from({ length: 12 }, (_, i) => ping(i))
          const reply = (yield* pump.request("system.buffer", new BufferStart({ target: "slow", items, collect: true, maxConcurrent: 3 }))) as BufferComplete
          expect(reply.successful).toBe(12)
          expect(max).toBe(3)
        }))
    }))

  it.effect("collect: false answers BufferDispatched at once and still dispatches every item", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const organism = Organism.make({
        listeners: [Listener.make({ name: "sink", payload: Ping, handler: (p) => void seen.push(p.n) })]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          const reply = yield* pump.request("system.buffer", new BufferStart({ target: "sink", items: [1, 2, 3].map(ping), collect: false }))
          expect(reply).toBeInstanceOf(BufferDispatched)
          expect((reply as BufferDispatched).total).toBe(3)
          yield* pump.awaitIdle
          expect(seen.sort()).toEqual([1, 2, 3])
        }))
    }))

  it.effect("items that end without a reply, go to an unknown listener, or are not payloads fail one by one", () =>
    withPump(arithmetic, ({ pump }) =>
      Effect.gen(function*() {
        const viaSilent = (yield* pump.request("system.buffer", new BufferStart({ target: "silent", items: [ping(1)], collect: true }))) as BufferComplete
        expect(viaSilent.results[0]).toMatchObject({ success: false, error: "silent ended without a reply" })
        const nobody = (yield* pump.request("system.buffer", new BufferStart({ target: "nobody", items: [ping(1)], collect: true }))) as BufferComplete
        expect(nobody.results[0]!.success).toBe(false)
        const mixed = (yield* pump.request("system.buffer", new BufferStart({ target: "inc", items: ["not xml", ping(1)], collect: true }))) as BufferComplete
        expect(mixed.results.map((r) => r.success)).toEqual([false, true])
        const empty = (yield* pump.request("system.buffer", new BufferStart({ target: "inc", items: [], collect: true }))) as BufferComplete
        expect(empty.total).toBe(0)
      })))
})

describe("primitives inside conversations", () => {
  it.effect("a listener can run a sequence and get its result back on its own thread", () =>
    Effect.gen(function*() {
      const organism = Organism.make({
        listeners: [
          ...arithmetic.listeners,
          Listener.make({
            name: "planner",
            payload: Note,
            accepts: [SequenceComplete, SequenceError],
            handler: (p) =>
              p instanceof Note
                ? Reply.forward("system.sequence", new SequenceStart({ steps: ["inc", "inc"], payload: ping(0) }))
                : Reply.respond(p)
          })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          const reply = yield* pump.request("planner", new Note({ text: "go" }))
          expect((reply as SequenceComplete).results).toEqual([ping(1), ping(2)])
          expect(pump.threads()).toEqual({ roots: 0, nodes: 0 })
        }))
    }))
})
