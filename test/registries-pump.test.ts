/** The registries wired into the pump: history, todos and cleanup, through real messages. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import * as Payload from "../src/domain/Payload.js"
import { Reply } from "../src/domain/Reply.js"
import { TodoClosed, TodoComplete, TodoRegistered, TodoUntil } from "../src/domain/TodoPayloads.js"
import { Pump } from "../src/pipeline/Pump.js"
import { BudgetRegistry } from "../src/services/BudgetRegistry.js"
import { ContextBuffer } from "../src/services/ContextBuffer.js"
import { TodoRegistry } from "../src/services/TodoRegistry.js"
import { Note, withPump } from "./support/pump.js"

class Draft extends Payload.Class<Draft>("Draft")({ text: Schema.String }) {}
class Review extends Payload.Class<Review>("Review")({ verdict: Schema.String }) {}

describe("registries in the pump", () => {
  it.effect("a todo raised by a real message is in the agent's next invocation, and can be closed", () =>
    Effect.gen(function*() {
      const nudges: Array<string | undefined> = []
      let todoId = ""
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "author",
            agent: true,
            peers: ["reviewer"],
            payload: Note,
            accepts: [Review],
            handler: (p, meta) => {
              nudges.push(meta.nudge)
              if (p instanceof Note && p.text === "start") {
                // Wait for a Review from the reviewer, and ask for one.
                return Reply.all(
                  Reply.forward("system.todo", new TodoUntil({ waitFor: "Review", fromListener: "reviewer", description: "get the draft reviewed" })),
                  Reply.forward("reviewer", new Draft({ text: "v1" }))
                )
              }
              if (p instanceof Review) return Reply.forward("system.todo-complete", new TodoComplete({ id: todoId }))
              return Reply.none
            },
            onSystem: (p) => {
              if (p instanceof TodoRegistered) todoId = p.id
              if (p instanceof TodoClosed) nudges.push(`closed ${p.id} raised=${p.wasRaised}`)
              return Reply.none
            }
          }),
          Listener.make({ name: "reviewer", payload: Draft, handler: () => Reply.respond(new Review({ verdict: "ok" })) })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("author", new Note({ text: "start" }))
          yield* pump.awaitIdle
          expect(todoId).toBe("todo-1")
          // First invocation: nothing raised yet. Second (the Review arrives): the todo it raised.
          expect(nudges[0]).toBeUndefined()
          expect(nudges[1]).toMatch(/todo-1/)
          expect(nudges[1]).toMatch(/get the draft reviewed/)
          expect(nudges[1]).toMatch(/<TodoComplete>/)
          expect(nudges[2]).toBe("closed todo-1 raised=true")
        }))
    }))

  it.effect("an agent's next invocation sees the conversation's history, in order", () =>
    Effect.gen(function*() {
      const seen: Array<Array<string>> = []
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "agent",
            agent: true,
            peers: ["echo"],
            payload: Note,
            handler: (p, meta) =>
              Effect.gen(function*() {
                const history = yield* (yield* ContextBuffer).query(meta.root, { involving: "agent" })
                seen.push(history.map((s) => `${s.from}→${s.to}:${s.xml}`))
                return p.text === "1" ? Reply.forward("echo", new Note({ text: "2" })) : Reply.none
              })
          }),
          Listener.make({ name: "echo", payload: Note, handler: (p) => Reply.respond(new Note({ text: `${p.text}!` })) })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("agent", new Note({ text: "1" }))
          yield* pump.awaitIdle
          expect(seen).toEqual([
            ["console→agent:<Note><Text>1</Text></Note>"],
            [
              "console→agent:<Note><Text>1</Text></Note>",
              "agent→echo:<Note><Text>2</Text></Note>",
              "echo→agent:<Note><Text>2!</Text></Note>"
            ]
          ])
        }))
    }))

  it.effect("a completed conversation leaves no entry in any registry", () =>
    Effect.gen(function*() {
      const services = Layer.mergeAll(
        Pump.layerServices,
        ContextBuffer.layerMemory({ retainCompleted: 0 })
      )
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "agent",
            agent: true,
            peers: [],
            payload: Note,
            handler: (_p, meta) =>
              Effect.gen(function*() {
                // Spend some budget and leave a todo open: both must go with the thread.
                yield* (yield* BudgetRegistry).consume(meta.root, "agent", { promptTokens: 10, completionTokens: 5 })
                return Reply.forward("system.todo", new TodoUntil({ waitFor: "Never", description: "forever open" }))
              })
          })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          for (let i = 0; i < 5; i++) yield* pump.inject("agent", new Note({ text: `${i}` }))
          yield* pump.awaitIdle
          expect(pump.threads()).toEqual({ roots: 0, nodes: 0 })
          expect(yield* (yield* ContextBuffer).stats).toMatchObject({ threads: 0, slots: 0 })
          expect(yield* (yield* TodoRegistry).stats).toEqual({ threads: 0, open: 0, raised: 0 })
          expect(yield* (yield* BudgetRegistry).stats).toMatchObject({ conversations: 0, totalTokens: 75 })
        }), services)
    }))

  it.effect("a full history is a guard, accounted for", () =>
    Effect.gen(function*() {
      const services = Layer.mergeAll(Pump.layerServices, ContextBuffer.layerMemory({ maxSlotsPerThread: 3 }))
      const organism = Organism.make({
        listeners: [Listener.make({ name: "talker", payload: Note, handler: (p) => Reply.forward("talker", new Note({ text: `${p.text}+` })) })]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("talker", new Note({ text: "x" }))
          yield* pump.awaitIdle
          expect((yield* eventsOf("GuardTripped"))[0]).toMatchObject({ guard: "context-full" })
          expect(pump.counters().guardStopped).toBe(1)
        }), services)
    }))
})
