/**
 * agents: N conversations, each an LLM agent taking M turns against the mock model over real
 * HTTP on loopback (Chat Completions), with a tool handler between turns. A turn is one model
 * call by the agent: build the prompt from the conversation's history, call the model
 * through the LlmRouter (budget checked and charged), parse the answer, send the payload to
 * the tool, whose reply brings the agent its next turn.
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

/** The router over a mock server that echoes the last user message (which holds the payload). */
const routerLayer = Effect.gen(function*() {
  const server = yield* MockLlmServer.make({ script: { default: { echo: true, usage: { prompt_tokens: 100, completion_tokens: 20 } } } })
  const config = Schema.decodeUnknownSync(LlmConfig)({
    retries: 0,
    backends: [{ name: "mock", provider: "openai-compatible", base_url: server.openAiUrl, models: ["mock-1"] }]
  })
  return LlmRouter.layer(config, { baseDir: process.cwd() })
})

const run = (options: AgentsOptions) =>
  Effect.gen(function*() {
    const modelMs: Array<number> = []
    const prompts: Array<LlmRequest> = []
    const turnStarted = new Map<number, number>()
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
        guards: { maxAgentSteps: options.turns + 5, maxInvocationsPerThread: options.turns * 2 + 10 }
      },
      listeners: [
        Listener.llmAgent({
          name: "worker",
          payload: Step,
          peers: ["tool"],
          prompt: "You do the work one step at a time: send each step to the tool.",
          model: "mock-1"
        }),
        Listener.make({
          name: "tool",
          payload: Step,
          handler: (s) => {
            // The time from one model call's answer to the next call: the pump's part of a turn.
            const now = performance.now()
            const before = turnStarted.get(s.conversation)
            if (before !== undefined) turnMs.push(now - before)
            turnStarted.set(s.conversation, now)
            return s.n + 1 >= options.turns ? Reply.none : Reply.respond(new Step({ n: s.n + 1, conversation: s.conversation }))
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
    const measure = (o: AgentsOptions) => run(o).pipe(Effect.provide(services))
    yield* measure({ agents: Math.min(options.agents, 4), turns: Math.min(options.turns, 5) }) // warm-up
    const r = yield* measure(options)
    const sorted = (xs: Array<number>) => Float64Array.from(xs).sort()
    const model = sorted(r.modelMs)
    const turn = sorted(r.turnMs)
    const turnsPerSecond = r.turns / r.elapsed
    const floorPerSecond = r.turns / r.floorElapsed
    return {
      name: "agents",
      agents: options.agents,
      turns_per_agent: options.turns,
      turns_per_s: Math.round(turnsPerSecond),
      model_p50_ms: round(percentile(model, 50), 3),
      turn_p50_ms: round(percentile(turn, 50), 3),
      turn_p99_ms: round(percentile(turn, 99), 3),
      // What a turn costs beyond its model call — building the prompt from the history,
      // parsing the answer, the two hops to the tool and back — as time per turn at
      // saturation: the whole run is one event loop, so time per turn is work per turn.
      pump_overhead_ms_per_turn: round(1000 / turnsPerSecond - 1000 / floorPerSecond, 3),
      rss_mb: rssMb(),
      floor_per_s: Math.round(floorPerSecond),
      ratio_to_floor: round(floorPerSecond / turnsPerSecond)
    }
  }).pipe(Effect.scoped)
