/**
 * Streaming, output and reasoning budgets, and context fitting of LLM agents, over real
 * loopback HTTP against the mock model, on the three wires (OpenAI Responses, Chat
 * Completions, Anthropic Messages), plain and streamed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import type { LlmAgentOptions } from "../src/domain/Listener.js"
import { LlmConfig, type LlmConfigInput } from "../src/domain/LlmConfig.js"
import { Organism, type OrganismOptions } from "../src/domain/Organism.js"
import * as Payload from "../src/domain/Payload.js"
import type { PumpEvent } from "../src/domain/PumpEvent.js"
import { Reply } from "../src/domain/Reply.js"
import { TextInput } from "../src/domain/SystemPayloads.js"
import { MockLlmServer, type RecordedRequest } from "../src/llm/MockLlmServer.js"
import type { MockScriptInput } from "../src/llm/MockScript.js"
import { CUT_AT_LIMIT } from "../src/pipeline/agents/LlmAgent.js"
import { Listener } from "../src/pipeline/Listeners.js"
import { Pump } from "../src/pipeline/Pump.js"
import { LlmRouter } from "../src/services/LlmRouter.js"
import { withPump } from "./support/pump.js"

class Search extends Payload.Class<Search>("Search", { description: "a query for the index" })({ query: Schema.String }) {}
class Found extends Payload.Class<Found>("Found")({ query: Schema.String, text: Schema.String }) {}

/** What a search finds: `size` characters of prose about the query. */
const finding = (query: string, size: number) => `Notes about ${query}: ` + "lorem ipsum dolor sit amet ".repeat(Math.ceil(size / 27)).slice(0, size)

const organism = (agent: Partial<LlmAgentOptions> & { readonly maxOutputTokens?: number } = {}, options: {
  readonly findingSize?: number
  readonly settings?: OrganismOptions<LlmRouter>["settings"]
  readonly summariser?: boolean
} = {}) =>
  Organism.make({
    settings: options.settings ?? {},
    listeners: [
      Listener.llmAgent({ name: "assistant", payload: TextInput, accepts: [Found], peers: ["searcher"], prompt: "You find things.", ...agent }),
      Listener.make({
        name: "searcher",
        payload: Search,
        description: "Searches the index.",
        handler: (s) => Reply.respond(new Found({ query: s.query, text: finding(s.query, options.findingSize ?? 40) }))
      }),
      ...(options.summariser === true
        ? [Listener.llmAgent({ name: "summariser", payload: TextInput, prompt: "You summarise conversations." })]
        : [])
    ]
  })

const wires = [
  { name: "OpenAI Responses", backend: (s: MockLlmServer.Service) => ({ provider: "openai" as const, base_url: s.openAiUrl, api_key_env: "TEST_OPENAI_KEY" }) },
  { name: "Chat Completions", backend: (s: MockLlmServer.Service) => ({ provider: "openai-compatible" as const, base_url: s.openAiUrl }) },
  { name: "Anthropic Messages", backend: (s: MockLlmServer.Service) => ({ provider: "anthropic" as const, base_url: s.url, api_key_env: "TEST_ANTHROPIC_KEY" }) }
] as const
type Wire = (typeof wires)[number]

interface Run {
  readonly events: ReadonlyArray<PumpEvent>
  readonly requests: ReadonlyArray<RecordedRequest>
  readonly usage: ReturnType<LlmRouter.Service["usage"]>
}

const runAgainst = (
  script: MockScriptInput,
  organismValue: Organism<LlmRouter>,
  wire: Wire,
  llm: Partial<LlmConfigInput> = {},
  backend: Record<string, unknown> = {}
) =>
  Effect.gen(function*() {
    const server = yield* MockLlmServer.make({ script })
    const config = Schema.decodeUnknownSync(LlmConfig)({
      retries: 0,
      ...llm,
      backends: [{ name: "local", ...wire.backend(server), models: ["m"], ...backend }]
    })
    const env = { TEST_OPENAI_KEY: "sk-test", TEST_ANTHROPIC_KEY: "sk-ant-test" }
    const services = Layer.provideMerge(LlmRouter.layer(config, { baseDir: __dirname, env }), Pump.layerServicesFor(organismValue))
    return yield* withPump(organismValue, ({ events, pump }) =>
      Effect.gen(function*() {
        yield* pump.inject("assistant", new TextInput({ text: "find effect", source: "test", user: "" }))
        yield* pump.awaitIdle
        const run: Run = { events: yield* events(), requests: server.requests(), usage: (yield* LlmRouter).usage() }
        return run
      }), services)
  }).pipe(Effect.scoped)

const toConsole = (events: ReadonlyArray<PumpEvent>) =>
  events.flatMap((e) => (e._tag === "MessageReceived" && e.to === "console" ? [e.payload] : []))

/** Everything a request sent, as one text. */
const bodyText = (r: RecordedRequest) => JSON.stringify(r.body)

const answer = "<Respond>Found it: effect is a library.</Respond>"
const searchThenAnswer: MockScriptInput = {
  responses: [
    { match: { user: "/find effect/" }, text: "Let me look. <Search><Query>effect</Query></Search>", chunk_size: 5 },
    { match: { user: "/<Found>/" }, text: answer, chunk_size: 5 }
  ]
}

describe("streaming to the agent", () => {
  for (const wire of wires) {
    it.effect(`${wire.name}: the answer streams as LlmOutputDelta events and ends as the plain call does`, () =>
      Effect.gen(function*() {
        const plain = yield* runAgainst(searchThenAnswer, organism({ stream: false }), wire)
        const streamed = yield* runAgainst(searchThenAnswer, organism({ stream: true }), wire)
        expect(plain.requests.map((r) => r.stream)).toEqual([false, false])
        expect(streamed.requests.map((r) => r.stream)).toEqual([true, true])
        expect(toConsole(streamed.events)).toEqual(toConsole(plain.events))
        expect(toConsole(streamed.events)).toEqual(["<TextOutput><Text>Found it: effect is a library.</Text></TextOutput>"])
        // The pieces of each call, in order, are its completed text; none without streaming.
        expect(plain.events.some((e) => e._tag === "LlmOutputDelta")).toBe(false)
        const completed = streamed.events.flatMap((e) => (e._tag === "LlmCallCompleted" ? [e] : []))
        expect(completed).toHaveLength(2)
        for (const c of completed) {
          const pieces = streamed.events.flatMap((e) => (e._tag === "LlmOutputDelta" && e.call === c.call ? [e] : []))
          expect(pieces.length).toBeGreaterThan(3)
          expect(pieces.map((p) => p.index)).toEqual(pieces.map((_, i) => i))
          expect(pieces.map((p) => p.delta).join("")).toBe(c.text)
          expect(pieces.every((p) => p.agent === "assistant" && p.root === c.root && p.thread !== null)).toBe(true)
        }
      }))
  }
})

describe("an output budget", () => {
  const long = `<Respond>${"a long answer that goes on ".repeat(20)}</Respond>`
  for (const wire of wires) {
    for (const stream of [false, true]) {
      it.effect(`${wire.name}${stream ? ", streamed" : ""}: an answer cut at max_output_tokens is never parsed as complete; the agent is told`, () =>
        Effect.gen(function*() {
          const { events, requests } = yield* runAgainst(
            { responses: [{ text: long, times: 2 }, { text: "<Respond>short</Respond>" }] },
            organism({ maxOutputTokens: 20, stream }),
            wire
          )
          // The mock stops at the cap, as a provider does: a length finish, a partial answer.
          const completed = events.flatMap((e) => (e._tag === "LlmCallCompleted" ? [e] : []))
          expect(completed.map((c) => c.truncated)).toEqual([true, true, false])
          expect(completed[0]!.text.length).toBeLessThan(long.length)
          expect(completed[0]!.text.startsWith("<Respond>a long answer")).toBe(true)
          // The partial <Respond> (closed by libxml2's recovery, were it parsed) never reached the caller.
          expect(toConsole(events)).toEqual(["<TextOutput><Text>short</Text></TextOutput>"])
          // The next call carries the cut answer and the note saying it was cut.
          expect(requests).toHaveLength(3)
          expect(bodyText(requests[1]!)).toContain(JSON.stringify(CUT_AT_LIMIT).slice(1, -1))
          expect(bodyText(requests[1]!)).toContain("a long answer that goes on")
        }))
    }
  }

  for (const wire of wires) {
    it.effect(`${wire.name}, streamed: a server that ignores the cap is cut off by the router, and the partial answer is not parsed`, () =>
      Effect.gen(function*() {
        const endless = `<Respond>${"an answer that never stops ".repeat(400)}</Respond>`
        const { events, requests } = yield* runAgainst(
          { responses: [{ text: endless, ignore_max_tokens: true, chunk_size: 8 }, { text: "<Respond>short</Respond>" }] },
          organism({ maxOutputTokens: 20, stream: true }),
          wire
        )
        const completed = events.flatMap((e) => (e._tag === "LlmCallCompleted" ? [e] : []))
        expect(completed.map((c) => [c.finishReason, c.truncated])).toEqual([["length", true], ["stop", false]])
        // Cut at half as much again as the cap (by the estimate), far short of the whole answer.
        expect(completed[0]!.text.length).toBeGreaterThan(20 * 4)
        expect(completed[0]!.text.length).toBeLessThan(400)
        expect(requests[0]!.outcome).toBe("client_closed")
        expect(toConsole(events)).toEqual(["<TextOutput><Text>short</Text></TextOutput>"])
        expect(bodyText(requests[1]!)).toContain(JSON.stringify(CUT_AT_LIMIT).slice(1, -1))
      }))
  }

  it.effect("an answer cut every time ends with a SystemError for the caller, nothing sent", () =>
    Effect.gen(function*() {
      const { events, requests } = yield* runAgainst({ default: { text: long } }, organism({ maxOutputTokens: 20, stream: true }), wires[1])
      expect(requests).toHaveLength(3)
      expect(toConsole(events)).toEqual([expect.stringMatching(/<SystemError>.*cut at the output limit every time/)])
    }))
})

describe("reasoning-token budgets", () => {
  const script = (reasoning: number): MockScriptInput => ({
    responses: [
      { match: { user: "/find effect/" }, text: "<Search><Query>effect</Query></Search>", usage: { reasoning_tokens: reasoning } },
      { match: { user: "/<Found>/" }, text: answer, usage: { reasoning_tokens: reasoning } }
    ]
  })
  for (const wire of wires.slice(0, 2)) {
    for (const stream of [false, true]) {
      it.effect(`${wire.name}${stream ? ", streamed" : ""}: reasoning tokens are reported; over the budget the agent stops calling its model`, () =>
        Effect.gen(function*() {
          const within = yield* runAgainst(script(100), organism({ maxReasoningTokens: 500, stream }), wire)
          expect(within.events.flatMap((e) => (e._tag === "LlmCallCompleted" ? [e.reasoningTokens] : []))).toEqual([100, 100])
          expect(toConsole(within.events)).toEqual(["<TextOutput><Text>Found it: effect is a library.</Text></TextOutput>"])

          const over = yield* runAgainst(script(600), organism({ maxReasoningTokens: 500, stream }), wire)
          // The answer that went over is used (the search is sent); the next turn makes no call.
          expect(over.requests).toHaveLength(1)
          expect(over.events.some((e) => e._tag === "MessageReceived" && e.to === "searcher")).toBe(true)
          expect(over.events.flatMap((e) => (e._tag === "GuardTripped" ? [e.guard] : []))).toEqual(["reasoning-budget"])
          expect(toConsole(over.events)).toEqual([expect.stringMatching(/<SystemError>.*600 reasoning tokens.*max_reasoning_tokens of 500/)])
        }))
    }
  }

  it.effect("Anthropic Messages reports no reasoning tokens: nothing is charged, plain or streamed", () =>
    Effect.gen(function*() {
      for (const stream of [false, true]) {
        const run = yield* runAgainst(script(600), organism({ maxReasoningTokens: 500, stream }), wires[2])
        expect(run.requests).toHaveLength(2)
        expect(run.events.flatMap((e) => (e._tag === "LlmCallCompleted" ? [e.reasoningTokens ?? 0] : []))).toEqual([0, 0])
      }
    }))
})

describe("the mock model's context window", () => {
  for (const wire of wires) {
    for (const stream of [false, true]) {
      it.effect(`${wire.name}${stream ? ", streamed" : ""}: a request over the window is refused with the provider's 400`, () =>
        Effect.gen(function*() {
          // No window known to the agent: it sends its whole history, and the mock refuses it.
          const { events, requests } = yield* runAgainst(
            { context_window: 200, default: { text: answer } },
            organism({ maxOutputTokens: 100, stream }),
            wire
          )
          expect(requests.map((r) => [r.status, r.stream])).toEqual([[400, stream]])
          const failed = events.find((e) => e._tag === "LlmCallFailed" && e.final)
          expect(failed).toMatchObject({ reason: "rejected", status: 400 })
          expect((failed as { error: string }).error).toMatch(
            wire.name === "Anthropic Messages" ? /prompt is too long|exceed context limit/ : /context/
          )
          expect(JSON.stringify(requests[0]!.body)).toContain("find effect")
        }))
    }
  }
})

/** A script that searches `turns` times (a different query each time), then answers. */
const longSearch = (turns: number, window: number, extra: MockScriptInput["responses"] = []): MockScriptInput => ({
  context_window: window,
  responses: [
    ...extra,
    ...Array.from({ length: turns }, (_, i) => ({ match: { system: "/You find things/" }, text: `<Search><Query>q${i}</Query></Search>` })),
    { match: { system: "/You find things/" }, text: `<Respond>done after ${turns} searches</Respond>` }
  ]
})

const many = { maxTokensPerThread: Infinity, guards: { maxAgentSteps: 1000, maxChainDepth: 1000, maxInvocationsPerThread: 5000 } }

/** Every request fitted the window (none refused) and the agent answered. */
const expectFitted = (run: Run, window: number, turns: number) => {
  const refused = run.requests.filter((r) => r.status !== 200)
  expect(refused.map((r) => `${r.status}: ${JSON.stringify(r.body).slice(0, 80)}`)).toEqual([])
  for (const r of run.requests) expect(r.promptTokens + (r.maxOutputTokens ?? 0)).toBeLessThanOrEqual(window)
  expect(toConsole(run.events)).toEqual([`<TextOutput><Text>done after ${turns} searches</Text></TextOutput>`])
}

describe("context that fits", () => {
  const turns = 200
  const window = 3000
  for (const wire of wires) {
    for (const stream of [false, true]) {
      it.effect(`${wire.name}${stream ? ", streamed" : ""}: a ${turns}-turn conversation never sends a request over the window, and the agent answers`, () =>
        Effect.gen(function*() {
          const run = yield* runAgainst(
            longSearch(turns, window),
            organism({ maxOutputTokens: 200, stream }, { findingSize: 300, settings: many }),
            wire,
            {},
            { context_window: window }
          )
          expect(run.requests).toHaveLength(turns + 1)
          expectFitted(run, window, turns)
          // Without fitting the last request would have carried every turn (~100k characters).
          const last = run.requests[run.requests.length - 1]!
          expect(bodyText(last)).toMatch(/earlier messages were left out/)
          expect(bodyText(last)).toContain("q199")
          expect(bodyText(last)).not.toContain("<Query>q0<")
        }), 60_000)
    }
  }

  it.effect("without a context window the same conversation is refused by the model (the test can fail)", () =>
    Effect.gen(function*() {
      const run = yield* runAgainst(longSearch(40, window), organism({ maxOutputTokens: 200 }, { findingSize: 300, settings: many }), wires[1])
      expect(run.requests.some((r) => r.status === 400)).toBe(true)
    }), 60_000)

  for (const [i, wire] of wires.entries()) {
    // The agent streams on one wire of the three (the summariser's calls use the router's default).
    const stream = i === 1
    it.effect(`${wire.name}${stream ? ", streamed" : ""}: summarise: the dropped turns are condensed by the summariser agent, through the router, and the summary is reused`, () =>
      Effect.gen(function*() {
        const summary = "SUMMARY: the assistant searched for effect and many queries since."
        const run = yield* runAgainst(
          longSearch(turns, window, [{ match: { system: "/You summarise conversations/" }, times: "always", text: summary }]),
          organism(
            {
              maxOutputTokens: 200,
              stream,
              context: {
                strategy: "summarise",
                summariser: { name: "summariser", prompt: "You summarise conversations.", maxOutputTokens: 150 }
              }
            },
            { findingSize: 300, settings: many, summariser: true }
          ),
          wire,
          {},
          { context_window: window }
        )
        expectFitted(run, window, turns)
        const summaries = run.requests.filter((r) => /You summarise conversations/.test(r.system))
        // Asked only when the kept turns have doubled again: far fewer times than there were turns.
        expect(summaries.length).toBeGreaterThan(1)
        expect(summaries.length).toBeLessThan(turns / 4)
        expect(run.usage.byAgent["summariser"]).toMatchObject({ requests: summaries.length })
        // A later summary extends the one before.
        expect(bodyText(summaries[1]!)).toContain("The summary so far")
        const last = run.requests[run.requests.length - 1]!
        expect(bodyText(last)).toContain(summary)
        expect(bodyText(last)).toMatch(/summariser summarised them/)
      }), 60_000)
  }

  it.effect("a long message received is cut to max_tool_result_tokens with a visible marker", () =>
    Effect.gen(function*() {
      const run = yield* runAgainst(
        searchThenAnswer,
        organism({ context: { maxToolResultTokens: 100 } }, { findingSize: 20_000 }),
        wires[1]
      )
      expect(toConsole(run.events)).toEqual(["<TextOutput><Text>Found it: effect is a library.</Text></TextOutput>"])
      const second = bodyText(run.requests[1]!)
      expect(second).toMatch(/tokens were cut here to fit the context \(max_tool_result_tokens: 100\)/)
      expect(second.length).toBeLessThan(8_000)
      expect(run.requests[1]!.promptTokens).toBeLessThan(1_500)
    }))

  it.effect("when the system prompt and the latest message alone do not fit, no request is sent and the caller is told", () =>
    Effect.gen(function*() {
      const run = yield* runAgainst(searchThenAnswer, organism({ maxOutputTokens: 100, context: { window: 150 } }), wires[0])
      expect(run.requests).toHaveLength(0)
      expect(toConsole(run.events)).toEqual([expect.stringMatching(/<SystemError>.*cannot call its model: the system prompt/)])
    }))
})
