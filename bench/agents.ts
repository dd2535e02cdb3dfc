/**
 * agents: N conversations, each an LLM agent taking M turns against the mock model over real
 * HTTP on loopback (Chat Completions), with a tool handler between turns. A turn is one model
 * call by the agent: build the prompt from the conversation's history, call the model
 * through the LlmRouter (budget checked and charged), parse the answer, send the payload to
 * the tool, whose reply brings the agent its next turn.
 *
 * It runs twice, once per protocol: `xml` (payload elements in the model's text, echoed back by
 * the mock) and `tools` (native tool calls: the mock answers with a `Step` tool call until the
 * tool's last reply, then with text), and reports the two side by side (`tools_*`).
 *
 * The floor is the same number of model calls, at the same concurrency, made directly
 * through the router with the same prompts — no pump, no prompt building, no parsing. The
 * ratio says how much an agent turn costs beyond the HTTP call it makes (client and mock
 * server share the process, so the floor is the whole HTTP exchange on both ends).
 */
import { Effect, Layer, Schema } from "effect"
import { LlmConfig } from "../src/domain/LlmConfig.js"
import type { LlmRequest } from "../src/domain/Llm.js"
import { Listener } from "../src/pipeline/Listeners.js"
import { Organism } from "../src/domain/Organism.js"
import * as Payload from "../src/domain/Payload.js"
import { Reply } from "../src/domain/Reply.js"
import { MockLlmServer } from "../src/llm/MockLlmServer.js"
import { Pump } from "../src/pipeline/Pump.js"
import { LlmRouter } from "../src/services/LlmRouter.js"
import { percentile, round, rssMb } from "./support.js"

export type Protocol = "xml" | "tools"

export interface AgentsOptions {
  /** Conversations running at once, one agent each. */
  readonly agents: number
  /** Model calls per conversation. */
  readonly turns: number
}

class Step extends Payload.Class<Step>("Step", { description: "one step of the work" })({
  n: Schema.Int,
  conversation: Schema.Int
}) {}

/**
 * The router over a mock server that echoes the last user message (which holds the payload);
 * to a request offering tools it answers with a `Step` call; to the last step (`-1`) with text.
 */
const routerLayer = Effect.gen(function*() {
  const usage = { prompt_tokens: 100, completion_tokens: 20 }
  const server = yield* MockLlmServer.make({
    script: {
      responses: [
        { match: { tool: "Step", tool_result: "<N>-1</N>" }, text: "", usage, times: "always" },
        { match: { tool: "Step" }, tool_calls: [{ name: "Step", arguments: { n: 0, conversation: 0 } }], usage, times: "always" },
        // The tool's last reply (xml): the agent's answer is text, for its caller.
        { match: { user: "<N>-1</N>" }, text: "done", usage, times: "always" }
      ],
      default: { echo: true, usage }
    }
  })
  const config = Schema.decodeUnknownSync(LlmConfig)({
    retries: 0,
    backends: [{ name: "mock", provider: "openai-compatible", base_url: server.openAiUrl, models: ["mock-1"] }]
  })
  return LlmRouter.layer(config, { baseDir: process.cwd() })
})

const run = (options: AgentsOptions, protocol: Protocol) =>
  Effect.gen(function*() {
    // With tools the model's arguments are fixed: the tool counts a conversation's steps by its root.
    const steps = new Map<string, number>()
    const modelMs: Array<number> = []
    const prompts: Array<LlmRequest> = []
    const turnStarted = new Map<number | string, number>()
    const turnMs: Array<number> = []
    const real = yield* LlmRouter
    // The agent's calls, timed: the HTTP exchange as the router sees it.
    const timed = Layer.succeed(LlmRouter, {
      ...real,
      complete: (request) => {
        const started = performance.now()
        if (prompts.length < options.agents * options.turns) prompts.push(request)
        return Effect.tap(real.complete(request), () => Effect.sync(() => void modelMs.push(performance.now() - started)))
      }
    })
    const organism = Organism.make({
      name: "agents-bench",
      settings: {
        maxConcurrentHandlers: options.agents * 2,
        maxConcurrentPerAgent: options.agents,
        // With tools the mock repeats one call: not a loop here.
        guards: { maxAgentSteps: options.turns + 5, maxInvocationsPerThread: options.turns * 2 + 10, loopThreshold: options.turns + 5 }
      },
      listeners: [
        Listener.llmAgent({
          name: "worker",
          payload: Step,
          peers: ["tool"],
          prompt: "You do the work one step at a time: send each step to the tool.",
          model: "mock-1",
          protocol
        }),
        Listener.make({
          name: "tool",
          payload: Step,
          handler: (s, meta) => {
            // The time from one model call's answer to the next call: the pump's part of a turn.
            const now = performance.now()
            const key = protocol === "tools" ? meta.root : s.conversation
            const before = turnStarted.get(key)
            if (before !== undefined) turnMs.push(now - before)
            turnStarted.set(key, now)
            if (protocol === "tools") {
              // The last step's reply (-1) has the model answer with text: `turns` calls in all.
              const n = (steps.get(meta.root) ?? 0) + 1
              steps.set(meta.root, n)
              return Reply.respond(new Step({ n: n + 1 >= options.turns ? -1 : n, conversation: 0 }))
            }
            // The last step's reply (-1) has the model answer with text: `turns` calls in all (a
            // tool that answered nobody would bring the agent one more call, to tell it so).
            return Reply.respond(new Step({ n: s.n + 2 >= options.turns ? -1 : s.n + 1, conversation: s.conversation }))
          }
        })
      ]
    })
    const elapsed = yield* Effect.gen(function*() {
      const pump = yield* Pump.make(organism)
      yield* pump.awaitIdle
      const started = performance.now()
      for (let i = 0; i < options.agents; i++) yield* pump.inject("worker", new Step({ n: 0, conversation: i }))
      yield* pump.awaitIdle
      const c = pump.counters()
      if (c.rejected + c.guardStopped > 0) throw new Error(`agents: ${JSON.stringify(c)}`)
      return (performance.now() - started) / 1000
    }).pipe(Effect.scoped, Effect.provide(timed))
    const turns = modelMs.length
    if (turns !== options.agents * options.turns) throw new Error(`agents: ${turns} model calls, expected ${options.agents * options.turns}`)

    // The floor: the same requests, straight through the router, at the same concurrency.
    const floorStarted = performance.now()
    yield* Effect.forEach(prompts, (r) => real.complete(r), { concurrency: options.agents, discard: true })
    const floorElapsed = (performance.now() - floorStarted) / 1000
    return { elapsed, turns, modelMs, turnMs, floorElapsed }
  }).pipe(Effect.scoped)

export const agentsBench = (options: AgentsOptions) =>
  Effect.gen(function*() {
    const layer = yield* routerLayer
    const services = Layer.provideMerge(layer, Pump.layerServices)
    const measure = (o: AgentsOptions, protocol: Protocol) => run(o, protocol).pipe(Effect.provide(services))
    const warmUp = { agents: Math.min(options.agents, 4), turns: Math.min(options.turns, 5) }
    yield* measure(warmUp, "xml")
    const xml = summary(yield* measure(options, "xml"))
    yield* measure(warmUp, "tools")
    const tools = summary(yield* measure(options, "tools"))
    return {
      name: "agents",
      agents: options.agents,
      turns_per_agent: options.turns,
      ...xml,
      rss_mb: rssMb(),
      // The same turns on native tool calls, side by side.
      tools_turns_per_s: tools.turns_per_s,
      tools_turn_p50_ms: tools.turn_p50_ms,
      tools_pump_overhead_ms_per_turn: tools.pump_overhead_ms_per_turn,
      tools_ratio_to_floor: tools.ratio_to_floor
    }
  }).pipe(Effect.scoped)

type RunResult = Effect.Effect.Success<ReturnType<typeof run>>

/** One protocol's figures. */
const summary = (r: RunResult) => {
  const sorted = (xs: Array<number>) => Float64Array.from(xs).sort()
  const model = sorted(r.modelMs)
  const turn = sorted(r.turnMs)
  const turnsPerSecond = r.turns / r.elapsed
  const floorPerSecond = r.turns / r.floorElapsed
  return {
    turns_per_s: Math.round(turnsPerSecond),
    model_p50_ms: round(percentile(model, 50), 3),
    turn_p50_ms: round(percentile(turn, 50), 3),
    turn_p99_ms: round(percentile(turn, 99), 3),
    // What a turn costs beyond its model call — building the prompt (xml: from the history),
    // reading the answer, the two hops to the tool and back — as time per turn at saturation:
    // the whole run is one event loop, so time per turn is work per turn.
    pump_overhead_ms_per_turn: round(1000 / turnsPerSecond - 1000 / floorPerSecond, 3),
    floor_per_s: Math.round(floorPerSecond),
    ratio_to_floor: round(floorPerSecond / turnsPerSecond)
  }
}
