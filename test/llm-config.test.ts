/** The organism file's `llm:` section: decoding, defaults, problems, and the router it starts. */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Layer } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { loadOrganism } from "./support/files.js"
import { makeThreadId } from "../src/domain/Ids.js"
import { BudgetRegistry } from "../src/services/BudgetRegistry.js"
import { LlmRouter } from "../src/services/LlmRouter.js"
import { XmlEngine } from "../src/services/XmlEngine.js"

const dir = mkdtempSync(join(tmpdir(), "organism-llm-config-"))
const modules = relative(dir, join(__dirname, "fixtures", "modules.ts"))

const write = (name: string, text: string) => {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

const organism = (llm: string) => `organism:
  name: qa
listeners:
  - name: oracle
    payload: ${modules}#Question
    handler: ${modules}#answer
llm:
${llm}`

const problems = (file: string) =>
  Effect.map(Effect.either(loadOrganism(file)), (result) => {
    if (Either.isRight(result)) throw new Error("expected the organism file to be refused")
    return result.left.problems.map((p) => ({ line: p.line, key: p.key, message: p.message }))
  }).pipe(Effect.provide(XmlEngine.layer))

describe("the llm: section", () => {
  it.effect("decodes with defaults; the loaded organism carries it and the file's directory", () =>
    Effect.gen(function*() {
      const file = write("ok.yaml", organism(`  strategy: round-robin
  retries: 3
  backoff_base: 250ms
  prices:
    gpt-4o: { input_per_million: 2.5, output_per_million: 10 }
  backends:
    - name: openai
      provider: openai
      models: [gpt-4o, gpt-4o-mini]
      priority: 1
      rate_limit_rpm: 500
      rate_limit_tpm: 30000
      max_concurrent: 8
      timeout: 60s
    - name: local
      provider: ollama
      models: [llama3.1]
`))
      const loaded = yield* loadOrganism(file).pipe(Effect.provide(XmlEngine.layer))
      expect(loaded.baseDir).toBe(dir)
      const llm = loaded.llm!
      expect(llm).toMatchObject({ strategy: "round-robin", retries: 3, max_output_tokens: 4096, stream: false })
      expect(Duration.toMillis(llm.backoff_base)).toBe(250)
      expect(Duration.toMillis(llm.backoff_max)).toBe(10_000)
      expect(Duration.toMillis(llm.retry_after_max)).toBe(30_000)
      expect(llm.prices["gpt-4o"]).toMatchObject({ input_per_million: 2.5, output_per_million: 10 })
      expect(llm.backends.map((b) => [b.name, b.provider, b.models])).toEqual([
        ["openai", "openai", ["gpt-4o", "gpt-4o-mini"]],
        ["local", "ollama", ["llama3.1"]]
      ])
      expect(Duration.toMillis(llm.backends[0]!.timeout!)).toBe(60_000)
    }))

  it.effect("a file without llm: loads as before", () =>
    Effect.gen(function*() {
      const loaded = yield* loadOrganism(write("none.yaml", organism("").replace("llm:\n", ""))).pipe(Effect.provide(XmlEngine.layer))
      expect(loaded.llm).toBeUndefined()
    }))

  it.effect("mistakes are reported with line, key and what was expected", () =>
    Effect.gen(function*() {
      const found = yield* problems(write("bad.yaml", organism(`  strategy: fastest
  retires: 3
  backends:
    - name: a
      provider: openia
      models: [gpt-4o]
    - name: b
      provider: ollama
      models: []
      timeout: soon
`)))
      expect(found).toEqual([
        { line: 8, key: "llm.strategy", message: `expected "failover", "round-robin" or "least-loaded", got "fastest"` },
        expect.objectContaining({ line: 9, key: "llm.retires", message: expect.stringMatching(/unknown key "retires" \(did you mean "retries"\?\)/) }),
        expect.objectContaining({ line: 12, key: `llm.backends[0] "a".provider`, message: expect.stringMatching(/^expected "openai", "openai-compatible", .* got "openia"$/) }),
        { line: 16, key: `llm.backends[1] "b".models`, message: "expected a list of model names (at least one), got []" },
        { line: 17, key: `llm.backends[1] "b".timeout`, message: `expected a duration like 500ms, 10s, 2m, or a number of seconds, got "soon"` }
      ])
    }))

  it.effect("keys that do not go with the provider, and duplicate names, are reported at the key", () =>
    Effect.gen(function*() {
      const found = yield* problems(write("combos.yaml", organism(`  backends:
    - name: m
      provider: mock
      base_url: http://localhost:9/v1
      models: [x]
    - name: c
      provider: openai-compatible
      models: [x]
    - name: o
      provider: ollama
      api: responses
      script: llm.yaml
      models: [x]
    - name: m
      provider: anthropic
      api: chat
      models: [x]
`)))
      expect(found.map((p) => [p.key, p.message])).toEqual([
        [`llm.backends[0] "m".base_url`, "a mock backend is started by the router on a free port: drop base_url"],
        [`llm.backends[1] "c".base_url`, "provider openai-compatible needs a base_url (e.g. http://localhost:8000/v1)"],
        [`llm.backends[2] "o".api`, "provider ollama speaks Chat Completions only: drop api or say chat"],
        [`llm.backends[2] "o".script`, "script goes with provider: mock"],
        [`llm.backends[3] "m".api`, "api chooses between OpenAI's APIs; Anthropic has one"]
      ])
      const dup = yield* problems(write("dup.yaml", organism(`  backends:
    - { name: a, provider: ollama, models: [x] }
    - { name: A, provider: vllm, models: [y] }
`)))
      expect(dup).toEqual([{ line: 10, key: `llm.backends[1] "A".name`, message: `backend "A" is already defined at backends[0]` }])
    }))

  it.scopedLive("provider: mock from the organism file: LlmRouter.layer starts it with the script next to the file", () =>
    Effect.gen(function*() {
      write("replies.yaml", `responses:\n  - text: <Answer><Text>42</Text></Answer>\n    usage: { prompt_tokens: 10, completion_tokens: 5 }\n`)
      const loaded = yield* loadOrganism(write("mock.yaml", organism(`  backends:
    - name: local-mock
      provider: mock
      wire: anthropic
      script: replies.yaml
      models: [claude-mock]
  prices:
    claude-mock: { input_per_million: 1, output_per_million: 2 }
`))).pipe(Effect.provide(XmlEngine.layer))
      const layer = LlmRouter.layer(loaded.llm!, { baseDir: loaded.baseDir }).pipe(Layer.provide(BudgetRegistry.layerMemory()))
      const response = yield* Effect.flatMap(LlmRouter, (router) =>
        router.complete({ agent: "oracle", root: makeThreadId(), system: "Answer.", messages: [{ role: "user", content: "?" }] })
      ).pipe(Effect.provide(layer))
      expect(response).toMatchObject({
        text: "<Answer><Text>42</Text></Answer>",
        backend: "local-mock",
        model: "claude-mock",
        usage: { promptTokens: 10, completionTokens: 5 },
        costUsd: (10 * 1 + 5 * 2) / 1e6
      })
    }))
})
