/**
 * Per-backend limits shared by the runners of a durable organism, through a real Postgres:
 * two routers (as two runners would have) with `max_concurrent: 1` never call the model at
 * the same time, and `rate_limit_rpm: 3` admits three requests a minute between them.
 */
import { describe, expect, it } from "@effect/vitest"
import { onTestFinished } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { ensureSchema, layerPg } from "../src/cluster/Database.js"
import { layerSharedLimitsSql } from "../src/cluster/SharedLimitsSql.js"
import { MockLlmServer } from "../src/llm/MockLlmServer.js"
import { ask, fast, makeRouter } from "./support/llmRouter.js"
import { freshDatabase } from "./support/postgres.js"

/** Two routers on the mock, each with its own SharedLimits over the same database. */
const twoRunners = (server: MockLlmServer.Service, backend: Record<string, unknown>) =>
  Effect.gen(function*() {
    const db = freshDatabase("limits")
    onTestFinished(db.drop)
    const pg = yield* Layer.build(layerPg(db.url))
    yield* ensureSchema(db.url).pipe(Effect.provide(pg))
    const config = { ...fast, retries: 0, backends: [{ name: "local", provider: "openai-compatible" as const, base_url: server.openAiUrl, models: ["m"], ...backend }] }
    const router = (name: string) =>
      Effect.gen(function*() {
        const shared = yield* Layer.build(layerSharedLimitsSql(name).pipe(Layer.provide(Layer.succeedContext(pg))))
        return (yield* makeRouter(config).pipe(Effect.provide(shared))).router
      })
    return [yield* router("a"), yield* router("b")] as const
  })

describe("limits shared by runners (Postgres)", () => {
  it.live("max_concurrent: 1 across two routers: six calls of 150 ms take 900 ms, one at a time", () =>
    Effect.gen(function*() {
      const server = yield* MockLlmServer.make({ script: { default: { text: "ok", delay: "150 millis" } } })
      const [a, b] = yield* twoRunners(server, { max_concurrent: 1 })
      const started = Date.now()
      yield* Effect.all([a, b, a, b, a, b].map((r, i) => r.complete(ask(`call ${i}`))), { concurrency: "unbounded" })
      const elapsed = Date.now() - started
      expect(server.requests()).toHaveLength(6)
      expect(elapsed).toBeGreaterThanOrEqual(6 * 150)
      // The mock saw each request arrive after the previous one was answered.
      const arrivals = server.requests().map((r) => r.time.getTime()).sort((x, y) => x - y)
      for (let i = 1; i < arrivals.length; i++) expect(arrivals[i]! - arrivals[i - 1]!).toBeGreaterThanOrEqual(140)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("rate_limit_rpm: 3 across two routers: the fourth request of the minute waits", () =>
    Effect.gen(function*() {
      // Away from a minute's end, so the four requests share one window.
      const intoMinute = Date.now() % 60_000
      if (intoMinute > 50_000) yield* Effect.sleep(`${60_000 - intoMinute + 100} millis`)
      const server = yield* MockLlmServer.make({ script: { default: { text: "ok" } } })
      const [a, b] = yield* twoRunners(server, { rate_limit_rpm: 3 })
      yield* a.complete(ask("one"))
      yield* b.complete(ask("two"))
      yield* a.complete(ask("three"))
      const fourth = yield* b.complete(ask("four")).pipe(Effect.timeoutOption("1500 millis"))
      expect(Option.isNone(fourth)).toBe(true)
      expect(server.requests()).toHaveLength(3)
    }).pipe(Effect.scoped), { timeout: 30_000 })
})
