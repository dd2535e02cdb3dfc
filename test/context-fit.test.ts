/**
 * ContextFit on its own (the approximate tokenizer, a counting summariser), the provider
 * tokenizers, and an agent's `context:` in an organism file.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import type { LlmMessage } from "../src/domain/Llm.js"
import { approximateTokenizer, tokenizerFor } from "../src/llm/Tokenizers.js"
import {
  droppedNote,
  fitHistory,
  makeCounter,
  type SummaryState,
  truncateText
} from "../src/pipeline/agents/ContextFit.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { loadOrganism } from "./support/files.js"

const counter = makeCounter({ kind: "approximate", tokenizer: approximateTokenizer })
/** Approximate tokens of one message: 4 + a token per 3 characters. */
const tokensOf = (text: string) => 4 + Math.ceil(text.length / 3)

const turns = (n: number, size = 60): Array<LlmMessage> =>
  Array.from({ length: n }, (_, i) => ({ role: i % 2 === 0 ? "user" : "assistant", content: `turn ${i} `.padEnd(size, "x") }))

const countAll = (system: string, ms: ReadonlyArray<LlmMessage>) => tokensOf(system) + ms.reduce((a, m) => a + tokensOf(m.content), 0)

describe("fitHistory", () => {
  it.effect("a history that fits is sent as it is", () =>
    Effect.gen(function*() {
      const messages = turns(5)
      const fit = yield* fitHistory({ system: "sys", messages, budget: 1000, counter })
      expect(fit.messages).toBe(messages)
      expect(fit.dropped).toBe(0)
      expect(fit.promptTokens).toBe(countAll("sys", messages))
    }))

  it.effect("drop_oldest: the oldest turns go, with a note; the latest message stays; the budget holds", () =>
    Effect.gen(function*() {
      const messages = turns(41)
      for (const budget of [70, 100, 250, 500]) {
        const fit = yield* fitHistory({ system: "You are terse.", messages, budget, counter })
        expect(fit.promptTokens).toBeLessThanOrEqual(budget)
        expect(fit.promptTokens).toBe(countAll("You are terse.", fit.messages))
        expect(fit.messages[0]!.role).toBe("user")
        expect(fit.messages[0]!.content.startsWith(droppedNote(fit.dropped))).toBe(true)
        // The latest message is sent whole (the note goes before it when it is all that is left).
        expect(fit.messages[fit.messages.length - 1]!.content.endsWith(messages[40]!.content)).toBe(true)
        // Roles still alternate.
        fit.messages.forEach((m, i) => expect(m.role).toBe(i % 2 === 0 ? "user" : "assistant"))
        // As many as fit: one message more would not.
        expect(fit.dropped).toBeGreaterThan(0)
      }
    }))

  it.effect("the system prompt and the latest message alone over the budget: ContextTooSmall", () =>
    Effect.gen(function*() {
      const result = yield* Effect.either(fitHistory({ system: "s".repeat(300), messages: turns(3), budget: 100, counter }))
      expect(Either.isLeft(result) && result.left._tag === "ContextTooSmall").toBe(true)
    }))

  it.effect("summarise: the summary is reused while the kept turns fit, then extended with the newly dropped", () =>
    Effect.gen(function*() {
      let state: SummaryState | undefined
      const calls: Array<{ readonly dropped: number; readonly previous: string | undefined }> = []
      const fitAt = (n: number) =>
        fitHistory({
          system: "sys",
          messages: turns(n),
          budget: 400,
          counter,
          summarise: {
            by: "condenser",
            allowance: 40,
            run: (dropped, previous) =>
              Effect.sync(() => {
                calls.push({ dropped: dropped.length, previous })
                return `summary #${calls.length}`
              }),
            state: () => state,
            save: (s) => void (state = s)
          }
        })
      const results = []
      for (let n = 5; n <= 60; n += 2) results.push(yield* fitAt(n))
      for (const r of results) expect(r.promptTokens).toBeLessThanOrEqual(400)
      // Far fewer summaries than fits: each covers the kept turns halving.
      expect(calls.length).toBeGreaterThan(1)
      expect(calls.length).toBeLessThan(8)
      expect(calls[0]!.previous).toBeUndefined()
      expect(calls[1]!.previous).toBe("summary #1")
      const last = results[results.length - 1]!
      expect(last.summarised).toBe(true)
      expect(last.messages[0]!.content).toMatch(new RegExp(`condenser summarised them:\\]\\nsummary #${calls.length}`))
    }))

  it.effect("a changed start of the history makes a new summary from scratch", () =>
    Effect.gen(function*() {
      let state: SummaryState | undefined = { covered: ["something else"], summary: "stale" }
      const seen: Array<string | undefined> = []
      yield* fitHistory({
        system: "sys",
        messages: turns(30),
        budget: 300,
        counter,
        summarise: {
          by: "condenser",
          allowance: 40,
          run: (_, previous) => Effect.sync(() => (seen.push(previous), "fresh")),
          state: () => state,
          save: (s) => void (state = s)
        }
      })
      expect(seen).toEqual([undefined])
      expect(state!.summary).toBe("fresh")
    }))
})

describe("truncateText", () => {
  it.effect("keeps the head within the limit and says how much was cut", () =>
    Effect.gen(function*() {
      const text = "abcdefghij".repeat(300)
      const cut = yield* truncateText(counter, "user", text, 100, (omitted, total) => `[cut ${omitted} of ${total}]`)
      expect(yield* counter.count("user", cut)).toBeLessThanOrEqual(100)
      expect(text.startsWith(cut.slice(0, cut.indexOf("[cut")))).toBe(true)
      expect(cut).toMatch(/\[cut \d+ of 1004\]$/)
      expect(cut.length).toBeGreaterThan(250)
      expect(yield* truncateText(counter, "user", "short", 100, () => "!")).toBe("short")
    }))

  it.effect("keeps the tail when asked", () =>
    Effect.gen(function*() {
      const text = Array.from({ length: 500 }, (_, i) => `w${i}`).join(" ")
      const cut = yield* truncateText(counter, "user", text, 50, () => "[…] ", "tail")
      expect(cut.startsWith("[…] ")).toBe(true)
      expect(cut.endsWith("w499")).toBe(true)
    }))
})

describe("provider tokenizers", () => {
  it.effect("OpenAI models gpt-tokenizer knows are counted exactly; Anthropic with its tokenizer; others approximately", () =>
    Effect.gen(function*() {
      const openai = yield* tokenizerFor("openai", "gpt-4o")
      expect(openai.kind).toBe("openai")
      expect((yield* openai.tokenizer.tokenize("hello world")).length).toBeGreaterThan(2)
      expect((yield* tokenizerFor("openai", "my-finetune-x")).kind).toBe("approximate")
      const anthropic = yield* tokenizerFor("anthropic", "claude-sonnet-4-5")
      expect(anthropic.kind).toBe("anthropic")
      expect((yield* anthropic.tokenizer.tokenize("hello world")).length).toBe(2)
      expect((yield* tokenizerFor("ollama", "llama3.1")).kind).toBe("approximate")
      expect((yield* approximateTokenizer.tokenize("123456")).length).toBe(4 + 2)
    }), 30_000)
})

describe("context in an organism file", () => {
  const dir = mkdtempSync(join(tmpdir(), "organism-context-"))
  const modules = relative(dir, join(__dirname, "fixtures", "modules.ts"))
  const write = (name: string, text: string) => {
    const file = join(dir, name)
    writeFileSync(file, text)
    return file
  }
  const file = (context: string, summariser = true) => `organism:
  name: x
listeners:
  - name: bot
    agent: true
    payload: ${modules}#Question
    prompt: Be brief.
    stream: true
    max_reasoning_tokens: 5000
${context}
${summariser ? `  - name: condenser
    agent: true
    payload: ${modules}#Question
    prompt: You condense.
    max_output_tokens: 300
` : ""}llm:
  max_output_tokens: 700
  backends:
    - name: local
      provider: mock
      context_window: 9000
      models: [m]
`
  it.effect("is read into the agent's options, the summariser resolved by name", () =>
    Effect.gen(function*() {
      const { organism } = yield* loadOrganism(write("ok.yaml", file(`    context:
      window: 8000
      strategy: summarise
      summariser: condenser
      max_tool_result_tokens: 500`)))
      const bot = organism.listeners.find((l) => l.name === "bot")!
      expect(bot.llm).toMatchObject({
        stream: true,
        maxReasoningTokens: 5000,
        context: {
          window: 8000,
          reserveOutput: 700,
          strategy: "summarise",
          summariser: { name: "condenser", prompt: "You condense.", maxOutputTokens: 300 },
          maxToolResultTokens: 500
        }
      })
    }).pipe(Effect.provide(XmlEngine.layer)))

  it.effect("mistakes are reported at their key and line", () =>
    Effect.gen(function*() {
      const problemsOf = (name: string, text: string) =>
        Effect.map(Effect.either(loadOrganism(write(name, text))), (r) => {
          if (Either.isRight(r)) throw new Error("expected a refusal")
          return r.left.problems.map((p) => ({ line: p.line, key: p.key, message: p.message }))
        })
      const [unknown] = yield* problemsOf("unknown.yaml", file(`    context:
      strategy: summarise
      summariser: nobody`))
      expect(unknown).toMatchObject({ line: 12, key: `listeners[0] "bot".context.summariser` })
      expect(unknown!.message).toMatch(/"nobody" is not an LLM agent of this file .*LLM agents: condenser/)
      const [missing] = yield* problemsOf("missing.yaml", file(`    context:
      strategy: summarise`))
      expect(missing).toMatchObject({ key: `listeners[0] "bot".context.strategy` })
      expect(missing!.message).toMatch(/needs a summariser/)
      const [bad] = yield* problemsOf("bad.yaml", file(`    context:
      strategy: forget`))
      expect(bad!.message).toMatch(/expected "drop_oldest" or "summarise"/)
      const [typo] = yield* problemsOf("typo.yaml", file(`    context:
      windw: 100`))
      expect(typo!.message).toMatch(/windw.*did you mean "window"/)
    }).pipe(Effect.provide(XmlEngine.layer)))
})
