/**
 * LLM agents on native tool calls (`protocol: tools`), end to end: organisms loaded from
 * YAML, a real HTTP model server on loopback (the mock) speaking each provider's wire, the
 * LlmRouter between them. A tool call becomes an envelope the pipeline judges; the replies
 * return to the model as tool results, one per call, in call order.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { stringify } from "yaml"
import { layerForOrganism } from "../src/config/layerForOrganism.js"
import type { RecordedRequest } from "../src/llm/MockLlmServer.js"
import { MockLlmServer } from "../src/llm/MockLlmServer.js"
import type { MockScriptInput } from "../src/llm/MockScript.js"
import { agentOf, withPump } from "./support/pump.js"
import { loadOrganism } from "./support/files.js"
import { LlmRouter } from "../src/services/LlmRouter.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { argumentsSchema, argumentsToXml } from "../src/pipeline/agents/AgentTools.js"
import { Draft, ResearchNotes, WriteRequest } from "../examples/agents/payloads.js"
import { organism } from "./support/processes.js"

const example = join(__dirname, "..", "examples", "agents")
const dir = mkdtempSync(join(tmpdir(), "organism-tools-"))
process.env.XO_TOOLS_TEST_KEY = "test-key"

type Wire = "responses" | "chat" | "anthropic"

const runFile = (file: string) =>
  Effect.gen(function*() {
    const loaded = yield* loadOrganism(file)
    return yield* withPump(loaded.organism, ({ events, pump }) =>
      Effect.gen(function*() {
        yield* pump.awaitIdle
        return { events: yield* events(), pump, usage: (yield* LlmRouter).usage() }
      }), layerForOrganism(loaded))
  }).pipe(Effect.provide(XmlEngine.layer))

const backendFor = (wire: Wire, server: MockLlmServer.Service) =>
  wire === "anthropic"
    ? { name: "m", provider: "anthropic", base_url: server.url, models: ["mock-1"], api_key_env: "XO_TOOLS_TEST_KEY" }
    : wire === "chat"
    ? { name: "m", provider: "openai-compatible", base_url: server.openAiUrl, models: ["mock-1"] }
    : { name: "m", provider: "openai", base_url: server.openAiUrl, models: ["mock-1"], api_key_env: "XO_TOOLS_TEST_KEY" }

/** A coordinator on tools with a researcher and a writer (both answer with <Respond>). */
const organismOn = (
  name: string,
  wire: Wire,
  server: MockLlmServer.Service,
  extra: Record<string, unknown> = {},
  llm: Record<string, unknown> = {}
) => {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(
    file,
    stringify({
      organism: { name },
      llm: { retries: 0, backends: [backendFor(wire, server)], ...llm },
      listeners: [
        {
          name: "coordinator",
          agent: true,
          protocol: "tools",
          payload: "TextInput",
          accepts: [`${example}/payloads.ts#ResearchNotes`, `${example}/payloads.ts#Draft`],
          peers: ["researcher", "writer"],
          prompt: "You coordinate.",
          ...extra
        },
        { name: "researcher", agent: true, payload: `${example}/payloads.ts#ResearchRequest`, prompt: "You research." },
        { name: "writer", agent: true, payload: `${example}/payloads.ts#WriteRequest`, prompt: "You write." }
      ],
      boot: [{ to: "coordinator", payload: "<TextInput><Text>Explain envelopes.</Text></TextInput>" }]
    })
  )
  return file
}

const NOTES = "<Respond><ResearchNotes><Topic>t</Topic><Notes>n1</Notes></ResearchNotes></Respond>"

/** The tool results a request carries, in its wire's own form: [call id, content, is error]. */
const toolResultsOf = (wire: Wire, r: RecordedRequest): Array<[string, string, boolean]> => {
  const b = r.body as any
  if (wire === "chat") return b.messages.filter((m: any) => m.role === "tool").map((m: any) => [m.tool_call_id, m.content, false])
  if (wire === "responses") {
    return b.input.filter((m: any) => m.type === "function_call_output").map((m: any) => [m.call_id, JSON.parse(m.output), false])
  }
  return b.messages.flatMap((m: any) =>
    Array.isArray(m.content)
      ? m.content.filter((p: any) => p.type === "tool_result").map((p: any) => [p.tool_use_id, JSON.parse(p.content), p.is_error])
      : []
  )
}

const coordinatorRequests = (server: MockLlmServer.Service) => server.requests().filter((r) => agentOf(r) === "coordinator")

describe("the agents example with protocol: tools", () => {
  it.effect("runs on its scripted model: research, writing, an answer for the console", () =>
    Effect.gen(function*() {
      const { events, pump, usage } = yield* runFile(join(example, "organism-tools.yaml"))
      const hops = events.flatMap((e) => (e._tag === "MessageReceived" ? [`${e.from} → ${e.to}: ${e.payloadType}`] : []))
      expect(hops.filter((h) => !h.startsWith("system"))).toEqual([
        "console → coordinator: TextInput",
        "coordinator → researcher: ResearchRequest",
        "researcher → coordinator: ResearchNotes",
        "coordinator → writer: WriteRequest",
        "writer → coordinator: Draft",
        "coordinator → console: TextOutput"
      ])
      const request = events.find((e) => e._tag === "MessageReceived" && e.to === "writer")
      // The tool call's arguments, written as the payload's XML: a list as repeated elements.
      expect(request).toMatchObject({
        payload: "<WriteRequest><Notes>An envelope carries from, to and thread.</Notes><Notes>Payloads are validated against an XSD.</Notes><Audience>beginners</Audience></WriteRequest>"
      })
      const answer = events.find((e) => e._tag === "MessageReceived" && e.to === "console")
      expect(answer).toMatchObject({ payload: expect.stringMatching(/XML envelopes, explained/) })
      expect(usage.totals.requests).toBe(5)
      expect(pump.counters()).toMatchObject({ rejected: 0, guardStopped: 0 })
    }))
})

const combos = (["responses", "chat", "anthropic"] as const).flatMap((wire) => [false, true].map((stream) => [wire, stream] as const))

for (const [wire, stream] of combos) {
  describe(`tool calls on ${wire}, ${stream ? "streamed" : "plain"}`, () => {
    it.effect("three calls in one answer: sent in parallel, judged by the pipeline, their results back in call order", () =>
      Effect.gen(function*() {
        const script: MockScriptInput = {
          responses: [
            { match: { system: "You coordinate", tool_result: "." }, text: "All done.", times: "always" },
            {
              match: { system: "You coordinate" },
              text: "Let me ask around.",
              tool_calls: [
                { name: "ResearchRequest", arguments: { topic: "tides" } },
                // No audience: the XSD refuses it, and the model hears why.
                { name: "WriteRequest", arguments: { notes: ["x"] } },
                { name: "ResearchRequest", arguments: { topic: "moons & <planets>" } }
              ]
            },
            { match: { system: "You research" }, text: NOTES, times: "always" }
          ]
        }
        const server = yield* MockLlmServer.make({ script })
        const { events } = yield* runFile(organismOn(`fanout-${wire}-${stream}`, wire, server, {}, { stream }))
        const sent = events.flatMap((e) => (e._tag === "MessageReceived" && e.from === "coordinator" ? [e.payload] : []))
        expect(sent).toEqual([
          "<ResearchRequest><Topic>tides</Topic></ResearchRequest>",
          "<ResearchRequest><Topic>moons &amp; &lt;planets&gt;</Topic></ResearchRequest>",
          expect.stringContaining("All done.")
        ])
        expect(events.some((e) => e._tag === "MessageRejected" && e.payloadType === "WriteRequest")).toBe(true)

        const calls = coordinatorRequests(server)
        expect(calls).toHaveLength(2)
        expect(calls.every((r) => r.status === 200)).toBe(true)
        const results = toolResultsOf(wire, calls[1]!)
        expect(results).toHaveLength(3)
        expect(results[0]![1]).toContain("<ResearchNotes>")
        expect(results[1]![1]).toMatch(/rejected as invalid.*Audience|Audience.*expected/is)
        expect(results[2]![1]).toContain("<ResearchNotes>")
        // Call order: the ids of the calls, as the model made them.
        const ids = results.map((r) => r[0])
        expect(new Set(ids).size).toBe(3)
        if (wire === "anthropic") expect(results.map((r) => r[2])).toEqual([false, true, false])
        // The text written alongside the calls reached nobody, and the model is told.
        expect(JSON.stringify(calls[1]!.body)).toMatch(/reached nobody/)
        expect(calls.every((r) => r.stream === stream)).toBe(true)
      }).pipe(Effect.scoped))
  })
}

describe("several calls to one peer", () => {
  it.effect("each reply answers its own call, whatever order they finish in", () =>
    Effect.gen(function*() {
      const server = yield* MockLlmServer.make({
        script: {
          responses: [
            { match: { system: "You coordinate", tool_result: "." }, text: "Both in.", times: "always" },
            {
              match: { system: "You coordinate" },
              tool_calls: [
                { name: "ResearchRequest", arguments: { topic: "slow" } },
                { name: "ResearchRequest", arguments: { topic: "fast" } }
              ]
            },
            // The first call's answer takes longer: its reply arrives second. (The researcher's
            // last user turn holds both requests once both have arrived: match its end.)
            {
              match: { system: "You research", user: "slow</Topic></ResearchRequest>$" },
              delay: "400ms",
              text: "<Respond><ResearchNotes><Topic>slow</Topic><Notes>s</Notes></ResearchNotes></Respond>",
              times: "always"
            },
            {
              match: { system: "You research", user: "fast</Topic></ResearchRequest>$" },
              text: "<Respond><ResearchNotes><Topic>fast</Topic><Notes>f</Notes></ResearchNotes></Respond>",
              times: "always"
            }
          ]
        }
      })
      const { events } = yield* runFile(organismOn("same-peer", "chat", server))
      const replies = events.flatMap((e) => (e._tag === "MessageReceived" && e.from === "researcher" ? [e.payload] : []))
      expect(replies[0]).toContain("<Topic>fast</Topic>")
      const results = toolResultsOf("chat", coordinatorRequests(server)[1]!)
      expect(results.map((r) => /<Topic>(\w+)<\/Topic>/.exec(r[1])?.[1])).toEqual(["slow", "fast"])
    }).pipe(Effect.scoped))
})

describe("tool calls that go wrong are told to the model", () => {
  it.effect("a tool that was not offered: nothing is sent, the model is told, its next answer goes to the caller", () =>
    Effect.gen(function*() {
      const server = yield* MockLlmServer.make({
        script: {
          responses: [
            { match: { system: "You coordinate" }, tool_calls: [{ name: "LaunchRockets", arguments: {} }] },
            { match: { system: "You coordinate", user: "could not be read" }, text: "Sorry, I cannot.", times: "always" }
          ]
        }
      })
      const { events, pump } = yield* runFile(organismOn("unknown-tool", "chat", server))
      expect(coordinatorRequests(server)).toHaveLength(2)
      expect(JSON.stringify(coordinatorRequests(server)[1]!.body)).toMatch(/LaunchRockets/)
      const answer = events.find((e) => e._tag === "MessageReceived" && e.to === "console")
      expect(answer).toMatchObject({ payloadType: "TextOutput", payload: expect.stringMatching(/Sorry, I cannot/) })
      expect(pump.threads()).toEqual({ roots: 0, nodes: 0 })
    }).pipe(Effect.scoped))

  it.effect("arguments that are not JSON, calls past max_tool_calls, a peer that never replies: each an error result", () =>
    Effect.gen(function*() {
      const server = yield* MockLlmServer.make({
        script: {
          responses: [
            { match: { system: "You coordinate" }, tool_calls: [{ name: "ResearchRequest", arguments: "{\"topic\": " }] },
            {
              match: { system: "You coordinate", user: "could not be read" },
              tool_calls: [
                { name: "ResearchRequest", arguments: { topic: "silence" } },
                { name: "ResearchRequest", arguments: { topic: "too many" } }
              ]
            },
            { match: { system: "You coordinate", tool_result: "." }, text: "Nobody answered.", times: "always" },
            // The researcher writes nothing: its branch ends without a reply.
            { match: { system: "You research" }, text: "", times: "always" }
          ]
        }
      })
      // Streamed: Anthropic's tool input arrives as JSON in pieces, which can be broken.
      const { events, pump } = yield* runFile(organismOn("errors", "anthropic", server, { max_tool_calls: 1 }, { stream: true }))
      const calls = coordinatorRequests(server)
      expect(calls).toHaveLength(3)
      expect(JSON.stringify(calls[1]!.body)).toMatch(/tool call parameters|could not be read/)
      const results = toolResultsOf("anthropic", calls[2]!)
      expect(results.map((r) => [r[1], r[2]])).toEqual([
        ["Your message to researcher ended without a reply: researcher answered nobody.", true],
        [expect.stringMatching(/^not sent: at most 1 tool calls per answer/), true]
      ])
      expect(server.requests().filter((r) => agentOf(r) === "researcher")).toHaveLength(1)
      const answer = events.find((e) => e._tag === "MessageReceived" && e.to === "console")
      expect(answer).toMatchObject({ payload: expect.stringMatching(/Nobody answered/) })
      expect(pump.threads()).toEqual({ roots: 0, nodes: 0 })
    }).pipe(Effect.scoped))
})

describe("payload types as tools", () => {
  it("the JSON Schema comes from the payload's Effect Schema; arguments are written in the shape its XSD has", () => {
    expect(argumentsSchema(WriteRequest)).toMatchObject({
      type: "object",
      required: ["notes", "audience"],
      properties: { notes: { type: "array", items: { type: "string" } }, audience: { type: "string" } }
    })
    expect(argumentsSchema(Draft)).toMatchObject({ type: "object", required: ["title", "text"] })
    // Declared order whatever the JSON order; unknown keys after, for the XSD to refuse.
    expect(Either.getOrThrow(argumentsToXml(ResearchNotes, { notes: ["a", "b"], extra: 1, topic: "t" }))).toBe(
      "<Topic>t</Topic><Notes>a</Notes><Notes>b</Notes><Extra>1</Extra>"
    )
    expect(argumentsToXml(ResearchNotes, ["not", "an", "object"])._tag).toBe("Left")
    expect(argumentsToXml(ResearchNotes, { "bad key!": 1 })._tag).toBe("Left")
  })
})

describe("record and replay offline, on tool calls", () => {
  it("the journal keeps the tool calls; replayed with no model, the conversation is identical", async () => {
    const file = join(example, "organism-tools.yaml")
    const journal = join(dir, "tools.jsonl")
    const run = await organism(["run", file, "--until-idle", "--journal", journal])
    expect(run.code, run.stderr).toBe(0)
    // The console shows which tools each answer called.
    expect(run.stdout).toMatch(/coordinator ← mock-1 .*finish reason tool-calls: ResearchRequest/)
    const completed = readFileSync(journal, "utf8").trim().split("\n").map((l) => JSON.parse(l))
      .filter((r) => r.type === "model-call" && r.step === "completed")
    expect(completed[0].toolCalls).toEqual([{ id: expect.any(String), name: "ResearchRequest", arguments: { topic: "XML envelopes" } }])
    // The backend pointed at a port nobody listens on: offline, it is never asked.
    const unreachable = join(example, `.test-tools-unreachable-${process.pid}.yaml`)
    writeFileSync(
      unreachable,
      readFileSync(file, "utf8").replace(
        /- name: scripted\n\s+provider: mock\n\s+script: \.\/mock-script-tools\.yaml/,
        "- name: scripted\n      provider: openai-compatible\n      base_url: http://127.0.0.1:9/v1"
      )
    )
    try {
      const replay = await organism(["replay", journal, "--organism", unreachable, "--offline"])
      expect(replay.code, replay.stdout + replay.stderr).toBe(0)
      expect(replay.stdout).toContain("identical: the same thread trees and payloads")
    } finally {
      rmSync(unreachable)
    }
  }, 120_000)
})

describe("protocol in the organism file", () => {
  const problemsOf = (name: string, listeners: ReadonlyArray<Record<string, unknown>>) => {
    const file = join(dir, `${name}.yaml`)
    writeFileSync(file, stringify({ organism: { name }, llm: { backends: [{ name: "m", provider: "mock", models: ["mock-1"] }] }, listeners }))
    return Effect.map(Effect.either(loadOrganism(file)), (result) => {
      if (Either.isRight(result)) throw new Error("expected the organism file to be refused")
      return result.left.problems.map((p) => `${p.key}: ${p.message}`)
    }).pipe(Effect.provide(XmlEngine.layer))
  }
  const agent = { name: "a", agent: true, payload: "TextInput", prompt: "p" }

  it.effect("a misspelt protocol, protocol on a handler, max_tool_calls without tools: each named at its key", () =>
    Effect.gen(function*() {
      expect(yield* problemsOf("typo", [{ ...agent, protocol: "tool" }])).toEqual([
        `listeners[0] "a".protocol: expected "xml" or "tools", got "tool"`
      ])
      const handlerFile = join(dir, "handler.ts")
      writeFileSync(handlerFile, "export const h = () => undefined\n")
      expect(yield* problemsOf("handler", [{ name: "h", payload: "TextInput", handler: `${handlerFile}#h`, protocol: "tools" }])).toEqual([
        expect.stringMatching(/^listeners\[0\] "h"\.protocol: protocol is how an LLM agent/)
      ])
      expect(yield* problemsOf("max", [{ ...agent, max_tool_calls: 3 }])).toEqual([
        `listeners[0] "a".max_tool_calls: max_tool_calls goes with protocol: tools`
      ])
    }))
})
