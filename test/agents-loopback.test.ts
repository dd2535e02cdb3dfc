/**
 * LLM agents against the mock model server on loopback, through the real LlmRouter: loop
 * safety, malformed output, usage and cost, and the same behaviour over every wire format.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Listener } from "../src/pipeline/Listeners.js"
import type { LlmConfigInput } from "../src/domain/LlmConfig.js"
import { LlmConfig } from "../src/domain/LlmConfig.js"
import { Organism, type OrganismOptions } from "../src/domain/Organism.js"
import * as Payload from "../src/domain/Payload.js"
import type { PumpEvent } from "../src/domain/PumpEvent.js"
import { Reply } from "../src/domain/Reply.js"
import { TextInput } from "../src/domain/SystemPayloads.js"
import { MockLlmServer, type RecordedRequest } from "../src/llm/MockLlmServer.js"
import type { MockScriptInput } from "../src/llm/MockScript.js"
import { Pump } from "../src/pipeline/Pump.js"
import { LlmRouter } from "../src/services/LlmRouter.js"
import { turnsOf, withPump } from "./support/pump.js"

class Search extends Payload.Class<Search>("Search", { description: "a query for the index" })({ query: Schema.String }) {}
class Found extends Payload.Class<Found>("Found")({ query: Schema.String, hits: Schema.Int }) {}

/** An assistant that searches through a deterministic searcher, answering the console. */
const organism = (settings: OrganismOptions<LlmRouter>["settings"] = {}) =>
  Organism.make({
    settings,
    listeners: [
      Listener.llmAgent({ name: "assistant", payload: TextInput, accepts: [Found], peers: ["searcher"], prompt: "You find things." }),
      Listener.make({
        name: "searcher",
        payload: Search,
        description: "Searches the index.",
        handler: (s) => Reply.respond(new Found({ query: s.query, hits: s.query.length }))
      })
    ]
  })

interface Run {
  readonly events: ReadonlyArray<PumpEvent>
  readonly requests: ReadonlyArray<RecordedRequest>
  readonly usage: ReturnType<LlmRouter.Service["usage"]>
}

/**
 * Starts the mock server with `script`, a router over it (`llm` adds to the section), runs
 * `organism` with one TextInput for the assistant, and returns what happened.
 */
const runAgainst = (
  script: MockScriptInput,
  organismValue: Organism<LlmRouter>,
  llm: (server: MockLlmServer.Service) => LlmConfigInput = (server) => ({
    retries: 0,
    backends: [{ name: "local", provider: "openai-compatible", base_url: server.openAiUrl, models: ["m"] }]
  })
) =>
  Effect.gen(function*() {
    const server = yield* MockLlmServer.make({ script })
    const config = Schema.decodeUnknownSync(LlmConfig)(llm(server))
    const env = { TEST_OPENAI_KEY: "sk-test", TEST_ANTHROPIC_KEY: "sk-ant-test" }
    const services = Layer.provideMerge(LlmRouter.layer(config, { baseDir: __dirname, env }), Pump.layerServicesFor(organismValue))
    return yield* withPump(organismValue, ({ events, pump }) =>
      Effect.gen(function*() {
        yield* pump.inject("assistant", new TextInput({ text: "find effect", source: "test", user: "" }))
        yield* pump.awaitIdle
        expect(pump.threads()).toEqual({ roots: 0, nodes: 0 })
        const run: Run = { events: yield* events(), requests: server.requests(), usage: (yield* LlmRouter).usage() }
        return run
      }), services)
  }).pipe(Effect.scoped)

const hops = (events: ReadonlyArray<PumpEvent>) =>
  events.flatMap((e) => (e._tag === "MessageReceived" && !e.from.startsWith("system") ? [`${e.from} → ${e.to}: ${e.payload}`] : []))

const guards = (events: ReadonlyArray<PumpEvent>) => events.flatMap((e) => (e._tag === "GuardTripped" ? [e.guard] : []))

describe("LLM agents on the loopback model server", () => {
  it.effect("loop detection: the third identical payload to the same peer is not sent, and the agent is told why", () =>
    Effect.gen(function*() {
      const { events, requests } = yield* runAgainst(
        { default: { text: "<Search><Query>effect</Query></Search>" } },
        organism()
      )
      const searches = hops(events).filter((h) => h.startsWith("assistant → searcher"))
      expect(searches).toHaveLength(2)
      expect(guards(events)).toContain("loop")
      // The agent's next turn carries the SystemError that explains the refusal.
      expect(requests.some((r) => /the same &lt;Search&gt; to searcher 3 times in a row/.test(turnsOf(r)))).toBe(true)
    }))

  it.effect("the step cap stops an agent that keeps going", () =>
    Effect.gen(function*() {
      // A different query every turn: no loop, only too many steps.
      const responses = Array.from({ length: 20 }, (_, i) => ({ text: `<Search><Query>q${i}</Query></Search>` }))
      const { events, requests } = yield* runAgainst({ responses }, organism({ guards: { maxAgentSteps: 4 } }))
      expect(requests).toHaveLength(4)
      expect(guards(events)).toEqual(["max-agent-steps"])
      expect(hops(events).filter((h) => h.startsWith("assistant → searcher"))).toHaveLength(4)
    }))

  it.effect("broken XML from the model is repaired; an invalid payload comes back with the schema, then is fixed", () =>
    Effect.gen(function*() {
      const { events, requests } = yield* runAgainst(
        {
          responses: [
            // Unclosed <Query>: libxml2's recovering parser repairs it.
            { match: { user: "/find effect/" }, text: "Sure.\n<Search><Query>effect</Search>" },
            // The first answer: a payload with a wrong field.
            { match: { user: "/<Found>/" }, text: "<Search><Qery>again</Qery></Search>" },
            // Told what was wrong: the fixed payload.
            { match: { user: "/<SystemError>/" }, text: "<Search><Query>again</Query></Search>" },
            { match: { user: "/<Found>/" }, times: "always", text: "<Respond>done</Respond>" }
          ]
        },
        organism()
      )
      expect(hops(events)).toEqual([
        "console → assistant: <TextInput><Text>find effect</Text><Source>test</Source><User></User></TextInput>",
        "assistant → searcher: <Search><Query>effect</Query></Search>",
        "searcher → assistant: <Found><Query>effect</Query><Hits>6</Hits></Found>",
        "assistant → searcher: <Search><Query>again</Query></Search>",
        "searcher → assistant: <Found><Query>again</Query><Hits>5</Hits></Found>",
        "assistant → console: <TextOutput><Text>done</Text></TextOutput>"
      ])
      // The turn after the refusal quotes libxml2's complaint and an example of <Search>.
      const bounced = requests.find((r) => /<SystemError>/.test(turnsOf(r)))!
      expect(turnsOf(bounced)).toMatch(/Qery/)
      expect(turnsOf(bounced)).toMatch(/Expected &lt;Search&gt; like/)
      expect(turnsOf(bounced)).toMatch(/&lt;Query&gt;/)
      const rejected = events.find((e) => e._tag === "MessageRejected")
      expect(rejected).toMatchObject({ kind: "PayloadInvalid", from: "assistant" })
    }))

  it.effect("output that stays unusable is retried a bounded number of times, then the caller hears why", () =>
    Effect.gen(function*() {
      const { events, requests } = yield* runAgainst({ default: { text: `Asking the oracle. <Send to="oracle"><Search><Query>x</Query></Search></Send>` } }, organism())
      // The first answer plus two corrections, then the turn ends with an error for the caller.
      expect(requests).toHaveLength(3)
      expect(turnsOf(requests[2]!)).toMatch(/Nothing was sent. Problems:.*oracle is not one of your peers/)
      const toConsole = events.find((e) => e._tag === "MessageReceived" && e.to === "console")
      expect(toConsole).toMatchObject({ payloadType: "SystemError", payload: expect.stringMatching(/could not produce a usable answer/) })
    }))

  it.effect("payloads that keep failing validation get a bounded number of extra turns", () =>
    Effect.gen(function*() {
      // A different invalid payload each time (identical ones would trip the loop guard first).
      const responses = Array.from({ length: 10 }, (_, i) => ({ text: `<Search><Qery>x${i}</Qery></Search>` }))
      const { events, requests } = yield* runAgainst({ responses }, organism())
      const rejected = events.filter((e) => e._tag === "MessageRejected")
      // The first turn and three SystemError turns: four invalid payloads, then nothing more.
      expect(rejected).toHaveLength(4)
      expect(requests).toHaveLength(4)
      expect(rejected.every((e) => e._tag === "MessageRejected" && e.kind === "PayloadInvalid")).toBe(true)
    }))

  it.effect("an agent's max_output_tokens reaches the model on every call", () =>
    Effect.gen(function*() {
      const capped = Organism.make({
        listeners: [
          Listener.llmAgent({ name: "assistant", payload: TextInput, prompt: "Be brief.", maxOutputTokens: 123 })
        ]
      })
      const { requests } = yield* runAgainst({ default: { text: "<Respond>ok</Respond>" } }, capped)
      expect(requests.map((r) => (r.body as { max_tokens?: number }).max_tokens)).toEqual([123])
    }))

  it.effect("usage and cost are the server's figures, priced", () =>
    Effect.gen(function*() {
      const usage = { prompt_tokens: 1200, completion_tokens: 300 }
      const { usage: report } = yield* runAgainst(
        {
          responses: [
            { match: { user: "/find effect/" }, text: "<Search><Query>effect</Query></Search>", usage },
            { match: { user: "/<Found>/" }, text: "<Respond>six hits</Respond>", usage }
          ]
        },
        organism(),
        (server) => ({
          retries: 0,
          prices: { m: { input_per_million: 2.5, output_per_million: 10 } },
          backends: [{ name: "local", provider: "openai-compatible", base_url: server.openAiUrl, models: ["m"] }]
        })
      )
      expect(report.totals).toEqual({ requests: 2, promptTokens: 2400, completionTokens: 600, costUsd: 2400 * 2.5e-6 + 600 * 10e-6 })
      expect(report.byAgent["assistant"]).toMatchObject({ requests: 2 })
      expect(report.byModel["m"]).toMatchObject({ promptTokens: 2400 })
    }))

  const script: MockScriptInput = {
    responses: [
      { match: { user: "/find effect/" }, text: "Let me look.\n```xml\n<Search><Query>effect</Query></Search>\n```" },
      { match: { user: "/<Found>/" }, text: "<Respond>Found 6 hits for effect.</Respond>" }
    ]
  }
  /** Every wire format the router speaks, each against the same loopback server. */
  const wires = [
    { name: "OpenAI Responses", wire: "openai", backend: (server: MockLlmServer.Service) => ({ provider: "openai" as const, base_url: server.openAiUrl, api_key_env: "TEST_OPENAI_KEY" }) },
    { name: "Chat Completions", wire: "openai", backend: (server: MockLlmServer.Service) => ({ provider: "openai-compatible" as const, base_url: server.openAiUrl }) },
    { name: "Anthropic Messages", wire: "anthropic", backend: (server: MockLlmServer.Service) => ({ provider: "anthropic" as const, base_url: server.url, api_key_env: "TEST_ANTHROPIC_KEY" }) }
  ] as const

  it.effect("the agent behaves the same over every wire format, plain and streamed", () =>
    Effect.gen(function*() {
      const outcomes: Array<ReadonlyArray<string>> = []
      for (const wire of wires) {
        for (const stream of [false, true]) {
          const { events, requests } = yield* runAgainst(script, organism(), (server) => ({
            retries: 0,
            stream,
            backends: [{ name: "local", ...wire.backend(server), models: ["m"] }]
          }))
          expect(requests.map((r) => [r.provider, r.stream]), wire.name).toEqual([[wire.wire, stream], [wire.wire, stream]])
          outcomes.push(hops(events))
        }
      }
      expect(outcomes[0]).toEqual([
        "console → assistant: <TextInput><Text>find effect</Text><Source>test</Source><User></User></TextInput>",
        "assistant → searcher: <Search><Query>effect</Query></Search>",
        "searcher → assistant: <Found><Query>effect</Query><Hits>6</Hits></Found>",
        "assistant → console: <TextOutput><Text>Found 6 hits for effect.</Text></TextOutput>"
      ])
      for (const o of outcomes.slice(1)) expect(o).toEqual(outcomes[0])
    }))
})
