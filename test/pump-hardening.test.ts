/**
 * The pump under hostile handlers and corner cases that once broke it (issue 11): a reply of
 * the wrong shape, a handler answering its own errors, a Promise that never settles, a deep
 * outside broadcast, concurrency classes across a reload. Each test fails when the behaviour
 * it names breaks.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, TestClock } from "effect"
import { ConcurrencyClass } from "../src/domain/ConcurrencyClass.js"
import { ENVELOPE_NS } from "../src/domain/Envelope.js"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { Reply } from "../src/domain/Reply.js"
import { SystemError } from "../src/domain/SystemPayloads.js"
import { Note, Ping, Pong, withPump } from "./support/pump.js"

/** Lets the pump's fibers run until `done` holds. */
const until = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000 && !done(); i++) yield* Effect.yieldNow()
    expect(done()).toBe(true)
  })

describe("replies of the wrong shape", () => {
  const hostile: ReadonlyArray<[string, unknown]> = [
    ["a Forward without payloads", { _tag: "Forward", to: "sink" }],
    ["a Respond whose payloads is a number", { _tag: "Respond", payloads: 5 }],
    ["an All whose replies is null", { _tag: "All", replies: null }],
    ["a number", 42],
    ["a string", "x"],
    ["an empty object", {}],
    ["an array", [Reply.none]]
  ]
  for (const [name, value] of hostile) {
    it.effect(`${name}: the caller hears it as a SystemError, the message has one outcome, the conversation ends`, () => {
      const organism = Organism.make({
        listeners: [
          Listener.make({ name: "broken", payload: Ping, handler: (): any => value }),
          Listener.make({ name: "sink", payload: Note, handler: () => undefined })
        ]
      })
      return withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          const answer = yield* Effect.exit(pump.request("broken", new Ping({ n: 1 })))
          expect(Exit.isFailure(answer) && String(answer.cause)).toMatch(/RequestFailed/)
          const failed = yield* eventsOf("HandlerFailed")
          expect(failed.map((e) => e.reason)).toEqual(["invalid-reply"])
          expect(failed[0]!.detail).toMatch(/not a Reply/)
          // Delivered once, never also rejected: the books add up (withPump checks them).
          expect(pump.counters().rejected).toBe(0)
          expect(pump.threads()).toEqual({ roots: 0, nodes: 0 })
        }))
    })
  }

  it.effect("a request fails with the SystemError that comes back from a failed handler", () =>
    withPump(
      Organism.make({ listeners: [Listener.make({ name: "fails", payload: Ping, handler: () => Effect.fail("no") })] }),
      ({ pump }) =>
        Effect.gen(function*() {
          const answer = yield* Effect.either(pump.request("fails", new Ping({ n: 1 })))
          expect(answer._tag === "Left" && answer.left._tag).toBe("RequestFailed")
          if (answer._tag === "Left" && answer.left._tag === "RequestFailed") {
            expect(answer.left.error).toBeInstanceOf(SystemError)
            expect(answer.left.error.code).toBe("failed")
          }
        })
    ))
})

describe("guards apply to every delivery", () => {
  it.effect("a handler answering its SystemErrors with a forward to nobody is stopped by the thread's wall-clock limit too", () => {
    const organism = Organism.make({
      settings: { guards: { maxInvocationsPerThread: 1_000_000, maxThreadDuration: Duration.seconds(5) } },
      listeners: [
        Listener.make({
          name: "looper",
          payload: Ping,
          handler: () => Reply.forward("ghost", new Ping({ n: 0 })),
          // Each SystemError takes a second to answer, with another forward to nobody.
          onSystem: () => Effect.as(Effect.sleep("1 second"), Reply.forward("ghost", new Ping({ n: 0 })))
        })
      ]
    })
    return withPump(organism, ({ eventsOf, pump }) =>
      Effect.gen(function*() {
        yield* pump.inject("looper", new Ping({ n: 0 }))
        for (let i = 0; i < 10; i++) {
          yield* TestClock.adjust("1 second")
          yield* Effect.yieldNow()
        }
        yield* pump.awaitIdle
        expect((yield* eventsOf("GuardTripped")).map((e) => e.guard)).toContain("max-thread-duration")
        expect(pump.counters().invocations).toBeLessThan(10)
      }))
  })

  it.effect("the depth guard stops an outside broadcast on a thread already at the limit", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const organism = Organism.make({
        settings: { guards: { maxChainDepth: 3 } },
        listeners: [
          Listener.make({
            name: "deep",
            payload: Ping,
            timeout: Duration.hours(1),
            // Three hops deep, the last one waits: its thread stays live for the outsider.
            handler: (p) => (p.n < 2 ? Reply.forward("deep", new Ping({ n: p.n + 1 })) : Effect.as(Deferred.await(release), Reply.none))
          }),
          Listener.make({ name: "listener", payload: Note, broadcast: true, handler: () => undefined })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          const root = yield* pump.inject("deep", new Ping({ n: 0 }))
          yield* until(() => pump.counters().running === 1)
          const deepest = (yield* eventsOf("MessageReceived")).filter((e) => e.root === root).at(-1)!.thread!
          yield* pump.injectRaw(
            `<message xmlns="${ENVELOPE_NS}"><meta><from>outside</from><thread>${deepest}</thread></meta><Note xmlns=""><Text>all</Text></Note></message>`
          )
          yield* until(() => pump.counters().guardStopped === 1)
          expect((yield* eventsOf("GuardTripped")).map((e) => e.guard)).toEqual(["max-chain-depth"])
          expect((yield* eventsOf("MessageReceived")).some((e) => e.to === "listener")).toBe(false)
          yield* Deferred.succeed(release, undefined)
        }))
    }))

  it.effect("a non-agent listener with an empty peer list may forward to nobody", () => {
    const organism = Organism.make({
      listeners: [
        Listener.make({ name: "alone", payload: Ping, peers: [], handler: () => Reply.forward("sink", new Note({ text: "x" })) }),
        Listener.make({ name: "sink", payload: Note, handler: () => undefined })
      ]
    })
    return withPump(organism, ({ pump }) =>
      Effect.gen(function*() {
        yield* pump.inject("alone", new Ping({ n: 1 }))
        yield* pump.awaitIdle
        expect(pump.counters().rejectedBy).toEqual({ "outbox/PeerViolation": 1 })
      }))
  })
})

describe("timeouts and concurrency classes", () => {
  it.effect("a handler whose Promise never settles times out, and its caller hears it", () => {
    const organism = Organism.make({
      listeners: [
        Listener.make({
          name: "hangs",
          payload: Ping,
          timeout: Duration.seconds(2),
          handler: () => new Promise<Reply>(() => {})
        })
      ]
    })
    return withPump(organism, ({ eventsOf, pump }) =>
      Effect.gen(function*() {
        const answer = yield* Effect.fork(pump.request("hangs", new Ping({ n: 1 })))
        yield* until(() => pump.counters().running === 1)
        yield* TestClock.adjust("3 seconds")
        const exit = yield* Fiber.await(answer)
        expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(/RequestFailed/)
        expect((yield* eventsOf("HandlerFailed")).map((e) => e.reason)).toEqual(["timed-out"])
      }))
  })

  it.effect("an exclusive listener that also sets max_concurrent: 3 runs one at a time", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "solo",
            payload: Ping,
            concurrency: ConcurrencyClass.exclusive,
            maxConcurrent: 3,
            timeout: Duration.hours(1),
            handler: () => Effect.as(Deferred.await(release), Reply.none)
          })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          for (let n = 0; n < 3; n++) yield* pump.inject("solo", new Ping({ n }))
          yield* until(() => pump.counters().delivered === 4)
          expect(pump.counters().running).toBe(1)
          yield* Deferred.succeed(release, undefined)
        }))
    }))

  it.effect("exclusivity holds across a reload while an old-version job is still running", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const solo = (tag: string) =>
        Listener.make({
          name: "solo",
          payload: Ping,
          concurrency: ConcurrencyClass.exclusive,
          timeout: Duration.hours(1),
          handler: (p) => Effect.as(Deferred.await(release), Reply.respond(new Pong({ n: p.n + tag.length })))
        })
      yield* withPump(Organism.make({ listeners: [solo("old")] }), ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("solo", new Ping({ n: 1 }))
          yield* until(() => pump.counters().running === 1) // the old version's job is running
          yield* pump.reload(Organism.make({ listeners: [solo("new!")] }))
          yield* pump.inject("solo", new Ping({ n: 2 }))
          yield* until(() => pump.counters().delivered === 3)
          // The new version's job waits for the old one: still one at a time.
          expect(pump.counters().running).toBe(1)
          yield* Deferred.succeed(release, undefined)
        }))
    }))
})
