/**
 * LLM agents end to end: organisms loaded from YAML, run on the services `layerForOrganism`
 * builds, calling a real HTTP model server on loopback (the mock, speaking the Chat
 * Completions protocol) through the LlmRouter — budgets included.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parse, stringify } from "yaml"
import { layerForOrganism } from "../src/config/layerForOrganism.js"
import { loadOrganism } from "./support/files.js"
import { MockLlmServer } from "../src/llm/MockLlmServer.js"
import { BudgetRegistry } from "../src/services/BudgetRegistry.js"
import { LlmRouter } from "../src/services/LlmRouter.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { agentOf, turnsOf, withPump } from "./support/pump.js"

const example = join(__dirname, "..", "examples", "agents")
const dir = mkdtempSync(join(tmpdir(), "organism-agents-"))

/** Loads an organism file and runs it until idle; returns its events and the pump. */
const runFile = (file: string) =>
  Effect.gen(function*() {
    const loaded = yield* loadOrganism(file)
    return yield* withPump(loaded.organism, ({ events, pump }) =>
      Effect.gen(function*() {
        yield* pump.awaitIdle
        return { events: yield* events(), pump, usage: (yield* LlmRouter).usage(), budgets: yield* (yield* BudgetRegistry).stats }
      }), layerForOrganism(loaded))
  }).pipe(Effect.provide(XmlEngine.layer))

/** The example's script with fixed usage figures (500 tokens a call), so budgets are exact. */
const scriptWithUsage = () => {
  const script = parse(readFileSync(join(example, "mock-script.yaml"), "utf8"))
  for (const r of script.responses) r.usage = { prompt_tokens: 400, completion_tokens: 100 }
  return script
}

/** The example organism, on a model server of the test's, with a token cap for the coordinator. */
const exampleOn = (name: string, server: MockLlmServer.Service, coordinatorCap: number) => {
  const organism = parse(readFileSync(join(example, "organism.yaml"), "utf8"))
  organism.llm = { retries: 0, backends: [{ name: "local", provider: "openai-compatible", base_url: server.openAiUrl, models: ["mock-1"] }] }
  for (const l of organism.listeners) {
    l.payload = l.payload.replace("./", `${example}/`)
    l.accepts = l.accepts?.map((a: string) => a.replace("./", `${example}/`))
    if (l.name === "coordinator") l.max_tokens_per_thread = coordinatorCap
  }
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, stringify(organism))
  return file
}

describe("LLM agents from YAML, end to end", () => {
  it.effect("the agents example runs on its scripted model: research, writing, an answer for the console", () =>
    Effect.gen(function*() {
      const { events, pump, usage } = yield* runFile(join(example, "organism.yaml"))
      const hops = events.flatMap((e) => (e._tag === "MessageReceived" ? [`${e.from} → ${e.to}: ${e.payloadType}`] : []))
      expect(hops.filter((h) => !h.startsWith("system"))).toEqual([
        "console → coordinator: TextInput",
        "coordinator → researcher: ResearchRequest",
        "researcher → coordinator: ResearchNotes",
        "coordinator → writer: WriteRequest",
        "writer → coordinator: Draft",
        "coordinator → console: TextOutput"
      ])
      const answer = events.find((e) => e._tag === "MessageReceived" && e.to === "console")
      expect(answer).toMatchObject({ payload: expect.stringMatching(/XML envelopes, explained/) })
      expect(usage.totals.requests).toBe(5)
      expect(Object.keys(usage.byAgent).sort()).toEqual(["coordinator", "researcher", "writer"])
      expect(pump.counters()).toMatchObject({ rejected: 0, guardStopped: 0 })
    }))

  it.effect("a budget warning reaches the agent: its next model call shows it", () =>
    Effect.gen(function*() {
      const server = yield* MockLlmServer.make({ script: scriptWithUsage() })
      // 500 of 600 after its first call (83 %): the coordinator is warned, and its later
      // turns carry the warning into the conversation it sends the model.
      const { events } = yield* runFile(exampleOn("warned", server, 600))
      const coordinatorCalls = server.requests().filter((r) => agentOf(r) === "coordinator")
      expect(coordinatorCalls.length).toBe(2)
      expect(turnsOf(coordinatorCalls[0]!)).not.toMatch(/BudgetWarning/)
      expect(turnsOf(coordinatorCalls[1]!)).toMatch(/<BudgetWarning>.*<Severity>warning<\/Severity>/)
      // Its second call took it to 1000 of 600: the third turn is refused before any request.
      const guard = events.find((e) => e._tag === "GuardTripped")
      expect(guard).toMatchObject({ guard: "token-budget", listener: "coordinator" })
    }).pipe(Effect.scoped))

  it.effect("an exhausted budget stops the agent before any request is sent", () =>
    Effect.gen(function*() {
      const server = yield* MockLlmServer.make({ script: scriptWithUsage() })
      // Exactly used up by the coordinator's first call.
      const { events, pump } = yield* runFile(exampleOn("exhausted", server, 500))
      expect(server.requests().map(agentOf)).toEqual(["coordinator", "researcher"])
      const guards = events.filter((e) => e._tag === "GuardTripped")
      expect(guards).toHaveLength(1)
      expect(guards[0]).toMatchObject({ guard: "token-budget", listener: "coordinator" })
      expect((guards[0] as { detail: string }).detail).toMatch(/coordinator's own token budget is exhausted .* 500 of 500 tokens/)
      // The console hears why its request went unanswered.
      const toConsole = events.find((e) => e._tag === "MessageReceived" && e.to === "console")
      expect(toConsole).toMatchObject({ payloadType: "SystemError", payload: expect.stringMatching(/token budget/) })
      expect(pump.threads()).toEqual({ roots: 0, nodes: 0 })
    }).pipe(Effect.scoped))

  it.effect("the router shares the pump's budgets: usage charged by calls is the conversation's", () =>
    Effect.gen(function*() {
      const server = yield* MockLlmServer.make({ script: scriptWithUsage() })
      const { budgets, usage } = yield* runFile(exampleOn("shared", server, 100_000))
      expect(usage.totals).toMatchObject({ requests: 5, promptTokens: 2000, completionTokens: 500 })
      expect(budgets).toMatchObject({ totalTokens: 2500 })
      expect(server.requests().every((r) => r.outcome === "completed")).toBe(true)
    }).pipe(Effect.scoped))
})
