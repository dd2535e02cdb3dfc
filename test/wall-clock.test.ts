/**
 * The conversation's wall clock (`max-thread-duration`) interrupts: at the limit, running
 * handlers and model calls are interrupted, the conversation ends with the guard as its
 * reason, and a `request` caller hears it. TestClock drives the pump's clock; the model is
 * the mock server on loopback (which runs on real time: its delayed answer is cut by the
 * interruption, not by the test's clock).
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Schema, TestClock } from "effect"
import { Organism } from "../src/domain/Organism.js"
import * as Payload from "../src/domain/Payload.js"
import { Reply } from "../src/domain/Reply.js"
import { TextInput } from "../src/domain/SystemPayloads.js"
import { Listener } from "../src/pipeline/Listeners.js"
import { withPump } from "./support/pump.js"
import { endingOf, eventually, withMockModel } from "./support/mockModel.js"

class Search extends Payload.Class<Search>("Search")({ query: Schema.String }) {}
class Found extends Payload.Class<Found>("Found")({ hits: Schema.Int }) {}

describe("the conversation's wall clock interrupts", () => {
  it.effect("a model call still running at the limit is interrupted, and the conversation ends with the guard", () =>
    withMockModel(
      // The model takes a minute of real time: only the interruption can end this call.
      { default: { text: "<Respond>too late</Respond>", delay: "60 seconds" } },
      Organism.make({
        settings: { guards: { maxThreadDuration: Duration.seconds(30) } },
        listeners: [
          Listener.llmAgent({ name: "assistant", payload: TextInput, prompt: "You think slowly.", timeout: Duration.hours(1) })
        ]
      }),
      ({ events, pump, server }) =>
        Effect.gen(function*() {
          const waiting = yield* Effect.fork(pump.request("assistant", new TextInput({ text: "hi", source: "test", user: "" })))
          yield* eventually(() => server.requests().length === 1)
          yield* TestClock.adjust("29 seconds")
          expect(pump.counters().running).toBe(1)
          yield* TestClock.adjust("1 second")
          const exit = yield* Fiber.await(waiting)
          // The interrupted agent's caller hears that it timed out.
          expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error).toMatchObject({
            _tag: "RequestFailed",
            error: { code: "timeout" }
          })
          yield* pump.awaitIdle
          // The HTTP exchange was cut: the server saw its client go.
          yield* eventually(() => server.requests()[0]!.outcome === "client_closed")
          expect(server.requests()[0]!.outcome).toBe("client_closed")
          const all = yield* events()
          const thread = all.find((e) => e._tag === "ThreadCreated" && e.to === "assistant")!.thread!
          expect(endingOf(all, thread)).toEqual({
            reason: "guard",
            detail: "max-thread-duration: the conversation ran for 30s: its running handlers and model calls were interrupted"
          })
          expect(all.filter((e) => e._tag === "GuardTripped").map((e) => e._tag === "GuardTripped" && e.guard)).toEqual(["max-thread-duration"])
          expect(all.find((e) => e._tag === "HandlerFailed")).toMatchObject({
            listener: "assistant",
            reason: "timed-out",
            detail: "the conversation's wall-clock limit (30s) was reached"
          })
          expect(all.find((e) => e._tag === "LlmCallFailed")).toMatchObject({ final: true, reason: "interrupted" })
          expect(all.some((e) => e._tag === "LlmCallCompleted")).toBe(false)
        })
    ))

  it.effect("handlers of the conversation that suspended are interrupted; other conversations run on", () =>
    Effect.gen(function*() {
      const organism = Organism.make({
        settings: { guards: { maxThreadDuration: Duration.seconds(10) }, handlerTimeout: Duration.hours(1) },
        listeners: [
          Listener.make({
            name: "worker",
            payload: Search,
            handler: (s) => Effect.as(Effect.sleep(s.query === "slow" ? "1 hour" : "5 seconds"), Reply.respond(new Found({ hits: 1 }))),
            onSystem: () => undefined
          }),
          Listener.make({
            name: "boss",
            payload: Found,
            handler: (f) => f.hits === 0 ? Reply.forward("worker", new Search({ query: "slow" })) : Reply.none
          })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("boss", new Found({ hits: 0 }))
          yield* TestClock.adjust("6 seconds")
          // A second conversation starts at 6 s: its own clock runs until 16 s.
          const second = yield* Effect.fork(pump.request("worker", new Search({ query: "quick" })))
          yield* TestClock.adjust("4 seconds")
          expect((yield* eventsOf("HandlerFailed")).map((e) => [e.listener, e.reason])).toEqual([["worker", "timed-out"]])
          yield* TestClock.adjust("2 seconds")
          expect(yield* Fiber.join(second)).toBeInstanceOf(Found)
          yield* pump.awaitIdle
          const completed = yield* eventsOf("ThreadCompleted")
          expect(completed.filter((e) => e.reason === "guard").map((e) => e.detail)).toEqual([
            "max-thread-duration: the conversation ran for 10s: its running handlers and model calls were interrupted"
          ])
        }))
    }))

  it.effect("a job waiting at its gate when the clock runs out never starts", () =>
    Effect.gen(function*() {
      const started: Array<string> = []
      const organism = Organism.make({
        settings: { guards: { maxThreadDuration: Duration.seconds(10) }, handlerTimeout: Duration.hours(1) },
        listeners: [
          Listener.make({
            name: "solo",
            payload: Search,
            concurrency: { _tag: "Exclusive" },
            handler: (s) => Effect.zipRight(Effect.sync(() => started.push(s.query)), Effect.as(Effect.sleep("1 hour"), Reply.none))
          }),
          Listener.make({
            name: "fan",
            payload: Found,
            handler: () => Reply.all(Reply.forward("solo", new Search({ query: "a" })), Reply.forward("solo", new Search({ query: "b" })))
          })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("fan", new Found({ hits: 0 }))
          yield* TestClock.adjust("11 seconds")
          yield* pump.awaitIdle
          // The first took the gate and was interrupted; the second never started.
          expect(started).toEqual(["a"])
          expect((yield* eventsOf("HandlerFailed")).map((e) => e.reason)).toEqual(["timed-out", "timed-out"])
          expect(pump.counters().invocations).toBe(1 + 1 + 2)
        }))
    }))
})
