import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { withMock } from "./support/mockLlm.js"
import { ask, fast, makeRouter } from "./support/llmRouter.js"

describe("smoke", () => {
  it.scopedLive("plain", () =>
    withMock({ responses: [{ status: 500 }, { text: "hello", usage: { prompt_tokens: 3, completion_tokens: 4 } }] }, (server) =>
      Effect.gen(function*() {
        const { router } = yield* makeRouter({
          ...fast,
          backends: [{ name: "a", provider: "openai-compatible", base_url: server.openAiUrl, models: ["gpt-4o"] }]
        })
        const r = yield* router.complete(ask("hi"))
        console.log(r, server.requests().map((q) => [q.path, q.status]))
        const s = yield* router.complete(ask("hi", { stream: true }))
        console.log(s)
        expect(r.text).toBe("hello")
      })))
})
