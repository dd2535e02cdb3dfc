/**
 * An LLM agent's loop control against the mock model server on loopback: stop conditions
 * (built-in and handlers), loop detection (warn, stop, cycles) and per-peer ceilings.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Schema } from "effect"
import type { AgentLimits, StopContext } from "../src/domain/AgentLimits.js"
import { Organism } from "../src/domain/Organism.js"
import * as Payload from "../src/domain/Payload.js"
import type { PumpEvent } from "../src/domain/PumpEvent.js"
import { Reply } from "../src/domain/Reply.js"
import { TextInput, type TextOutput } from "../src/domain/SystemPayloads.js"
import type { MockScriptInput } from "../src/llm/MockScript.js"
import { loopPeriod } from "../src/pipeline/agents/AgentLimits.js"
import { Listener } from "../src/pipeline/Listeners.js"
import { turnsOf } from "./support/pump.js"
import { deliveries, endingOf, guardsOf, withMockModel } from "./support/mockModel.js"

class Search extends Payload.Class<Search>("Search", { description: "a query" })({ query: Schema.String }) {}
class Found extends Payload.Class<Found>("Found")({ query: Schema.String }) {}
class Report extends Payload.Class<Report>("Report", { description: "the final report" })({ text: Schema.String }) {}
class Ack extends Payload.Class<Ack>("Ack")({ ok: Schema.Boolean }) {}

const ask = new TextInput({ text: "find effect", source: "test", user: "" })

/** An assistant with a searcher and a publisher, under `limits`. */
const organismWith = (limits: AgentLimits) =>
  Organism.make({
    listeners: [
      Listener.llmAgent({
        name: "assistant",
        payload: TextInput,
        accepts: [Found, Ack],
        peers: ["searcher", "publisher"],
        prompt: "You find things and publish a report.",
        ...limits
      }),
      Listener.make({ name: "searcher", payload: Search, description: "Searches.", handler: (s) => Reply.respond(new Found({ query: s.query })) }),
      Listener.make({ name: "publisher", payload: Report, description: "Publishes.", handler: () => Reply.respond(new Ack({ ok: true })) })
    ]
  })

const search = (q: string) => `<Search><Query>${q}</Query></Search>`

/** Injects one question, waits, and returns the events, the requests and the conversation's ending. */
const run = (script: MockScriptInput, limits: AgentLimits) =>
  withMockModel(script, organismWith(limits), ({ events, pump, server }) =>
    Effect.gen(function*() {
      const thread = yield* pump.inject("assistant", ask)
      yield* pump.awaitIdle
      const all = yield* events()
      return { events: all, requests: server.requests(), ending: endingOf(all, thread) }
    }))

const sent = (events: ReadonlyArray<PumpEvent>, to: string) =>
  events.flatMap((e) => (e._tag === "MessageReceived" && e.from === "assistant" && e.to === to ? [e.payload] : []))

const trips = (events: ReadonlyArray<PumpEvent>) =>
  events.flatMap((e) => (e._tag === "GuardTripped" ? [`${e.guard}: ${e.detail}`] : []))

describe("stop conditions", () => {
  it.effect("produced: the answer that sends the payload goes out, then the agent's loop stops; the conversation ends stopped", () =>
    Effect.gen(function*() {
      const { ending, events, requests } = yield* run(
        { responses: [{ text: search("effect") }, { text: "<Report><Text>done</Text></Report>" }, { text: search("more") }] },
        { stopWhen: { produced: Report } }
      )
      // The Ack that comes back reaches a stopped agent: no third model call.
      expect(requests).toHaveLength(2)
      expect(sent(events, "publisher")).toEqual(["<Report><Text>done</Text></Report>"])
      expect(trips(events)).toEqual(["stop-when: assistant: produced <Report>"])
      expect(ending).toEqual({ reason: "stopped", detail: "stop-when: assistant: produced <Report>" })
    }))

  it.effect("steps and tokens, written together: whichever holds first", () =>
    Effect.gen(function*() {
      const usage = { prompt_tokens: 100, completion_tokens: 50 }
      const responses = Array.from({ length: 10 }, (_, i) => ({ text: search(`q${i}`), usage }))
      const byTokens = yield* run({ responses }, { stopWhen: { steps: 5, tokens: 300 } })
      expect(byTokens.requests).toHaveLength(2)
      expect(byTokens.ending).toEqual({ reason: "stopped", detail: "stop-when: assistant: 300 tokens (limit 300)" })
      const bySteps = yield* run({ responses }, { stopWhen: { steps: 3, tokens: 10_000 } })
      expect(bySteps.requests).toHaveLength(3)
      // The third answer was still sent.
      expect(sent(bySteps.events, "searcher")).toHaveLength(3)
      expect(bySteps.ending).toEqual({ reason: "stopped", detail: "stop-when: assistant: 3 steps (limit 3)" })
    }))

  it.effect("a handler sees the step, the usage and the last outputs; an Effect answer counts", () =>
    Effect.gen(function*() {
      const seen: Array<StopContext> = []
      const usage = { prompt_tokens: 10, completion_tokens: 5 }
      const { ending, requests } = yield* run(
        { responses: [{ text: search("a"), usage }, { text: `Two at once: ${search("b")} ${search("c")}`, usage }, { text: search("d") }] },
        { stopWhen: (ctx) => Effect.sync(() => (seen.push(ctx), ctx.lastOutputs.length === 2)) }
      )
      expect(requests).toHaveLength(2)
      expect(seen.map((c) => [c.agent, c.step, c.usage.totalTokens])).toEqual([["assistant", 1, 15], ["assistant", 2, 30]])
      expect(seen[1]!.lastOutputs).toEqual([
        { payloadType: "Search", to: "searcher", xml: "<Search><Query>b</Query></Search>" },
        { payloadType: "Search", to: "searcher", xml: "<Search><Query>c</Query></Search>" }
      ])
      expect(seen[1]!.text).toMatch(/^Two at once/)
      expect(ending).toEqual({ reason: "stopped", detail: "stop-when: assistant: its stop condition held" })
    }))

  it.effect("a handler that throws, fails, dies or answers no boolean stops the agent with a typed reason, and nothing is sent", () =>
    Effect.gen(function*() {
      const handlers: ReadonlyArray<[(ctx: StopContext) => any, string]> = [
        [() => {
          throw new Error("boom")
        }, "Error: boom"],
        [() => Effect.fail("no index"), "no index"],
        [() => Effect.die(new Error("bug")), "Error: bug"],
        [() => "yes", "it returned string, not true or false"]
      ]
      for (const [stopWhen, detail] of handlers) {
        const { ending, events, requests } = yield* run({ default: { text: search("effect") } }, { stopWhen })
        expect(requests).toHaveLength(1)
        expect(sent(events, "searcher")).toEqual([])
        expect(trips(events)).toEqual([`stop-when-failed: assistant: the stop condition of assistant failed: ${detail}`])
        expect(ending).toEqual({ reason: "failed", detail: `stop-when-failed: assistant: the stop condition of assistant failed: ${detail}` })
      }
    }))

  it.effect("a request to an agent that stopped without answering fails with the reason", () =>
    withMockModel(
      { default: { text: search("effect") } },
      organismWith({ stopWhen: { steps: 1 } }),
      ({ pump }) =>
        Effect.gen(function*() {
          const exit = yield* Effect.exit(pump.request("assistant", ask))
          expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error).toMatchObject({
            _tag: "NoReply",
            reason: "assistant ended without a reply: guard stop-when: assistant: 1 step (limit 1)"
          })
        })
    ))
})

describe("loop detection", () => {
  it("a loop is the same answer `repeats` times in a row, or a cycle of answers repeated", () => {
    expect(loopPeriod(["a", "a"], 3, 2)).toBeUndefined()
    expect(loopPeriod(["a", "a", "a"], 3, 2)).toBe(1)
    expect(loopPeriod(["b", "a", "b", "a"], 2, 2)).toBe(2)
    expect(loopPeriod(["b", "a", "b", "a"], 2, 1)).toBeUndefined()
    expect(loopPeriod(["a", "b", "c", "a", "b", "c"], 2, 3)).toBe(3)
    expect(loopPeriod(["a", "b", "a", "c"], 2, 2)).toBeUndefined()
  })

  it.effect("warn: the repeating answer is not sent; the agent is told, and can change course", () =>
    withMockModel(
      {
        responses: [
          { match: { user: "/same answer/" }, times: "always", text: "<Respond>stuck, sorry</Respond>" },
          { match: { user: "/./" }, times: "always", text: search("effect") }
        ]
      },
      organismWith({ loopDetection: { repeats: 2, action: "warn" } }),
      ({ events, pump, server }) =>
        Effect.gen(function*() {
          const reply = yield* pump.request("assistant", ask)
          expect((reply as TextOutput).text).toBe("stuck, sorry")
          expect(sent(yield* events(), "searcher")).toHaveLength(1)
          expect(turnsOf(server.requests()[2]!)).toContain(
            "You gave the same answer 2 times in a row, so your last answer was not sent. Do something different, or answer your caller."
          )
          // A warning is not a guard stop: the conversation completed.
          expect(guardsOf(yield* events())).toEqual([])
        })
    ))

  it.effect("warn, to a model that never changes: its SystemError turns bound the warnings, then its caller hears why", () =>
    withMockModel(
      { default: { text: search("effect") } },
      organismWith({ loopDetection: { repeats: 2, action: "warn" } }),
      ({ events, pump, server }) =>
        Effect.gen(function*() {
          const exit = yield* Effect.exit(pump.request("assistant", ask))
          // The question, the Found, then three warnings answered the same way; the fourth is not.
          expect(server.requests()).toHaveLength(5)
          expect(sent(yield* events(), "searcher")).toHaveLength(1)
          expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error).toMatchObject({
            _tag: "NoReply",
            reason: "assistant answered nobody"
          })
        })
    ))

  it.effect("stop: a cycle of two answers, repeated, stops the agent; the conversation ends with the guard", () =>
    Effect.gen(function*() {
      const { ending, events, requests } = yield* run(
        { responses: [{ text: search("a") }, { text: search("b") }, { text: search("a") }, { text: search("b") }, { text: search("c") }] },
        { loopDetection: { repeats: 2, maxPeriod: 2, action: "stop" } }
      )
      expect(requests).toHaveLength(4)
      expect(sent(events, "searcher")).toEqual([search("a"), search("b"), search("a")])
      expect(ending).toEqual({ reason: "guard", detail: "agent-loop: assistant: gave the same 2 answers in turn, 2 times over; stopped" })
      expect(deliveries(events).filter((d) => d.startsWith("assistant →"))).toHaveLength(3)
    }))
})

describe("peer ceilings", () => {
  it.effect("calls past a peer's ceiling are refused, counted per conversation, and the agent hears it", () =>
    withMockModel(
      {
        responses: [
          { text: search("a") },
          { text: `${search("b")}${search("c")}` },
          { match: { user: "/at most 2 times/" }, text: "<Respond>enough searching</Respond>" }
        ]
      },
      organismWith({ peerLimits: { searcher: 2 } }),
      ({ events, pump, server }) =>
        Effect.gen(function*() {
          const reply = yield* pump.request("assistant", ask)
          expect((reply as TextOutput).text).toBe("enough searching")
          const all = yield* events()
          expect(sent(all, "searcher")).toEqual([search("a"), search("b")])
          expect(trips(all)).toEqual(["peer-limit: assistant → searcher: 1 call past the limit of 2 not sent"])
          expect(server.requests().some((r) => turnsOf(r).includes("You may call searcher at most 2 times in this conversation: 1 more call was not sent."))).toBe(true)
        })
    ))
})
