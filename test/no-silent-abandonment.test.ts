/**
 * No silent abandonment: a branch an agent forwarded that ends with nothing coming back to it
 * is reported to the agent at once — a SystemError naming the peer and why — and a `request`
 * caller whose listener answered nobody gets a NoReply that says so. LLM agents run against
 * the mock model server on loopback.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Schema } from "effect"
import { Organism } from "../src/domain/Organism.js"
import * as Payload from "../src/domain/Payload.js"
import { Reply } from "../src/domain/Reply.js"
import { SystemError, TextInput, TextOutput } from "../src/domain/SystemPayloads.js"
import { Listener } from "../src/pipeline/Listeners.js"
import { turnsOf, withPump } from "./support/pump.js"
import { deliveries, endingOf, withMockModel } from "./support/mockModel.js"

class Search extends Payload.Class<Search>("Search", { description: "a query" })({ query: Schema.String }) {}
class Found extends Payload.Class<Found>("Found")({ hits: Schema.Int }) {}
class Stray extends Payload.Class<Stray>("Stray")({ text: Schema.String }) {}
class Task extends Payload.Class<Task>("Task", { description: "a task" })({ topic: Schema.String }) {}

const ask = new TextInput({ text: "find effect", source: "test", user: "" })

/** An assistant whose one peer, `searcher`, behaves as `answer` says. */
const organismWith = (answer: (s: Search | Stray) => Reply | undefined) =>
  Organism.make({
    listeners: [
      Listener.llmAgent({ name: "assistant", payload: TextInput, accepts: [Found], peers: ["searcher"], prompt: "You find things." }),
      Listener.make({ name: "searcher", payload: Search, accepts: [Stray], description: "Searches.", handler: answer }),
      Listener.make({ name: "sink", payload: Stray, handler: () => undefined })
    ]
  })

describe("no silent abandonment", () => {
  it.effect("a peer that answers nobody: the agent hears it at once, naming the peer, and can still answer its caller", () =>
    withMockModel(
      {
        responses: [
          { match: { user: "/find effect/" }, text: "<Search><Query>effect</Query></Search>" },
          { match: { user: "/ended without a reply/" }, text: "<Respond>the searcher said nothing</Respond>" }
        ]
      },
      organismWith(() => undefined),
      ({ events, pump, server }) =>
        Effect.gen(function*() {
          const reply = yield* pump.request("assistant", ask)
          expect((reply as TextOutput).text).toBe("the searcher said nothing")
          const second = server.requests()[1]!
          expect(turnsOf(second)).toContain("Your message to searcher ended without a reply: searcher answered nobody.")
          expect(deliveries(yield* events())).toEqual([
            "console → assistant: TextInput",
            "assistant → searcher: Search",
            "system → assistant: SystemError",
            "assistant → console: TextOutput"
          ])
        })
    ))

  it.effect("a peer's reply refused on its way (the agent does not accept it) counts as no reply, with why", () =>
    withMockModel(
      {
        responses: [
          { match: { user: "/find effect/" }, text: "<Search><Query>effect</Query></Search>" },
          { match: { user: "/ended without a reply/" }, text: "<Respond>gave up</Respond>" }
        ]
      },
      organismWith(() => Reply.respond(new Stray({ text: "not for you" }))),
      ({ pump, server }) =>
        Effect.gen(function*() {
          const reply = yield* pump.request("assistant", ask)
          expect((reply as TextOutput).text).toBe("gave up")
          expect(turnsOf(server.requests()[1]!)).toMatch(
            /Your message to searcher ended without a reply: a message on its branch was rejected \(UnknownRoute\)\./
          )
          expect(pump.counters().rejectedBy).toEqual({ "route/UnknownRoute": 1 })
        })
    ))

  it.effect("a peer that forwards on to a listener that answers nobody: the agent hears about its own peer", () =>
    withMockModel(
      {
        responses: [
          { match: { user: "/find effect/" }, text: "<Search><Query>effect</Query></Search>" },
          { match: { user: "/ended without a reply/" }, text: "<Respond>gave up</Respond>" }
        ]
      },
      organismWith(() => Reply.forward("sink", new Stray({ text: "deeper" }))),
      ({ pump, server }) =>
        Effect.gen(function*() {
          yield* pump.request("assistant", ask)
          expect(turnsOf(server.requests()[1]!)).toContain("Your message to searcher ended without a reply: searcher answered nobody.")
        })
    ))

  it.effect("a peer that fails is reported once (its SystemError answers the branch), not twice", () =>
    withMockModel(
      {
        responses: [
          { match: { user: "/find effect/" }, text: "<Search><Query>effect</Query></Search>" },
          { match: { user: "/SystemError/" }, times: "always", text: "<Respond>it failed</Respond>" }
        ]
      },
      organismWith(() => {
        throw new Error("index offline")
      }),
      ({ events, pump }) =>
        Effect.gen(function*() {
          yield* pump.request("assistant", ask)
          expect(deliveries(yield* events()).filter((d) => d.startsWith("system → assistant"))).toHaveLength(1)
        })
    ))

  it.effect("an agent whose peer never answers retries a bounded number of times, then its request caller hears why", () =>
    withMockModel(
      {
        // A different query each time (identical ones would trip the loop guard first).
        responses: Array.from({ length: 10 }, (_, i) => ({ text: `<Search><Query>q${i}</Query></Search>` }))
      },
      organismWith(() => undefined),
      ({ events, pump, server }) =>
        Effect.gen(function*() {
          const exit = yield* Effect.exit(pump.request("assistant", ask))
          // The first turn and three SystemError turns (the agent's error budget); then silence.
          expect(server.requests()).toHaveLength(4)
          expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error).toMatchObject({
            _tag: "NoReply",
            reason: "assistant answered nobody"
          })
          const all = yield* events()
          const thread = all.find((e) => e._tag === "ThreadCreated" && e.to === "assistant")!.thread!
          expect(endingOf(all, thread)).toEqual({ reason: "completed", detail: "" })
        })
    ))

  it.effect("an agent calling an agent that stops without answering hears that its peer was stopped, and why", () =>
    withMockModel(
      {
        responses: [
          { match: { system: "/You coordinate/", user: "/find effect/" }, text: "<Task><Topic>effect</Topic></Task>" },
          { match: { system: "/You coordinate/", user: "/ended without a reply/" }, text: "<Respond>the worker gave up</Respond>" },
          { match: { system: "/You work/" }, times: "always", text: "<Search><Query>effect</Query></Search>" }
        ]
      },
      Organism.make({
        listeners: [
          Listener.llmAgent({ name: "coordinator", payload: TextInput, peers: ["worker"], prompt: "You coordinate." }),
          Listener.llmAgent({
            name: "worker",
            payload: Task,
            accepts: [Found],
            peers: ["searcher"],
            prompt: "You work.",
            description: "Does a task.",
            stopWhen: { steps: 1 }
          }),
          Listener.make({ name: "searcher", payload: Search, description: "Searches.", handler: () => Reply.respond(new Found({ hits: 1 })) })
        ]
      }),
      ({ pump, server }) =>
        Effect.gen(function*() {
          const reply = yield* pump.request("coordinator", ask)
          expect((reply as TextOutput).text).toBe("the worker gave up")
          // The worker's search went out, its Found reached a stopped worker: no second worker call.
          expect(server.requests().filter((r) => /You work/.test(r.system))).toHaveLength(1)
          expect(turnsOf(server.requests()[2]!)).toContain(
            "Your message to worker ended without a reply: worker reached its stop condition."
          )
        })
    ))

  it.effect("a request to a plain handler that answers nobody fails with NoReply naming it", () =>
    withPump(
      Organism.make({ listeners: [Listener.make({ name: "mute", payload: Found, handler: () => undefined })] }),
      ({ pump }) =>
        Effect.gen(function*() {
          const exit = yield* Effect.exit(pump.request("mute", new Found({ hits: 1 })))
          expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error).toMatchObject({
            _tag: "NoReply",
            reason: "mute answered nobody"
          })
        })
    ))

  it.effect("code agents (agent: true with a handler) are told too; plain handlers that forward are not watched", () =>
    Effect.gen(function*() {
      const heard: Array<string> = []
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "boss",
            agent: true,
            peers: ["worker"],
            payload: Found,
            handler: () => Reply.forward("worker", new Search({ query: "x" })),
            onSystem: (e) => void (e instanceof SystemError && heard.push(e.message))
          }),
          Listener.make({ name: "relay", payload: Stray, handler: () => Reply.forward("worker", new Search({ query: "y" })) }),
          Listener.make({ name: "worker", payload: Search, handler: () => undefined }),
          Listener.make({ name: "console-sink", payload: TextOutput, handler: () => undefined })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("boss", new Found({ hits: 0 }))
          yield* pump.inject("relay", new Stray({ text: "go" }))
          yield* pump.awaitIdle
          expect(heard).toEqual(["Your message to worker ended without a reply: worker answered nobody."])
        }))
    }))
})
