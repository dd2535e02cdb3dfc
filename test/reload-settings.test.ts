/**
 * A hot reload swaps in the whole running version: every organism setting takes effect on the
 * next message, in the registries as much as in the pump. One test per setting.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, TestClock } from "effect"
import { Listener } from "../src/domain/Listener.js"
import { Organism, type OrganismOptions } from "../src/domain/Organism.js"
import { Reply } from "../src/domain/Reply.js"
import { Pump } from "../src/pipeline/Pump.js"
import { BudgetRegistry } from "../src/services/BudgetRegistry.js"
import { ContextBuffer } from "../src/services/ContextBuffer.js"
import { Note, Ping, withPump } from "./support/pump.js"

const echo = Listener.make({ name: "echo", payload: Ping, handler: (p) => Reply.respond(new Note({ text: `${p.n}` })) })

type Settings = NonNullable<OrganismOptions<never>["settings"]>

const organism = (settings: Settings, listeners = [echo]) => Organism.make({ settings, listeners })

/** Lets the pump's fibers run until `done` holds (the inbox is read by a fiber of its own). */
const until = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000 && !done(); i++) yield* Effect.yieldNow()
    expect(done()).toBe(true)
  })

describe("a reload applies every setting", () => {
  it.effect("context limits reach the ContextBuffer", () =>
    withPump(organism({ context: { maxSlotsPerThread: 10_000 } }), ({ eventsOf, pump }) =>
      Effect.gen(function*() {
        const context = yield* ContextBuffer
        yield* pump.request("echo", new Ping({ n: 1 }))
        yield* pump.reload(organism({ context: { maxSlotsPerThread: 1, onFull: "reject" } }))
        expect(context.unsafeConfig().maxSlotsPerThread).toBe(1)
        // The request is recorded (1 slot); its reply finds the history full.
        const answer = yield* Effect.either(pump.request("echo", new Ping({ n: 2 })))
        expect(answer._tag).toBe("Left")
        const stopped = yield* eventsOf("GuardTripped")
        expect(stopped.map((e) => e.guard)).toEqual(["context-full"])
      })))

  it.effect("the conversation budget and an agent's own cap reach the BudgetRegistry", () =>
    withPump(organism({ maxTokensPerThread: 100_000 }), ({ pump }) =>
      Effect.gen(function*() {
        const budgets = yield* BudgetRegistry
        expect(budgets.unsafeConfig().maxTokensPerThread).toBe(100_000)
        yield* pump.reload(
          Organism.make({ settings: { maxTokensPerThread: 500 }, listeners: [{ ...echo, maxTokensPerThread: 50 }] })
        )
        expect(budgets.unsafeConfig().maxTokensPerThread).toBe(500)
        expect(budgets.unsafeConfig().perListener).toEqual({ echo: 50 })
      })))

  it.effect("the inbox capacity changes how many outside messages may be in flight", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const held = Listener.make({
        name: "held",
        payload: Ping,
        timeout: Duration.hours(1),
        handler: () => Effect.as(Deferred.await(release), Reply.none)
      })
      yield* withPump(organism({ inboxCapacity: 10 }, [held]), ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.reload(organism({ inboxCapacity: 1 }, [held]))
          yield* pump.inject("held", new Ping({ n: 1 }))
          // The one permit is held by the first conversation: the second producer waits.
          const second = yield* Effect.fork(pump.inject("held", new Ping({ n: 2 })))
          yield* Effect.yieldNow()
          expect(second.unsafePoll()).toBeNull()
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(second)
        }))
    }))

  it.effect("the global handler limit and a listener's own limit follow the version", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const worker = (maxConcurrent: number | undefined) =>
        Listener.make({
          name: "worker",
          payload: Ping,
          maxConcurrent,
          timeout: Duration.hours(1),
          handler: () => Effect.as(Deferred.await(release), Reply.none)
        })
      yield* withPump(organism({ maxConcurrentHandlers: 32 }, [worker(undefined)]), ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.reload(organism({ maxConcurrentHandlers: 2 }, [worker(undefined)]))
          for (let n = 0; n < 4; n++) yield* pump.inject("worker", new Ping({ n }))
          yield* until(() => pump.counters().delivered >= 5) // boot + 4
          expect(pump.counters().running).toBe(2)
          yield* pump.reload(organism({ maxConcurrentHandlers: 32 }, [worker(1)]))
          // The global limit rose, but the listener now allows one at a time.
          for (let n = 0; n < 2; n++) yield* pump.inject("worker", new Ping({ n }))
          yield* until(() => pump.counters().delivered >= 7)
          // The two jobs waiting for a global slot start (they were routed by the old version,
          // without a listener limit); of the new ones, the listener's own limit lets one in.
          expect(pump.counters().running).toBe(5)
          yield* Deferred.succeed(release, undefined)
        }))
    }))

  it.effect("guards follow the version", () =>
    withPump(organism({}), ({ eventsOf, pump }) =>
      Effect.gen(function*() {
        yield* pump.request("echo", new Ping({ n: 1 }))
        yield* pump.reload(organism({ guards: { maxInvocationsPerThread: 0 } }))
        yield* Effect.either(pump.request("echo", new Ping({ n: 2 })))
        expect((yield* eventsOf("GuardTripped")).map((e) => e.guard)).toEqual(["max-invocations"])
      })))

  it.effect("the handler timeout follows the version", () =>
    Effect.gen(function*() {
      const slow = Listener.make({
        name: "slow",
        payload: Ping,
        handler: () => Effect.as(Effect.sleep(Duration.minutes(5)), Reply.none)
      })
      yield* withPump(organism({ handlerTimeout: Duration.hours(1) }, [slow]), ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.reload(organism({ handlerTimeout: Duration.seconds(2) }, [slow]))
          yield* pump.inject("slow", new Ping({ n: 1 }))
          yield* TestClock.adjust("3 seconds")
          yield* pump.awaitIdle
          expect((yield* eventsOf("HandlerFailed")).map((e) => e.reason)).toEqual(["timed-out"])
        }))
    }))

  it.effect("the dead-letter capacity and ingress limits follow the version", () =>
    withPump(organism({}), ({ pump }) =>
      Effect.gen(function*() {
        yield* pump.awaitIdle // the Boot message is larger than the new limit
        yield* pump.reload(organism({ deadLetterCapacity: 1, ingress: { maxBytes: 200 } }))
        yield* pump.injectRaw("x".repeat(300))
        yield* pump.injectRaw("y".repeat(300))
        yield* pump.awaitIdle
        expect(pump.counters().rejectedBy).toEqual({ "ingress/MessageTooLarge": 2 })
        expect(pump.deadLetters()).toHaveLength(1)
      })))

  const first = organism({ maxTokensPerThread: 1000, guards: { maxInvocationsPerThread: 100 } })
  it.effect("a reload that cannot take effect is refused whole, with a ReloadEvent naming the key", () =>
    withPump(first, ({ eventsOf, pump }) =>
      Effect.gen(function*() {
        const budgets = yield* BudgetRegistry
        const refused = yield* Effect.either(pump.reload(organism({ maxTokensPerThread: -5, guards: { maxInvocationsPerThread: 0 } })))
        expect(refused._tag === "Left" && refused.left._tag).toBe("ReloadRefused")
        const events = yield* eventsOf("ReloadEvent")
        expect(events.map((e) => [e.outcome, e.problems])).toEqual([["rejected", [
          "maxTokensPerThread: maxTokensPerThread must be a positive number of tokens, got -5"
        ]]])
        // Nothing of it was applied: neither the budget nor the guard.
        expect(budgets.unsafeConfig().maxTokensPerThread).toBe(1000)
        expect(pump.organism.settings.guards.maxInvocationsPerThread).toBe(100)
        yield* pump.request("echo", new Ping({ n: 1 }))
      }), Pump.layerServicesFor(first)))

  it.effect("a listener limit raised by a reload lets the jobs waiting for it start at once", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const worker = (maxConcurrent: number) =>
        Listener.make({
          name: "worker",
          payload: Ping,
          maxConcurrent,
          timeout: Duration.hours(1),
          handler: () => Effect.as(Deferred.await(release), Reply.none)
        })
      yield* withPump(organism({}, [worker(1)]), ({ pump }) =>
        Effect.gen(function*() {
          for (let n = 0; n < 3; n++) yield* pump.inject("worker", new Ping({ n }))
          yield* until(() => pump.counters().delivered >= 4) // boot + 3
          expect(pump.counters().running).toBe(1)
          yield* pump.reload(organism({}, [worker(3)]))
          expect(pump.counters().running).toBe(3)
          yield* Deferred.succeed(release, undefined)
        }))
    }))
})
