/**
 * Model calls as events (LlmCallStarted / LlmCallCompleted / LlmCallFailed), published by the
 * real LlmRouter against the mock model server on loopback; and an answer cut at the output
 * limit (finish reason `length`), on every wire, which the agent does not take as an answer.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Header, recordOf } from "../src/domain/JournalRecord.js"
import { Listener } from "../src/pipeline/Listeners.js"
import { LlmConfig, type LlmConfigInput } from "../src/domain/LlmConfig.js"
import { Organism } from "../src/domain/Organism.js"
import { eventToJson, type PumpEvent } from "../src/domain/PumpEvent.js"
import { TextInput } from "../src/domain/SystemPayloads.js"
import { renderEvent } from "../src/cli/renderEvent.js"
import { MockLlmServer, type RecordedRequest } from "../src/llm/MockLlmServer.js"
import type { MockScriptInput } from "../src/llm/MockScript.js"
import { CUT_AT_LIMIT } from "../src/pipeline/agents/LlmAgent.js"
import { Pump } from "../src/pipeline/Pump.js"
import { Journal } from "../src/services/Journal.js"
import { LlmRouter } from "../src/services/LlmRouter.js"
import { rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { withPump } from "./support/pump.js"

const organism = Organism.make({
  listeners: [Listener.llmAgent({ name: "assistant", payload: TextInput, prompt: "You answer." })]
})

const run = (
  script: MockScriptInput,
  llm: (server: MockLlmServer.Service) => LlmConfigInput
) =>
  Effect.gen(function*() {
    const server = yield* MockLlmServer.make({ script })
    const config = Schema.decodeUnknownSync(LlmConfig)(llm(server))
    const env = { TEST_OPENAI_KEY: "sk-test", TEST_ANTHROPIC_KEY: "sk-ant-test" }
    const services = Layer.provideMerge(LlmRouter.layer(config, { baseDir: __dirname, env }), Pump.layerServicesFor(organism))
    return yield* withPump(organism, ({ events, pump }) =>
      Effect.gen(function*() {
        yield* pump.inject("assistant", new TextInput({ text: "hello", source: "test", user: "" }))
        yield* pump.awaitIdle
        const all: ReadonlyArray<PumpEvent> = yield* events()
        // The journal's records of these events, as a journal writes them (seq 0 is its header).
        const records = all.flatMap((e) => recordOf(0, e) ?? []).map((r, i) => ({ ...r, seq: i + 1 }))
        return { events: all, requests: server.requests() as ReadonlyArray<RecordedRequest>, records }
      }), services)
  }).pipe(Effect.scoped)

const llmEvents = (events: ReadonlyArray<PumpEvent>) =>
  events.filter((e) => e._tag === "LlmCallStarted" || e._tag === "LlmCallCompleted" || e._tag === "LlmCallFailed")

const local = (server: MockLlmServer.Service): LlmConfigInput => ({
  retries: 1,
  backoff_base: "1 millis",
  backoff_max: "1 millis",
  prices: { m: { input_per_million: 1000, output_per_million: 2000 } },
  backends: [{ name: "local", provider: "openai-compatible", base_url: server.openAiUrl, models: ["m"] }]
})

describe("model calls as events", () => {
  it.live("a retried call: started, failed (not final), started, completed — with tokens, cost, latency", () =>
    Effect.gen(function*() {
      const { events, records } = yield* run(
        {
          responses: [
            { status: 500, error: "boom" },
            { text: "<Respond>hi</Respond>", usage: { prompt_tokens: 100, completion_tokens: 50 } }
          ]
        },
        local
      )
      const calls = llmEvents(events)
      expect(calls.map((e) => [e._tag, e.attempt, e.backend, e.model, e.agent])).toEqual([
        ["LlmCallStarted", 1, "local", "m", "assistant"],
        ["LlmCallFailed", 1, "local", "m", "assistant"],
        ["LlmCallStarted", 2, "local", "m", "assistant"],
        ["LlmCallCompleted", 2, "local", "m", "assistant"]
      ])
      const root = events.find((e) => e._tag === "MessageReceived" && e.to === "assistant")!.thread
      for (const e of calls) {
        expect(e.root).toBe(root)
        expect(e.call).toBe(calls[0]!.call)
      }
      const failed = calls[1] as Extract<PumpEvent, { _tag: "LlmCallFailed" }>
      expect(failed.final).toBe(false)
      expect(failed.status).toBe(500)
      const done = calls[3] as Extract<PumpEvent, { _tag: "LlmCallCompleted" }>
      expect(done.inputTokens).toBe(100)
      expect(done.outputTokens).toBe(50)
      expect(done.costUsd).toBeCloseTo(0.1 + 0.1, 10)
      expect(done.finishReason).toBe("stop")
      expect(done.truncated).toBe(false)
      expect(done.latencyMs).toBeGreaterThan(0)
      expect(done.time).toBeGreaterThanOrEqual(calls[2]!.time)

      // The journal keeps each step as a "model-call" record, and reads them back.
      const kept = records.filter((r) => r.type === "model-call")
      expect(kept.map((r) => (r as { step: string }).step)).toEqual(["started", "failed", "started", "completed"])
      // --json: the event's fields under its type.
      const json = eventToJson(done)
      expect(json).toMatchObject({ type: "LlmCallCompleted", backend: "local", model: "m", inputTokens: 100, outputTokens: 50, finishReason: "stop" })
      // The console: the answer is shown; the failed attempt only with --verbose.
      expect(renderEvent(done, "console", false)).toMatch(/assistant ← m on local: \d+ ms, 100 in \+ 50 out tokens, \$0\.2000, attempt 2$/)
      expect(renderEvent(failed, "console", false)).toBeUndefined()
      expect(renderEvent(failed, "console", true)).toMatch(/attempt 1 on local failed \(500\)/)
    }))

  it.live("a call that gives up ends with a final LlmCallFailed, shown on the console", () =>
    Effect.gen(function*() {
      const { events } = yield* run({ default: { status: 503, error: "down" } }, local)
      const calls = llmEvents(events)
      expect(calls.map((e) => `${e._tag}:${e.attempt}`)).toEqual([
        "LlmCallStarted:1",
        "LlmCallFailed:1",
        "LlmCallStarted:2",
        "LlmCallFailed:2",
        "LlmCallFailed:2"
      ])
      const last = calls[4] as Extract<PumpEvent, { _tag: "LlmCallFailed" }>
      expect(last.final).toBe(true)
      expect(last.reason).toBe("unavailable")
      expect(renderEvent(last, "console", false)).toMatch(/model call llm-\d+ failed \(unavailable\) after 2 attempts/)
    }))

  it.live("a journal written with model calls reads back, each step decoded", () =>
    Effect.gen(function*() {
      const { records } = yield* run({ default: { text: "<Respond>ok</Respond>" } }, local)
      const steps = records.filter((r) => r.type === "model-call")
      expect(steps).toHaveLength(2)
      const path = join(tmpdir(), `llm-events-${process.pid}.journal`)
      const header = new Header({ type: "header", seq: 0, time: 0, format: "xml-organism-journal", version: 1, organism: "t", startedAt: "", source: null })
      writeFileSync(path, [header, ...records].map((r) => JSON.stringify(r)).join("\n") + "\n")
      const read = yield* Journal.read(path).pipe(Effect.ensuring(Effect.sync(() => rmSync(path))))
      expect(read.records.filter((r) => r.type === "model-call")).toEqual(steps)
    }))
})

describe("an answer cut at the output limit (finish reason length)", () => {
  const wires = [
    { name: "Chat Completions", backend: (s: MockLlmServer.Service) => ({ provider: "openai-compatible" as const, base_url: s.openAiUrl }) },
    { name: "OpenAI Responses", backend: (s: MockLlmServer.Service) => ({ provider: "openai" as const, base_url: s.openAiUrl, api_key_env: "TEST_OPENAI_KEY" }) },
    { name: "Anthropic Messages", backend: (s: MockLlmServer.Service) => ({ provider: "anthropic" as const, base_url: s.url, api_key_env: "TEST_ANTHROPIC_KEY" }) }
  ]
  for (const stream of [false, true]) {
    for (const wire of wires) {
      it.live(`${wire.name}${stream ? ", streamed" : ""}: not sent; the model is told and answers again`, () =>
        Effect.gen(function*() {
          const { events, requests } = yield* run(
            {
              responses: [
                // A payload that would parse: cut answers are never acted on, whatever they say.
                { text: "<Respond>the first half of a long</Respond>", finish_reason: "length" },
                { text: "<Respond>short</Respond>" }
              ]
            },
            (server) => ({ retries: 0, stream, backends: [{ name: "local", ...wire.backend(server), models: ["m"] }] })
          )
          const done = events.filter((e) => e._tag === "LlmCallCompleted")
          expect(done.map((e) => [e.finishReason, e.truncated])).toEqual([["length", true], ["stop", false]])
          expect(renderEvent(done[0]!, "console", false)).toMatch(/cut at the output limit \(finish reason length\)/)
          // The second request carries the cut answer and the notice.
          expect(requests).toHaveLength(2)
          expect(JSON.stringify(requests[1]!.body)).toContain(JSON.stringify(CUT_AT_LIMIT).slice(1, -1))
          // Only the complete answer reached the console.
          const answers = events.flatMap((e) => (e._tag === "MessageReceived" && e.to === "console" ? [e.payload] : []))
          expect(answers).toHaveLength(1)
          expect(answers[0]).toContain("short")
          expect(answers[0]).not.toContain("first half")
        }))
    }
  }

  it.live("cut every time: the caller hears why, nothing of the cut answers is sent", () =>
    Effect.gen(function*() {
      const { events, requests } = yield* run(
        { default: { text: "<Respond>cut</Respond>", finish_reason: "length" } },
        (server) => ({ retries: 0, backends: [{ name: "local", provider: "openai-compatible", base_url: server.openAiUrl, models: ["m"] }] })
      )
      // The agent's default output retries: 2, so three requests in all.
      expect(requests).toHaveLength(3)
      const answers = events.flatMap((e) => (e._tag === "MessageReceived" && e.to === "console" ? [e.payload] : []))
      expect(answers).toHaveLength(1)
      expect(answers[0]).toMatch(/SystemError[\s\S]*cut at the output limit every time/)
    }))
})
