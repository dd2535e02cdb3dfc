/**
 * The LLM router against real loopback mock servers: every policy is observed from the
 * server's side (which requests arrived, when, with what) as well as the caller's.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Exit, Fiber, Layer, Option, Random, type Schedule, ScheduleDecision, ScheduleIntervals, TestClock } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { makeThreadId } from "../src/domain/Ids.js"
import { LlmError } from "../src/domain/Llm.js"
import { AttemptFailed, type FailureKind, retryAfterMillis } from "../src/llm/LlmFailure.js"
import { MockLlmServer } from "../src/llm/MockLlmServer.js"
import type { MockScriptInput } from "../src/llm/MockScript.js"
import { makeRateLimit } from "../src/llm/RateLimiter.js"
import { retrySchedule } from "../src/llm/RetrySchedule.js"
import { BudgetExhausted, BudgetRegistry } from "../src/services/BudgetRegistry.js"
import { LlmRouter } from "../src/services/LlmRouter.js"
import { ask, decodeConfig, failureOf, fast, makeRouter } from "./support/llmRouter.js"
import { eventually } from "./support/mockLlm.js"

const XML = "Here you are:\n```xml\n<Greeting><Name>Ada</Name></Greeting>\n```"

const mock = (script?: MockScriptInput) => MockLlmServer.make({ script })

/** A Chat Completions backend on a mock server (no API key needed). */
const chat = (name: string, server: MockLlmServer.Service, extra: Record<string, unknown> = {}) => ({
  name,
  provider: "openai-compatible" as const,
  base_url: server.openAiUrl,
  models: ["gpt-4o"],
  ...extra
})

const gap = (server: MockLlmServer.Service, from: number, to: number) =>
  server.requests()[to]!.time.getTime() - server.requests()[from]!.time.getTime()

const llmError = <A>(exit: Exit.Exit<A, unknown>): LlmError => {
  const e = failureOf(exit)
  expect(e).toBeInstanceOf(LlmError)
  return e as LlmError
}

describe("failover, retries and Retry-After", () => {
  it.scopedLive("a 500 is retried on the same backend, then the next backend answers; the failed one cools down", () =>
    Effect.gen(function*() {
      const a = yield* mock({ default: { status: 500 } })
      const b = yield* mock({ responses: [{ text: "from b", times: "always" }] })
      const { router } = yield* makeRouter({
        ...fast,
        retries: 2,
        backends: [chat("b", b, { priority: 2 }), chat("a", a, { priority: 1 })]
      })
      const response = yield* router.complete(ask("hi"))
      expect(response).toMatchObject({ text: "from b", backend: "b", attempts: 4 })
      expect(a.requests().map((r) => r.status)).toEqual([500, 500, 500])
      expect(b.requests()).toHaveLength(1)

      // The next call goes straight to b: a is cooling down.
      const again = yield* router.complete(ask("again"))
      expect(again).toMatchObject({ backend: "b", attempts: 1 })
      expect(a.requests()).toHaveLength(3)
      const status = router.backends()
      expect(status.find((s) => s.name === "a")).toMatchObject({ healthy: false, requests: 3, failures: 3, inFlight: 0 })
      expect(status.find((s) => s.name === "b")).toMatchObject({ healthy: true, requests: 2, failures: 0 })
    }))

  it.scopedLive("a 429 with Retry-After: the retry waits at least that long, then the next backend takes over", () =>
    Effect.gen(function*() {
      const a = yield* mock({ default: { status: 429, retry_after: 1 } })
      const b = yield* mock({ responses: [{ text: "from b" }] })
      const { router } = yield* makeRouter({ ...fast, retries: 1, backends: [chat("a", a), chat("b", b)] })
      const response = yield* router.complete(ask("hi"))
      expect(response).toMatchObject({ text: "from b", backend: "b", attempts: 3 })
      expect(a.requests().map((r) => r.status)).toEqual([429, 429])
      expect(gap(a, 0, 1)).toBeGreaterThanOrEqual(1000)
    }))

  it.scopedLive("Retry-After is honoured up to retry_after_max", () =>
    Effect.gen(function*() {
      const a = yield* mock({ responses: [{ status: 429, retry_after: 30 }, { text: "ok" }] })
      const { router } = yield* makeRouter({ ...fast, retry_after_max: "300ms", backends: [chat("a", a)] })
      expect(yield* router.complete(ask("hi"))).toMatchObject({ text: "ok", attempts: 2 })
      expect(gap(a, 0, 1)).toBeGreaterThanOrEqual(300)
      expect(gap(a, 0, 1)).toBeLessThan(30_000)
    }))

  it.scopedLive("a 400 is neither retried nor tried elsewhere: rejected", () =>
    Effect.gen(function*() {
      const a = yield* mock({ responses: [{ status: 400, error: "messages: too long" }] })
      const b = yield* mock({ responses: [{ text: "from b" }] })
      const { router } = yield* makeRouter({ ...fast, backends: [chat("a", a), chat("b", b)] })
      const e = llmError(yield* Effect.exit(router.complete(ask("hi"))))
      expect(e.reason).toBe("rejected")
      expect(e.message).toContain("messages: too long")
      expect(e.attempts).toEqual([expect.objectContaining({ backend: "a", model: "gpt-4o", status: 400 })])
      expect(a.requests()).toHaveLength(1)
      expect(b.requests()).toHaveLength(0)
    }))

  it.scopedLive("dropped connections and timeouts are retried; the timed-out request is really aborted", () =>
    Effect.gen(function*() {
      const a = yield* mock({ responses: [{ fault: "drop" }, { text: "late", delay: "3s" }] })
      const b = yield* mock({ responses: [{ text: "from b" }] })
      const { router } = yield* makeRouter({
        ...fast,
        retries: 1,
        backends: [chat("a", a, { timeout: "300ms" }), chat("b", b)]
      })
      const response = yield* router.complete(ask("hi"))
      expect(response).toMatchObject({ backend: "b", attempts: 3 })
      expect(yield* eventually(() => a.requests()[1]?.outcome === "client_closed")).toBe(true)
      expect(a.requests()[0]!.outcome).toBe("dropped")
    }))

  it.scopedLive("when every backend fails: unavailable, with every attempt", () =>
    Effect.gen(function*() {
      const a = yield* mock({ default: { status: 503 } })
      const b = yield* mock({ default: { status: 502 } })
      const { router } = yield* makeRouter({ ...fast, retries: 1, backends: [chat("a", a), chat("b", b)] })
      const e = llmError(yield* Effect.exit(router.complete(ask("hi"))))
      expect(e.reason).toBe("unavailable")
      expect(e.attempts.map((t) => [t.backend, t.status])).toEqual([["a", 503], ["a", 503], ["b", 502], ["b", 502]])
    }))

  it.scopedLive("a model no backend serves: no-backend, and no request is sent", () =>
    Effect.gen(function*() {
      const a = yield* mock()
      const { router } = yield* makeRouter({ ...fast, backends: [chat("a", a)] })
      const e = llmError(yield* Effect.exit(router.complete(ask("hi", { model: "claude-opus" }))))
      expect(e.reason).toBe("no-backend")
      expect(e.message).toContain(`"claude-opus"`)
      expect(a.requests()).toHaveLength(0)
    }))
})

describe("strategies", () => {
  it.scopedLive("round-robin takes the healthy backends in turn", () =>
    Effect.gen(function*() {
      const a = yield* mock()
      const b = yield* mock()
      const { router } = yield* makeRouter({ ...fast, strategy: "round-robin", backends: [chat("a", a), chat("b", b)] })
      const used: Array<string> = []
      for (let i = 0; i < 4; i++) used.push((yield* router.complete(ask(`call ${i}`))).backend)
      expect(used).toEqual(["a", "b", "a", "b"])
      expect([a.requests().length, b.requests().length]).toEqual([2, 2])
    }))

  it.scopedLive("least-loaded sends the next request to the idle backend", () =>
    Effect.gen(function*() {
      const a = yield* mock({ responses: [{ text: "slow", delay: "800ms" }] })
      const b = yield* mock()
      const { router } = yield* makeRouter({ ...fast, strategy: "least-loaded", backends: [chat("a", a), chat("b", b)] })
      const first = yield* Effect.fork(router.complete(ask("first")))
      expect(yield* eventually(() => a.requests().length === 1)).toBe(true)
      expect(router.backends()[0]).toMatchObject({ name: "a", inFlight: 1 })
      const second = yield* router.complete(ask("second"))
      expect(second.backend).toBe("b")
      expect((yield* Fiber.join(first)).backend).toBe("a")
      // Both idle again: the first in order wins.
      expect((yield* router.complete(ask("third"))).backend).toBe("a")
    }))

  it.scopedLive("failover would have queued behind the busy backend instead", () =>
    Effect.gen(function*() {
      const a = yield* mock({ responses: [{ text: "slow", delay: "300ms" }] })
      const b = yield* mock()
      const { router } = yield* makeRouter({ ...fast, backends: [chat("a", a), chat("b", b)] })
      const first = yield* Effect.fork(router.complete(ask("first")))
      expect(yield* eventually(() => a.requests().length === 1)).toBe(true)
      expect((yield* router.complete(ask("second"))).backend).toBe("a")
      yield* Fiber.join(first)
      expect(b.requests()).toHaveLength(0)
    }))
})

describe("rate limits and concurrency", () => {
  it.scopedLive("tokens per minute: a request over the limit is delayed, not failed; estimates are corrected by real usage", () =>
    Effect.gen(function*() {
      // 6000 tokens a minute = 100 a second. Each call is estimated at ~105 tokens (prompt
      // chars / 4 + 100 output) but really uses 3000: after two calls the bucket is empty,
      // and the third waits ~1 s for its estimate to refill.
      const a = yield* mock({ responses: [{ text: "ok", usage: { prompt_tokens: 2900, completion_tokens: 100 }, times: "always" }] })
      const { router } = yield* makeRouter({ ...fast, max_output_tokens: 100, backends: [chat("a", a, { rate_limit_tpm: 6000 })] })
      const results = yield* Effect.all([0, 1, 2].map((i) => router.complete(ask(`call ${i}`))))
      expect(results.map((r) => r.text)).toEqual(["ok", "ok", "ok"])
      expect(a.requests()).toHaveLength(3)
      expect(gap(a, 1, 2)).toBeGreaterThanOrEqual(900)
    }))

  it.scoped("requests per minute: a token bucket of one minute's allowance, refilled continuously (TestClock)", () =>
    Effect.gen(function*() {
      const limiter = yield* makeRateLimit({ requestsPerMinute: 2 })
      yield* limiter.acquire(0)
      yield* limiter.acquire(0)
      const third = yield* Effect.fork(limiter.acquire(0))
      yield* TestClock.adjust(Duration.seconds(29))
      expect(third.unsafePoll()).toBeNull()
      yield* TestClock.adjust(Duration.seconds(1))
      expect(Exit.isSuccess((yield* Fiber.await(third)))).toBe(true)
    }))

  it.scoped("tokens per minute above 60,000: counted in units, so the limit is the configured one (TestClock)", () =>
    Effect.gen(function*() {
      // Effect's bucket refills at most one permit a millisecond: counted token by token,
      // 1,200,000 a minute would refill 20,000 tokens in 20 s instead of 1 s.
      const limiter = yield* makeRateLimit({ tokensPerMinute: 1_200_000 })
      yield* limiter.acquire(1_200_000)
      const next = yield* Effect.fork(limiter.acquire(20_000))
      yield* TestClock.adjust(Duration.millis(900))
      expect(next.unsafePoll()).toBeNull()
      yield* TestClock.adjust(Duration.millis(200))
      expect(Exit.isSuccess(yield* Fiber.await(next))).toBe(true)
    }))

  it.scoped("tokens per minute: an overestimate lets the next request go sooner, an underestimate makes it wait (TestClock)", () =>
    Effect.gen(function*() {
      const limiter = yield* makeRateLimit({ tokensPerMinute: 60 })
      // Estimated at a whole minute's tokens, used none: the next request owes nothing.
      yield* limiter.acquire(60)
      yield* limiter.settle(60, 0)
      const sooner = yield* Effect.fork(limiter.acquire(60))
      yield* TestClock.adjust(Duration.millis(1))
      expect(Exit.isSuccess(yield* Fiber.await(sooner))).toBe(true)
      // Estimated at 0, used 30: the next (estimated at 0 too) waits for those 30 (30 s).
      yield* TestClock.adjust(Duration.minutes(1))
      yield* limiter.acquire(0)
      yield* limiter.settle(0, 60)
      yield* limiter.acquire(0)
      yield* limiter.settle(0, 30)
      const later = yield* Effect.fork(limiter.acquire(0))
      yield* TestClock.adjust(Duration.seconds(29))
      expect(later.unsafePoll()).toBeNull()
      yield* TestClock.adjust(Duration.seconds(1))
      expect(Exit.isSuccess(yield* Fiber.await(later))).toBe(true)
    }))

  it.scopedLive("max_concurrent: the second request waits for the first's HTTP exchange", () =>
    Effect.gen(function*() {
      const a = yield* mock({ responses: [{ text: "ok", delay: "300ms", times: "always" }] })
      const { router } = yield* makeRouter({ ...fast, backends: [chat("a", a, { max_concurrent: 1 })] })
      yield* Effect.all([router.complete(ask("one")), router.complete(ask("two"))], { concurrency: "unbounded" })
      expect(gap(a, 0, 1)).toBeGreaterThanOrEqual(290)
    }))

  it.scopedLive("the concurrency slot is not held during a retry's backoff", () =>
    Effect.gen(function*() {
      const a = yield* mock({
        responses: [
          { match: { user: "^x" }, status: 500 },
          { match: { user: "^x" }, text: "x ok" },
          { match: { user: "^y" }, text: "y ok" }
        ]
      })
      const { router } = yield* makeRouter({
        ...fast,
        backoff_base: "1s",
        backoff_max: "1s",
        backends: [chat("a", a, { max_concurrent: 1 })]
      })
      const x = yield* Effect.fork(router.complete(ask("x")))
      expect(yield* eventually(() => a.requests()[0]?.outcome === "completed")).toBe(true)
      // x now sleeps at least 500 ms before its retry; y gets the slot meanwhile.
      expect((yield* router.complete(ask("y"))).text).toBe("y ok")
      expect((yield* Fiber.join(x)).text).toBe("x ok")
      expect(a.requests().map((r) => r.lastUser)).toEqual(["x", "y", "x"])
    }))
})

describe("budget, usage and cost", () => {
  it.scopedLive("an exhausted budget refuses the call before any request reaches the server", () =>
    Effect.gen(function*() {
      const a = yield* mock()
      const { budget, router } = yield* makeRouter({ ...fast, backends: [chat("a", a)] }, { budget: { maxTokensPerThread: 100 } })
      const root = makeThreadId()
      yield* budget.consume(root, "writer", { promptTokens: 100, completionTokens: 0 })
      const e = failureOf(yield* Effect.exit(router.complete(ask("hi", { root }))))
      expect(e).toBeInstanceOf(BudgetExhausted)
      expect(a.requests()).toEqual([])
    }))

  it.scopedLive("usage is charged to the conversation; crossed thresholds come back as warnings", () =>
    Effect.gen(function*() {
      const a = yield* mock({ responses: [{ text: "ok", usage: { prompt_tokens: 700, completion_tokens: 200 } }] })
      const { budget, router } = yield* makeRouter({ ...fast, backends: [chat("a", a)] }, { budget: { maxTokensPerThread: 1000 } })
      const root = makeThreadId()
      const response = yield* router.complete(ask("hi", { root }))
      expect(response.warnings.map((w) => w.severity)).toEqual(["warning", "critical"])
      expect(Option.getOrThrow(yield* budget.usage(root))).toMatchObject({ promptTokens: 700, completionTokens: 200, byModel: { "gpt-4o": { totalTokens: 900 } } })
    }))

  it.scopedLive("usage and cost per agent, model and backend add up to what the servers reported", () =>
    Effect.gen(function*() {
      const a = yield* mock({
        responses: [
          { text: "1", usage: { prompt_tokens: 1000, completion_tokens: 500 } },
          { text: "3", usage: { prompt_tokens: 40, completion_tokens: 60 } }
        ]
      })
      const b = yield* mock({ responses: [{ text: "2", usage: { prompt_tokens: 200, completion_tokens: 100 } }] })
      const { router } = yield* makeRouter({
        ...fast,
        prices: { "gpt-4o": { input_per_million: 2.5, output_per_million: 10 } },
        backends: [chat("a", a), chat("b", b, { models: ["llama3"] })]
      })
      const r1 = yield* router.complete(ask("one", { agent: "writer" }))
      const r2 = yield* router.complete(ask("two", { agent: "critic", model: "llama3" }))
      const r3 = yield* router.complete(ask("three", { agent: "critic", model: "gpt-4o" }))
      expect([r1, r2, r3].map((r) => [r.text, r.backend, r.model])).toEqual([["1", "a", "gpt-4o"], ["2", "b", "llama3"], ["3", "a", "gpt-4o"]])
      expect(r1.usage).toEqual({ promptTokens: 1000, completionTokens: 500 })
      expect(r1.costUsd).toBeCloseTo((1000 * 2.5 + 500 * 10) / 1e6, 12)
      expect(r2.costUsd).toBe(0) // llama3 has no price
      const report = router.usage()
      const cost = (1040 * 2.5 + 560 * 10) / 1e6
      expect(report.totals).toMatchObject({ requests: 3, promptTokens: 1240, completionTokens: 660 })
      expect(report.totals.costUsd).toBeCloseTo(cost, 12)
      expect(report.byAgent).toEqual({
        writer: { requests: 1, promptTokens: 1000, completionTokens: 500, costUsd: expect.closeTo(r1.costUsd, 12) },
        critic: { requests: 2, promptTokens: 240, completionTokens: 160, costUsd: expect.closeTo(r3.costUsd, 12) }
      })
      expect(report.byModel).toEqual({
        "gpt-4o": { requests: 2, promptTokens: 1040, completionTokens: 560, costUsd: expect.closeTo(cost, 12) },
        llama3: { requests: 1, promptTokens: 200, completionTokens: 100, costUsd: 0 }
      })
      expect(report.byBackend["a"]).toMatchObject({ requests: 2, promptTokens: 1040 })
      expect(report.byBackend["b"]).toMatchObject({ requests: 1, promptTokens: 200 })
    }))
})

describe("wire formats", () => {
  const backendsOn = (server: MockLlmServer.Service) => [
    { name: "responses", provider: "openai" as const, base_url: server.openAiUrl, api_key_env: "TEST_OPENAI_KEY", models: ["m-responses"] },
    { name: "chat", provider: "openai" as const, api: "chat" as const, base_url: server.openAiUrl, api_key_env: "TEST_OPENAI_KEY", models: ["m-chat"] },
    { name: "compatible", provider: "vllm" as const, base_url: server.openAiUrl, models: ["m-vllm"] },
    { name: "anthropic", provider: "anthropic" as const, base_url: server.url, api_key_env: "TEST_ANTHROPIC_KEY", models: ["m-claude"] }
  ]
  const env = { TEST_OPENAI_KEY: "sk-test", TEST_ANTHROPIC_KEY: "sk-ant-test" }

  it.scopedLive("OpenAI Responses, OpenAI chat, an OpenAI-compatible server and Anthropic, plain and streamed: the same text and usage", () =>
    Effect.gen(function*() {
      const server = yield* mock({
        responses: [{ text: XML, chunk_size: 5, usage: { prompt_tokens: 12, completion_tokens: 34 }, times: "always" }]
      })
      const { router } = yield* makeRouter({ ...fast, max_output_tokens: 321, backends: backendsOn(server) }, { env })
      for (const model of ["m-responses", "m-chat", "m-vllm", "m-claude"]) {
        for (const stream of [false, true]) {
          const r = yield* router.complete(ask("Greet Ada", { model, stream }))
          expect({ model, stream, text: r.text, usage: r.usage, finish: r.finishReason }).toEqual({
            model,
            stream,
            text: XML,
            usage: { promptTokens: 12, completionTokens: 34 },
            finish: "stop"
          })
        }
      }
      const seen = server.requests().map((r) => [r.path, r.stream, r.system, r.lastUser])
      expect(seen).toEqual([
        ["/v1/responses", false, "You answer in XML.", "Greet Ada"],
        ["/v1/responses", true, "You answer in XML.", "Greet Ada"],
        ["/v1/chat/completions", false, "You answer in XML.", "Greet Ada"],
        ["/v1/chat/completions", true, "You answer in XML.", "Greet Ada"],
        ["/v1/chat/completions", false, "You answer in XML.", "Greet Ada"],
        ["/v1/chat/completions", true, "You answer in XML.", "Greet Ada"],
        ["/v1/messages", false, "You answer in XML.", "Greet Ada"],
        ["/v1/messages", true, "You answer in XML.", "Greet Ada"]
      ])
      // The output cap, as each API spells it; the keys as each provider expects them.
      const bodies = server.requests().map((r) => r.body as Record<string, unknown>)
      expect(bodies[0]).toMatchObject({ model: "m-responses", max_output_tokens: 321 })
      expect(bodies[2]).toMatchObject({ model: "m-chat", max_completion_tokens: 321 })
      expect(bodies[4]).toMatchObject({ model: "m-vllm", max_tokens: 321 })
      expect(bodies[5]).toMatchObject({ stream: true, stream_options: { include_usage: true } })
      expect(bodies[6]).toMatchObject({ model: "m-claude", max_tokens: 321 })
      expect(server.requests()[0]!.headers.authorization).toBe("Bearer sk-test")
      expect(server.requests()[4]!.headers.authorization).toBeUndefined()
      expect(server.requests()[6]!.headers["x-api-key"]).toBe("sk-ant-test")
    }))

  it.scopedLive("a conversation's earlier turns reach the model in order", () =>
    Effect.gen(function*() {
      const server = yield* mock()
      const { router } = yield* makeRouter({ ...fast, backends: backendsOn(server) }, { env })
      const messages = [
        { role: "user" as const, content: "first" },
        { role: "assistant" as const, content: "answer" },
        { role: "user" as const, content: "second" }
      ]
      for (const model of ["m-responses", "m-chat", "m-claude"]) {
        expect((yield* router.complete(ask("", { model, messages }))).text).toBe("second")
      }
      const chatBody = server.requests()[1]!.body as { messages: Array<{ role: string; content: string }> }
      expect(chatBody.messages).toEqual([{ role: "system", content: "You answer in XML." }, ...messages])
    }))

  it.scopedLive("provider mock: the router starts its own server from a script relative to the organism file", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "llm-router-"))
      writeFileSync(join(dir, "llm.yaml"), `responses:\n  - text: from the script\n    times: always\n`)
      for (const wire of ["openai", "anthropic"] as const) {
        const { router } = yield* makeRouter(
          { ...fast, backends: [{ name: "m", provider: "mock", wire, script: "llm.yaml", models: ["mock-llm"] }] },
          { baseDir: dir }
        )
        expect((yield* router.complete(ask("hi"))).text).toBe("from the script")
        expect((yield* router.complete(ask("hi", { stream: true }))).text).toBe("from the script")
        expect(router.backends()[0]!.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+/)
      }
    }))

  it.scopedLive("LlmRouter.layer: handler code gets the router from context", () =>
    Effect.gen(function*() {
      const config = decodeConfig({ ...fast, backends: [{ name: "m", provider: "mock", models: ["mock-llm"] }] })
      const program = Effect.gen(function*() {
        const router = yield* LlmRouter
        return (yield* router.complete(ask("echo me"))).text
      })
      const text = yield* program.pipe(
        Effect.provide(LlmRouter.layer(config, { baseDir: process.cwd() }).pipe(Layer.provide(BudgetRegistry.layerMemory())))
      )
      expect(text).toBe("echo me")
    }))
})

describe("configuration errors at start", () => {
  it.scopedLive("a missing API key names the environment variable", () =>
    Effect.gen(function*() {
      const openai = yield* Effect.flip(makeRouter({ backends: [{ name: "gpt", provider: "openai", models: ["gpt-4o"] }] }))
      expect(openai).toMatchObject({ _tag: "LlmConfigError", backend: "gpt" })
      expect((openai as Error).message).toContain("OPENAI_API_KEY")
      const claude = yield* Effect.flip(makeRouter({ backends: [{ name: "c", provider: "anthropic", models: ["claude"] }] }))
      expect((claude as Error).message).toContain("ANTHROPIC_API_KEY")
      const named = yield* Effect.flip(
        makeRouter({ backends: [{ name: "v", provider: "vllm", api_key_env: "VLLM_KEY", models: ["llama"] }] })
      )
      expect((named as Error).message).toContain("VLLM_KEY")
      // Local servers need none.
      const local = yield* makeRouter({ backends: [{ name: "o", provider: "ollama", models: ["llama3"] }] })
      expect(local.router.backends()[0]!.baseUrl).toBe("http://localhost:11434/v1")
    }))

  it.scopedLive("without an env map, the key is Config.redacted from the ConfigProvider: sent, never shown", () =>
    Effect.gen(function*() {
      const a = yield* mock()
      const config = decodeConfig({ ...fast, backends: [{ ...chat("a", a), api_key_env: "A_KEY" }] })
      const layer = LlmRouter.layer(config, { baseDir: process.cwd() }).pipe(Layer.provide(BudgetRegistry.layerMemory()))
      const router = yield* Layer.build(layer).pipe(
        Effect.map(Context.get(LlmRouter)),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["A_KEY", "from-config"]])))
      )
      yield* router.complete(ask("hi"))
      expect(a.requests()[0]!.headers["authorization"]).toBe("Bearer from-config")
      // The same variable missing from the provider fails the start, naming it.
      const missing = yield* Effect.flip(Layer.build(layer).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))))
      expect(missing).toMatchObject({ _tag: "LlmConfigError", backend: "a" })
      expect(missing.message).toContain("A_KEY")
    }))

  it.scopedLive("a mock script that does not load is a config error naming the backend and the problem", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "llm-router-"))
      writeFileSync(join(dir, "bad.yaml"), `responses:\n  - statuss: 500\n`)
      const e = yield* Effect.flip(
        makeRouter({ backends: [{ name: "m", provider: "mock", script: "bad.yaml", models: ["x"] }] }, { baseDir: dir })
      )
      expect(e).toMatchObject({ _tag: "LlmConfigError", backend: "m" })
      expect((e as Error).message).toMatch(/bad\.yaml:2:5: responses\[0\]\.statuss: unknown key/)
    }))
})

describe("streams", () => {
  for (const wire of ["chat", "responses", "anthropic"] as const) {
    const backend = (server: MockLlmServer.Service, name: string) =>
      wire === "anthropic"
        ? { name, provider: "anthropic" as const, base_url: server.url, api_key_env: "K", models: ["m"] }
        : { name, provider: "openai" as const, api: wire, base_url: server.openAiUrl, api_key_env: "K", models: ["m"] }

    it.scopedLive(`${wire}: a stream that breaks after output started is not retried, here or elsewhere`, () =>
      Effect.gen(function*() {
        const a = yield* mock({ responses: [{ text: "aaaabbbbcccc", chunk_size: 4, fault: "drop_mid_response", fault_after: 2 }] })
        const b = yield* mock({ responses: [{ text: "from b" }] })
        const { budget, router } = yield* makeRouter({ ...fast, backends: [backend(a, "a"), backend(b, "b")] }, { env: { K: "k" } })
        const root = makeThreadId()
        const e = llmError(yield* Effect.exit(router.complete(ask("hi", { stream: true, root }))))
        expect(e.reason).toBe("stream-failed")
        expect(e.message).toMatch(/cut short|malformed|dropped/)
        expect(e.attempts).toHaveLength(1)
        expect(a.requests()).toHaveLength(1)
        expect(b.requests()).toHaveLength(0)
        // What the broken stream spent is charged (estimated).
        expect(Option.getOrThrow(yield* budget.usage(root)).totalTokens).toBeGreaterThan(0)
      }))

    it.scopedLive(`${wire}: an error event mid-stream (stream_error) is a failure, not a short answer`, () =>
      Effect.gen(function*() {
        const a = yield* mock({ responses: [{ text: "aaaabbbbcccc", chunk_size: 4, fault: "stream_error", fault_after: 1, error: "overloaded" }] })
        const { router } = yield* makeRouter({ ...fast, backends: [backend(a, "a")] }, { env: { K: "k" } })
        const e = llmError(yield* Effect.exit(router.complete(ask("hi", { stream: true }))))
        expect(e.reason).toBe("stream-failed")
        expect(e.message).toContain("overloaded")
        expect(a.requests()).toHaveLength(1)
      }))

    it.scopedLive(`${wire}: a streamed request that fails before any output falls back like a plain one`, () =>
      Effect.gen(function*() {
        const a = yield* mock({ default: { status: 529 } })
        const b = yield* mock({ responses: [{ text: "from b" }] })
        const { router } = yield* makeRouter({ ...fast, retries: 0, backends: [backend(a, "a"), backend(b, "b")] }, { env: { K: "k" } })
        expect(yield* router.complete(ask("hi", { stream: true }))).toMatchObject({ text: "from b", backend: "b", attempts: 2 })
      }))
  }
})

describe("the Chat Completions adapter", () => {
  it.scopedLive("a malformed stream event fails the stream instead of losing its text", () =>
    Effect.gen(function*() {
      const a = yield* mock({ responses: [{ text: "aaaabbbbcccc", chunk_size: 4, chunk_delay: "20ms", fault: "malformed", fault_after: 1 }] })
      const { router } = yield* makeRouter({ ...fast, backends: [chat("a", a)] })
      const e = llmError(yield* Effect.exit(router.complete(ask("hi", { stream: true }))))
      expect(e.reason).toBe("stream-failed")
      expect(e.message).toContain("not valid JSON")
    }))

  it.scopedLive("a malformed plain body is a backend failure: retried", () =>
    Effect.gen(function*() {
      const a = yield* mock({ responses: [{ text: "x", fault: "malformed" }, { text: "whole" }] })
      const { router } = yield* makeRouter({ ...fast, backends: [chat("a", a)] })
      expect(yield* router.complete(ask("hi"))).toMatchObject({ text: "whole", attempts: 2 })
    }))

  it.scopedLive("a compatible server's sparse answer (no logprobs, refusal, usage or id) is read", () =>
    Effect.gen(function*() {
      const { createServer } = yield* Effect.promise(() => import("node:http"))
      const server = createServer((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" })
        res.end(JSON.stringify({ choices: [{ message: { role: "assistant", content: "sparse" }, finish_reason: "eos" }] }))
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const port = (server.address() as import("node:net").AddressInfo).port
      const { router } = yield* makeRouter({
        ...fast,
        backends: [{ name: "l", provider: "llamacpp", base_url: `http://127.0.0.1:${port}/v1`, models: ["local"] }]
      })
      const r = yield* router.complete(ask("hello there"))
      expect(r).toMatchObject({ text: "sparse", finishReason: "other" })
      // No usage reported: the estimate (4 characters a token) is charged.
      expect(r.usage).toEqual({ promptTokens: Math.ceil(("You answer in XML.".length + "hello there".length) / 4), completionTokens: 2 })
    }))
})

/** A failure as the router sees it. */
const failed = (kind: FailureKind = "retryable", retryAfterMs?: number) =>
  new AttemptFailed({ kind, status: undefined, retryAfterMs, message: "failed" })

/**
 * The delays a schedule decides for a run of failures, step by step (no sleeping): a number
 * of milliseconds per retry, "stop" where it gives up. `random` is what `Random.next` gives.
 */
const delays = (schedule: Schedule.Schedule<number, AttemptFailed>, failures: ReadonlyArray<AttemptFailed>, random: number) =>
  Effect.gen(function*() {
    let state = schedule.initial
    let now = 0
    const out: Array<number | "stop"> = []
    for (const failure of failures) {
      const [next, , decision] = yield* schedule.step(now, failure, state)
      if (ScheduleDecision.isDone(decision)) {
        out.push("stop")
        break
      }
      const at = ScheduleIntervals.start(decision.intervals)
      out.push(at - now)
      now = at
      state = next
    }
    return out
  }).pipe(Effect.withRandom(Random.fixed([random])))

const policy = { retries: 10, base: "500 millis", max: "10 seconds", retryAfterMax: "30 seconds" } as const

describe("retry delays (the retry Schedule)", () => {
  it.effect("equal jitter: between half and all of the capped exponential delay", () =>
    Effect.gen(function*() {
      const four = [failed(), failed(), failed(), failed()]
      expect(yield* delays(retrySchedule(policy), four, 0)).toEqual([250, 500, 1000, 2000])
      expect(yield* delays(retrySchedule(policy), four, 0.999999)).toEqual([500, 1000, 2000, 4000].map((x) => expect.closeTo(x, 2)))
      const ten = Array.from({ length: 10 }, () => failed())
      expect((yield* delays(retrySchedule(policy), ten, 0))[9]).toBe(5000)
    }))

  it.effect("Retry-After wins when longer, up to its cap", () =>
    Effect.gen(function*() {
      expect(yield* delays(retrySchedule(policy), [failed("retryable", 2000)], 0)).toEqual([2000])
      expect(yield* delays(retrySchedule(policy), [failed("retryable", 100)], 0)).toEqual([250])
      expect(yield* delays(retrySchedule(policy), [failed("retryable", 60_000)], 0)).toEqual([30_000])
    }))

  it.effect("only retryable failures recur, at most `retries` times", () =>
    Effect.gen(function*() {
      expect(yield* delays(retrySchedule(policy), [failed("rejected")], 0)).toEqual(["stop"])
      expect(yield* delays(retrySchedule(policy), [failed("stream-failed")], 0)).toEqual(["stop"])
      expect(yield* delays(retrySchedule(policy), [failed(), failed("rejected")], 0)).toEqual([250, "stop"])
      expect(yield* delays(retrySchedule({ ...policy, retries: 2 }), [failed(), failed(), failed()], 0)).toEqual([250, 500, "stop"])
      expect(yield* delays(retrySchedule({ ...policy, retries: 0 }), [failed()], 0)).toEqual(["stop"])
    }))

  it("Retry-After as seconds, as an HTTP date, and OpenAI's retry-after-ms", () => {
    const now = Date.parse("2025-01-01T00:00:00Z")
    expect(retryAfterMillis({ "retry-after": "7" }, now)).toBe(7000)
    expect(retryAfterMillis({ "retry-after": "Wed, 01 Jan 2025 00:00:05 GMT" }, now)).toBe(5000)
    expect(retryAfterMillis({ "retry-after-ms": "250", "retry-after": "1" }, now)).toBe(250)
    expect(retryAfterMillis({ "retry-after": "soon" }, now)).toBeUndefined()
    expect(retryAfterMillis({}, now)).toBeUndefined()
  })
})
