/**
 * Native tool calls through the LLM router, over real loopback HTTP against the mock model:
 * on OpenAI Responses, Chat Completions and Anthropic Messages, plain and streamed — the
 * offered tools reach the server in the wire's own form, scripted calls come back in order,
 * tool results go back in the next request, and calls that cannot be read are an answer
 * (`toolCallProblem`), not a retried failure.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { LlmMessage, LlmTool } from "../src/domain/Llm.js"
import { MockLlmServer } from "../src/llm/MockLlmServer.js"
import type { MockScriptInput } from "../src/llm/MockScript.js"
import { ask, fast, makeRouter } from "./support/llmRouter.js"

type Wire = "responses" | "chat" | "anthropic"
const wires: ReadonlyArray<Wire> = ["responses", "chat", "anthropic"]

const backendFor = (wire: Wire, server: MockLlmServer.Service) =>
  wire === "anthropic"
    ? { name: "m", provider: "anthropic" as const, base_url: server.url, models: ["mock-llm"], api_key_env: "KEY" }
    : wire === "chat"
    ? { name: "m", provider: "openai-compatible" as const, base_url: server.openAiUrl, models: ["mock-llm"] }
    : { name: "m", provider: "openai" as const, base_url: server.openAiUrl, models: ["mock-llm"], api_key_env: "KEY" }

const tools: ReadonlyArray<LlmTool> = [
  {
    name: "Search",
    description: "Sends <Search> to researcher.",
    parameters: { type: "object", properties: { query: { type: "string" } }, required: ["query"], additionalProperties: false }
  },
  {
    name: "Draft",
    description: "Sends <Draft> to writer.",
    parameters: { type: "object", properties: { text: { type: "string" } }, required: ["text"], additionalProperties: false }
  }
]

const setup = (wire: Wire, script: MockScriptInput) =>
  Effect.gen(function*() {
    const server = yield* MockLlmServer.make({ script })
    const { router } = yield* makeRouter({ ...fast, retries: 1, backends: [backendFor(wire, server)] }, { env: { KEY: "k" } })
    return { server, router }
  })

/** Where each wire keeps the offered tools' names in the request body. */
const offeredNames = (wire: Wire, body: any): Array<string> =>
  (body.tools as Array<any>).map((t) => (wire === "chat" ? t.function.name : t.name))

const schemaOf = (wire: Wire, body: any, i: number) =>
  wire === "chat" ? body.tools[i].function.parameters : wire === "anthropic" ? body.tools[i].input_schema : body.tools[i].parameters

for (const wire of wires) {
  for (const stream of [false, true]) {
    describe(`${wire}, ${stream ? "streamed" : "plain"}`, () => {
      it.scopedLive("offered tools arrive in the wire's form; two calls come back in order; their results go back", () =>
        Effect.gen(function*() {
          const { router, server } = yield* setup(wire, {
            responses: [
              {
                match: { tool: "Search" },
                text: "",
                tool_calls: [
                  { name: "Search", arguments: { query: "tides" } },
                  { name: "Draft", arguments: { text: "A <b>bold</b> draft" } }
                ]
              },
              { match: { tool_result: "Notes" }, text: "done after tools", times: "always" }
            ]
          })
          const first = yield* router.complete(ask("research tides", { tools, stream }))
          expect(first.toolCallProblem).toBeUndefined()
          expect(first.toolCalls?.map((c) => [c.name, c.arguments])).toEqual([
            ["Search", { query: "tides" }],
            ["Draft", { text: "A <b>bold</b> draft" }]
          ])
          expect(first.finishReason).toBe("tool-calls")
          const body = server.requests()[0]!.body as any
          expect(offeredNames(wire, body)).toEqual(["Search", "Draft"])
          expect(schemaOf(wire, body, 0)).toMatchObject({ type: "object", properties: { query: { type: "string" } }, required: ["query"] })

          // The next turn: the calls, then one result per call, in call order.
          const calls = first.toolCalls!
          const messages: Array<LlmMessage> = [
            { role: "user", content: "research tides" },
            { role: "assistant", content: "", toolCalls: calls },
            {
              role: "tool",
              content: "",
              toolResults: [
                { id: calls[0]!.id, name: "Search", content: "<Notes><Text>tides follow the moon</Text></Notes>", isError: false },
                { id: calls[1]!.id, name: "Draft", content: "writer is busy", isError: true }
              ]
            }
          ]
          const second = yield* router.complete(ask("", { messages, tools, stream }))
          expect(second.text).toBe("done after tools")
          expect(second.toolCalls).toEqual([])
          // The server took the follow-up (a malformed one would have been a 400): results in order.
          const rec = server.requests()[1]!
          expect(rec.status).toBe(200)
          const b = rec.body as any
          const results = wire === "chat"
            ? b.messages.filter((m: any) => m.role === "tool").map((m: any) => [m.tool_call_id, m.content])
            : wire === "responses"
            ? b.input.filter((m: any) => m.type === "function_call_output").map((m: any) => [m.call_id, m.output])
            : b.messages.at(-1).content.filter((p: any) => p.type === "tool_result").map((p: any) => [p.tool_use_id, p.content])
          expect(results.map((r: Array<string>) => r[0])).toEqual([calls[0]!.id, calls[1]!.id])
          expect(results[0][1]).toContain("tides follow the moon")
          if (wire === "anthropic") {
            expect(b.messages.at(-1).content[1].is_error).toBe(true)
          }
        }))

      it.scopedLive("a tool that was not offered, or arguments that are not JSON: a problem to tell the model, not retried", () =>
        Effect.gen(function*() {
          const { router, server } = yield* setup(wire, {
            responses: [
              { tool_calls: [{ name: "Launch", arguments: { missiles: true } }] },
              // Anthropic sends `input` as an object: only its stream (JSON in pieces) can break it.
              { tool_calls: [wire === "anthropic" && !stream ? { name: "Erase", arguments: {} } : { name: "Search", arguments: "{\"query\": \"tid" }] }
            ]
          })
          const unknown = yield* router.complete(ask("go", { tools, stream }))
          expect(unknown.toolCalls ?? []).toEqual([])
          expect(unknown.toolCallProblem).toMatch(/Launch/)
          const invalid = yield* router.complete(ask("go", { tools, stream }))
          expect(invalid.toolCallProblem).toMatch(wire === "anthropic" && !stream ? /Erase/ : /Search/)
          // One request each: the model got it wrong, not the backend.
          expect(server.requests()).toHaveLength(2)
        }))
    })
  }
}

describe("requests the providers would refuse", () => {
  it.scopedLive("a tool result without its call is the provider's 400, in its own error shape; Anthropic counts tokens", () =>
    Effect.gen(function*() {
      const server = yield* MockLlmServer.make({})
      const post = (path: string, body: unknown) =>
        Effect.promise(async () => {
          const res = await fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
          return { status: res.status, body: (await res.json()) as any }
        })
      const chat = yield* post("/v1/chat/completions", {
        model: "m",
        messages: [{ role: "user", content: "hi" }, { role: "tool", tool_call_id: "call_1", content: "x" }]
      })
      expect(chat.status).toBe(400)
      expect(chat.body.error).toMatchObject({ type: "invalid_request_error" })
      expect(chat.body.error.message).toMatch(/tool_calls/)

      const responses = yield* post("/v1/responses", { model: "m", input: [{ type: "function_call_output", call_id: "nope", output: "x" }] })
      expect(responses.status).toBe(400)
      expect(responses.body.error.message).toMatch(/No tool call found/)

      // OpenAI's structured outputs refuse a strict schema with an optional property.
      const strict = yield* post("/v1/responses", {
        model: "m",
        input: "hi",
        tools: [{ type: "function", name: "Search", strict: true, parameters: { type: "object", properties: { q: { type: "string" } }, required: [], additionalProperties: false } }]
      })
      expect(strict.status).toBe(400)
      expect(strict.body.error.message).toMatch(/Invalid schema for function 'Search'.*Missing 'q'/)

      const anthropic = yield* post("/v1/messages", { model: "m", messages: [{ role: "user", content: "hi" }] })
      expect(anthropic.status).toBe(400)
      expect(anthropic.body).toEqual({ type: "error", error: { type: "invalid_request_error", message: "max_tokens: Field required" } })

      const orphan = yield* post("/v1/messages", {
        model: "m",
        max_tokens: 10,
        messages: [
          { role: "user", content: "hi" },
          { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "Search", input: {} }] },
          { role: "user", content: "no result" }
        ]
      })
      expect(orphan.status).toBe(400)
      expect(orphan.body.type).toBe("error")
      expect(orphan.body.error.message).toMatch(/toolu_1/)

      const badTool = yield* post("/v1/messages", { model: "m", max_tokens: 10, messages: [{ role: "user", content: "hi" }], tools: [{ name: "a b" }] })
      expect(badTool.status).toBe(400)

      const count = yield* post("/v1/messages/count_tokens", { model: "m", system: "be brief", messages: [{ role: "user", content: "hello there" }] })
      expect(count).toEqual({ status: 200, body: { input_tokens: Math.ceil("be brief\nhello there".length / 4) } })
      const badCount = yield* post("/v1/messages/count_tokens", { model: "m", messages: [] })
      expect(badCount.status).toBe(400)
      expect(badCount.body.type).toBe("error")
    }))
})
