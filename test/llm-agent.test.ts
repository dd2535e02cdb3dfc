/**
 * LLM agents through the real pump, with a scripted router in place of the network (the
 * router itself is tested against the loopback mock server elsewhere).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { BudgetWarning } from "../src/domain/BudgetPayloads.js"
import type { LlmRequest, LlmResponse } from "../src/domain/Llm.js"
import { Listener } from "../src/pipeline/Listeners.js"
import { Organism } from "../src/domain/Organism.js"
import * as Payload from "../src/domain/Payload.js"
import { Reply } from "../src/domain/Reply.js"
import { TextInput, TextOutput } from "../src/domain/SystemPayloads.js"
import { Pump } from "../src/pipeline/Pump.js"
import { BudgetExhausted } from "../src/services/BudgetRegistry.js"
import { LlmRouter } from "../src/services/LlmRouter.js"
import { withPump } from "./support/pump.js"

class Search extends Payload.Class<Search>("Search")({ query: Schema.String }) {}
class Found extends Payload.Class<Found>("Found")({ hits: Schema.Int }) {}

/** A router that answers from a script and records what it was asked. */
const scripted = (answer: (request: LlmRequest, call: number) => string | Effect.Effect<never, BudgetExhausted>) => {
  const requests: Array<LlmRequest> = []
  const warnings: Array<ReadonlyArray<BudgetWarning>> = []
  const layer = Layer.succeed(LlmRouter, {
    complete: (request) =>
      Effect.suspend(() => {
        requests.push(request)
        const out = answer(request, requests.length)
        if (typeof out !== "string") return out
        const response: LlmResponse = {
          text: out,
          usage: { promptTokens: 10, completionTokens: 5 },
          model: "scripted",
          backend: "test",
          costUsd: 0,
          finishReason: "stop",
          warnings: warnings.shift() ?? [],
          attempts: 1
        }
        return Effect.succeed(response)
      }),
    usage: () => ({ totals: { requests: 0, promptTokens: 0, completionTokens: 0, costUsd: 0 }, byAgent: {}, byModel: {}, byBackend: {} }),
    backends: () => []
  })
  return { layer, requests, warnings }
}

const organism = Organism.make({
  listeners: [
    Listener.llmAgent({
      name: "assistant",
      payload: TextInput,
      accepts: [Found],
      peers: ["searcher"],
      prompt: "You help people find things."
    }),
    Listener.make({ name: "searcher", payload: Search, description: "Searches the index.", handler: (s) => Reply.respond(new Found({ hits: s.query.length })) })
  ]
})

const run = <A, E>(
  router: ReturnType<typeof scripted>,
  body: (pump: Pump.Service) => Effect.Effect<A, E, LlmRouter>
) => withPump(organism, ({ pump }) => body(pump)).pipe(Effect.provide(router.layer))

describe("LLM agents", () => {
  it.effect("calls a peer from the model's answer, sees the reply in its history, and responds", () => {
    const router = scripted((_, call) =>
      call === 1
        ? "I'll search.\n```xml\n<Search><Query>effect</Query></Search>\n```"
        : "<Respond><TextOutput><Text>6 hits</Text></TextOutput></Respond>"
    )
    return run(router, (pump) =>
      Effect.gen(function*() {
        const reply = yield* pump.request("assistant", new TextInput({ text: "find effect", source: "console", user: "" }))
        expect(reply).toBeInstanceOf(TextOutput)
        expect((reply as TextOutput).text).toBe("6 hits")
        expect(router.requests).toHaveLength(2)
        const [first, second] = router.requests
        expect(first!.system).toContain("You help people find things.")
        expect(first!.system).toContain("## searcher")
        expect(first!.system).toContain("<Search>")
        expect(first!.system).toContain("How to answer")
        expect(first!.messages).toEqual([{ role: "user", content: expect.stringContaining("<Text>find effect</Text>") }])
        // The second call sees the whole exchange, roles alternating.
        expect(second!.messages.map((m) => m.role)).toEqual(["user", "assistant", "user"])
        expect(second!.messages[1]!.content).toBe("<Search><Query>effect</Query></Search>")
        expect(second!.messages[2]!.content).toContain("<Found><Hits>6</Hits></Found>")
        expect(first!.root).toBe(second!.root)
      }))
  })

  it.effect("an answer without payloads is text for the caller", () => {
    const router = scripted(() => "Hello! How can I help?")
    return run(router, (pump) =>
      Effect.gen(function*() {
        const reply = yield* pump.request("assistant", new TextInput({ text: "hi", source: "console", user: "" }))
        expect((reply as TextOutput).text).toBe("Hello! How can I help?")
      }))
  })

  it.effect("unreadable or unaddressed output is put back to the model, then fixed", () => {
    const router = scripted((_, call) => (call === 1 ? "<Lookup><Q>x</Q></Lookup> <Respond></Respond>" : "<Search><Query>x</Query></Search>"))
    return run(router, (pump) =>
      Effect.gen(function*() {
        yield* pump.inject("assistant", new TextInput({ text: "go", source: "console", user: "" }))
        yield* pump.awaitIdle
        expect(router.requests.length).toBeGreaterThanOrEqual(2)
        const retry = router.requests[1]!.messages
        expect(retry[retry.length - 1]!.content).toMatch(/Nothing was sent\. Problems:[\s\S]*<Respond> is empty/)
      }))
  })

  it.effect("a payload that fails validation comes back with the error and the expected schema", () => {
    const router = scripted((request, call) => {
      if (call === 1) return "<Search><Qery>typo</Qery></Search>"
      const last = request.messages[request.messages.length - 1]!.content
      expect(last).toMatch(/SystemError/)
      expect(last).toMatch(/Qery/)
      expect(last).toMatch(/Expected &lt;Search&gt; like/) // quoted inside the SystemError's text
      return "<Respond>sorry</Respond>"
    })
    return run(router, (pump) =>
      Effect.gen(function*() {
        const reply = yield* pump.request("assistant", new TextInput({ text: "go", source: "console", user: "" }))
        expect((reply as TextOutput).text).toBe("sorry")
        expect(pump.counters().rejectedBy).toEqual({ "payload/PayloadInvalid": 1 })
      }))
  })

  it.effect("budget warnings reach the agent and are in its next turn; an exhausted budget ends the turn for the caller", () => {
    const warning = new BudgetWarning({
      percentUsed: 80,
      tokensUsed: 80,
      tokensRemaining: 20,
      maxTokens: 100,
      severity: "warning",
      message: "80% of the token budget used"
    })
    const router = scripted((_, call) =>
      call === 1
        ? "<Search><Query>a</Query></Search>"
        : call === 2
        ? "<Search><Query>ab</Query></Search>"
        : Effect.fail(new BudgetExhausted({ root: "r" as never, agent: "assistant", scope: "conversation", tokensUsed: 100, maxTokens: 100 }))
    )
    router.warnings.push([warning])
    return run(router, (pump) =>
      Effect.gen(function*() {
        const result = yield* Effect.either(pump.request("assistant", new TextInput({ text: "go", source: "console", user: "" })))
        expect(result._tag === "Left" && result.left._tag).toBe("RequestFailed")
        if (result._tag === "Left" && result.left._tag === "RequestFailed") expect(result.left.error.code).toBe("budget")
        // The warning arrived as a message to the agent, so the second call saw it.
        expect(router.requests[1]!.messages.some((m) => m.content.includes("<BudgetWarning>"))).toBe(true)
      }))
  })
})

