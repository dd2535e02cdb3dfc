/** The mock LLM server over real HTTP: wire formats, script, faults, script files, CLI. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MockLlmServer } from "../src/llm/MockLlmServer.js"
import { exitOf, spawnForTest } from "./support/processes.js"
import { decodeMockScript, MockScript, parseMockScript } from "../src/llm/MockScript.js"
import { loadMockScript } from "./support/files.js"
import {
  anthropicRequest,
  chatRequest,
  estimate,
  eventually,
  json,
  parseSse,
  post,
  readChunks,
  responsesRequest,
  text,
  withMock
} from "./support/mockLlm.js"

const dir = mkdtempSync(join(tmpdir(), "mock-llm-"))
const file = (name: string, content: string) => {
  const path = join(dir, name)
  writeFileSync(path, content)
  return path
}

const XML_ANSWER = "Sure, here it is:\n```xml\n<Greeting><Name>Ada</Name></Greeting>\n```\n"

describe("OpenAI chat completions", () => {
  it.scopedLive("plain: the scripted text, finish reason, estimated usage; the request is logged", () =>
    withMock({ responses: [{ text: XML_ANSWER }] }, (server) =>
      Effect.gen(function*() {
        const request = chatRequest("Say hi")
        const res = yield* post(`${server.openAiUrl}/chat/completions`, request)
        expect(res.status).toBe(200)
        expect(res.headers.get("content-type")).toBe("application/json")
        const body = yield* json(res)
        expect(body).toMatchObject({
          object: "chat.completion",
          model: "gpt-4o",
          choices: [{ index: 0, message: { role: "assistant", content: XML_ANSWER }, finish_reason: "stop" }],
          usage: {
            prompt_tokens: estimate("You are terse.\nSay hi"),
            completion_tokens: estimate(XML_ANSWER),
            total_tokens: estimate("You are terse.\nSay hi") + estimate(XML_ANSWER)
          }
        })
        expect(body.id).toMatch(/^chatcmpl-/)

        const [logged, ...rest] = server.requests()
        expect(rest).toEqual([])
        expect(logged).toMatchObject({
          index: 0,
          method: "POST",
          path: "/v1/chat/completions",
          endpoint: "chat",
          provider: "openai",
          model: "gpt-4o",
          stream: false,
          body: request,
          system: "You are terse.",
          lastUser: "Say hi",
          served: 0,
          status: 200,
          outcome: "completed"
        })
        expect(logged!.time).toBeInstanceOf(Date)
        expect(logged!.headers["content-type"]).toBe("application/json")
      })))

  it.scopedLive("streamed: a role chunk, text chunks that add up, a finish chunk, then [DONE]; no usage unless asked", () =>
    withMock({ responses: [{ text: XML_ANSWER, chunk_size: 5 }] }, (server) =>
      Effect.gen(function*() {
        const res = yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("hi", { stream: true }))
        expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/)
        const events = parseSse(yield* text(res))
        expect(events.every((e) => e.event === undefined)).toBe(true)
        expect(events[events.length - 1]!.data).toBe("[DONE]")
        const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data))
        expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0].id)).toBe(true)
        expect(chunks.every((c) => !("usage" in c))).toBe(true)
        expect(chunks[0].choices[0].delta).toMatchObject({ role: "assistant", content: "" })
        const deltas = chunks.slice(1, -1).map((c) => c.choices[0].delta.content as string)
        expect(deltas.join("")).toBe(XML_ANSWER)
        expect(deltas.every((d) => d.length <= 5)).toBe(true)
        expect(deltas).toHaveLength(Math.ceil(XML_ANSWER.length / 5))
        expect(chunks[chunks.length - 1].choices[0]).toMatchObject({ delta: {}, finish_reason: "stop" })
        expect(server.requests()[0]).toMatchObject({ stream: true, outcome: "completed" })
      })))

  it.scopedLive("stream_options.include_usage: usage null on every chunk, then a chunk without choices carrying it", () =>
    withMock({ responses: [{ text: "Hello", usage: { prompt_tokens: 11, completion_tokens: 7 } }] }, (server) =>
      Effect.gen(function*() {
        const res = yield* post(
          `${server.openAiUrl}/chat/completions`,
          chatRequest("hi", { stream: true, stream_options: { include_usage: true } })
        )
        const chunks = parseSse(yield* text(res)).slice(0, -1).map((e) => JSON.parse(e.data))
        const last = chunks[chunks.length - 1]
        expect(last.choices).toEqual([])
        expect(last.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 })
        expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true)
      })))

  it.scopedLive("/chat/completions without /v1, content given as parts; without a script the last user message is echoed", () =>
    withMock(undefined, (server) =>
      Effect.gen(function*() {
        const res = yield* post(`${server.url}/chat/completions`, {
          model: "local",
          messages: [
            { role: "user", content: "first question" },
            { role: "assistant", content: "an answer" },
            { role: "user", content: [{ type: "text", text: "part one" }, { type: "text", text: "part two" }] }
          ]
        })
        expect((yield* json(res)).choices[0].message.content).toBe("part one\npart two")
        expect(server.requests()[0]).toMatchObject({ path: "/chat/completions", served: "default", lastUser: "part one\npart two" })
      })))
})

describe("Anthropic messages", () => {
  it.scopedLive("plain: a message with one text block, the stop reason in Anthropic's words, usage", () =>
    withMock({ responses: [{ text: XML_ANSWER }, { text: "cut", finish_reason: "length", usage: { completion_tokens: 1024 } }] }, (server) =>
      Effect.gen(function*() {
        const request = anthropicRequest("Greet Ada")
        const body = yield* json(yield* post(`${server.url}/v1/messages`, request))
        expect(body).toMatchObject({
          type: "message",
          role: "assistant",
          model: "claude-sonnet-4-5",
          content: [{ type: "text", text: XML_ANSWER }],
          stop_reason: "end_turn",
          stop_sequence: null,
          usage: { input_tokens: estimate("You answer in XML.\nGreet Ada"), output_tokens: estimate(XML_ANSWER) }
        })
        expect(body.id).toMatch(/^msg_/)
        // The system prompt may also come as text blocks.
        const second = yield* json(
          yield* post(`${server.url}/v1/messages?beta=true`, anthropicRequest("more", { system: [{ type: "text", text: "Be brief." }] }))
        )
        expect(second).toMatchObject({ stop_reason: "max_tokens", usage: { output_tokens: 1024 } })
        expect(server.requests().map((r) => [r.endpoint, r.provider, r.system, r.path, r.url])).toEqual([
          ["messages", "anthropic", "You answer in XML.", "/v1/messages", "/v1/messages"],
          ["messages", "anthropic", "Be brief.", "/v1/messages", "/v1/messages?beta=true"]
        ])
      })))

  it.scopedLive("streamed: message_start, content_block_start, ping, deltas, content_block_stop, message_delta with usage, message_stop", () =>
    withMock({ responses: [{ text: XML_ANSWER, finish_reason: "tool_calls", chunk_size: 10 }] }, (server) =>
      Effect.gen(function*() {
        const events = parseSse(yield* text(yield* post(`${server.url}/v1/messages`, anthropicRequest("hi", { stream: true }))))
        const data = events.map((e) => JSON.parse(e.data))
        events.forEach((e, i) => expect(e.event).toBe(data[i].type))
        const deltas = Math.ceil(XML_ANSWER.length / 10)
        expect(events.map((e) => e.event)).toEqual([
          "message_start",
          "content_block_start",
          "ping",
          ...Array(deltas).fill("content_block_delta"),
          "content_block_stop",
          "message_delta",
          "message_stop"
        ])
        expect(data[0].message).toMatchObject({ role: "assistant", content: [], stop_reason: null, usage: { input_tokens: estimate("You answer in XML.\nhi") } })
        expect(data[1]).toEqual({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } })
        expect(data.filter((d) => d.type === "content_block_delta").map((d) => d.delta.text).join("")).toBe(XML_ANSWER)
        expect(data[data.length - 2]).toEqual({
          type: "message_delta",
          delta: { stop_reason: "tool_use", stop_sequence: null },
          usage: { output_tokens: estimate(XML_ANSWER) }
        })
      })))
})

describe("OpenAI responses", () => {
  it.scopedLive("plain and streamed; a length finish is an incomplete response", () =>
    withMock({ responses: [{ text: "Hello" }, { text: "Hel", finish_reason: "length", chunk_size: 2 }] }, (server) =>
      Effect.gen(function*() {
        const body = yield* json(yield* post(`${server.openAiUrl}/responses`, responsesRequest("hi")))
        expect(body).toMatchObject({
          object: "response",
          status: "completed",
          output: [{ type: "message", role: "assistant", content: [{ type: "output_text", text: "Hello" }] }],
          usage: { input_tokens: estimate("You are terse.\nhi"), output_tokens: estimate("Hello") }
        })
        const events = parseSse(yield* text(yield* post(`${server.openAiUrl}/responses`, responsesRequest("hi", { stream: true }))))
        const data = events.map((e) => JSON.parse(e.data))
        expect(data.map((d) => d.sequence_number)).toEqual(data.map((_, i) => i))
        expect(events.map((e) => e.event)).toEqual([
          "response.created",
          "response.in_progress",
          "response.output_item.added",
          "response.content_part.added",
          "response.output_text.delta",
          "response.output_text.delta",
          "response.output_text.done",
          "response.content_part.done",
          "response.output_item.done",
          "response.incomplete"
        ])
        expect(data[data.length - 1].response).toMatchObject({ status: "incomplete", incomplete_details: { reason: "max_output_tokens" } })
        expect(server.requests().map((r) => [r.endpoint, r.system, r.lastUser])).toEqual([
          ["responses", "You are terse.", "hi"],
          ["responses", "You are terse.", "hi"]
        ])
      })))
})

describe("models and other paths", () => {
  it.scopedLive("GET /v1/models lists the script's models; unknown paths are 404; a body that is not JSON is 400", () =>
    withMock({ models: ["gpt-4o", "claude-sonnet-4-5"] }, (server) =>
      Effect.gen(function*() {
        const models = yield* json(yield* Effect.promise(() => fetch(`${server.openAiUrl}/models`)))
        expect(models.data.map((m: { id: string }) => m.id)).toEqual(["gpt-4o", "claude-sonnet-4-5"])
        expect(models.data[0]).toMatchObject({ object: "model", type: "model" })
        const missing = yield* post(`${server.openAiUrl}/embeddings`, { input: "x" })
        expect(missing.status).toBe(404)
        const broken = yield* post(`${server.url}/v1/messages`, "{not json")
        expect(broken.status).toBe(400)
        expect((yield* json(broken)).error.type).toBe("invalid_request_error")
        expect(server.requests().map((r) => [r.endpoint, r.status, r.served])).toEqual([
          ["models", 200, undefined],
          ["unknown", 404, undefined],
          ["messages", 400, undefined]
        ])
      })))
})

describe("script: order and matching", () => {
  it.scopedLive("the first request gets 429 with Retry-After: 1, the second 500, the third the text; then the default", () =>
    withMock(
      { responses: [{ status: 429, retry_after: 1 }, { status: 500, error: "boom" }, { text: "at last" }] },
      (server) =>
        Effect.gen(function*() {
          const call = () => post(`${server.openAiUrl}/chat/completions`, chatRequest("echo me"))
          const first = yield* call()
          expect(first.status).toBe(429)
          expect(first.headers.get("retry-after")).toBe("1")
          expect((yield* json(first)).error).toMatchObject({ type: "requests", code: "rate_limit_exceeded" })
          const second = yield* call()
          expect(second.status).toBe(500)
          expect(second.headers.get("retry-after")).toBeNull()
          expect((yield* json(second)).error).toMatchObject({ message: "boom", type: "server_error" })
          expect((yield* json(yield* call())).choices[0].message.content).toBe("at last")
          expect((yield* json(yield* call())).choices[0].message.content).toBe("echo me")
          expect(server.requests().map((r) => [r.served, r.status])).toEqual([[0, 429], [1, 500], [2, 200], ["default", 200]])
        })
    ))

  it.scopedLive("Anthropic error bodies name the error type of the status", () =>
    withMock({ responses: [{ status: 429, retry_after: "Wed, 21 Oct 2026 07:28:00 GMT" }, { status: 529 }, { status: 500 }] }, (server) =>
      Effect.gen(function*() {
        const types: Array<string> = []
        for (let i = 0; i < 3; i++) {
          const res = yield* post(`${server.url}/v1/messages`, anthropicRequest("x"))
          if (i === 0) expect(res.headers.get("retry-after")).toBe("Wed, 21 Oct 2026 07:28:00 GMT")
          const body = yield* json(res)
          expect(body.type).toBe("error")
          types.push(`${res.status} ${body.error.type}`)
        }
        expect(types).toEqual(["429 rate_limit_error", "529 overloaded_error", "500 api_error"])
      })))

  it.scopedLive("rules match on model (exact or /regex/), provider, endpoint, stream, user and system regexes", () =>
    withMock(
      {
        responses: [
          { match: { model: "gpt-4o" }, times: "always", text: "exact gpt-4o" },
          { match: { model: "/^gpt-4o-/" }, times: "always", text: "a gpt-4o variant" },
          { match: { provider: "anthropic", stream: true }, times: "always", text: "anthropic streamed" },
          { match: { user: "/weather/i", system: "forecaster" }, times: "always", text: "sunny" },
          { match: { endpoint: "responses" }, times: "always", text: "responses API" },
          { match: { user: "weather" }, times: "always", text: "weather, any system" }
        ],
        default: { text: "nothing matched" }
      },
      (server) =>
        Effect.gen(function*() {
          const chat = (model: string, user: string, system = "You are terse.") =>
            post(`${server.openAiUrl}/chat/completions`, {
              model,
              messages: [{ role: "system", content: system }, { role: "user", content: user }]
            }).pipe(Effect.flatMap(json), Effect.map((b) => b.choices[0].message.content as string))
          expect(yield* chat("gpt-4o", "hi")).toBe("exact gpt-4o")
          expect(yield* chat("gpt-4o-mini", "hi")).toBe("a gpt-4o variant")
          expect(yield* chat("gpt-4", "hi")).toBe("nothing matched")
          expect(yield* chat("local", "What's the WEATHER?", "You are a forecaster.")).toBe("sunny")
          expect(yield* chat("local", "What's the WEATHER?")).toBe("nothing matched") // "weather" is case-sensitive
          expect(yield* chat("local", "the weather?")).toBe("weather, any system")
          const claude = (stream: boolean) => post(`${server.url}/v1/messages`, anthropicRequest("weather", { stream }))
          expect((yield* json(yield* claude(false))).content[0].text).toBe("weather, any system")
          const streamed = parseSse(yield* text(yield* claude(true))).map((e) => JSON.parse(e.data))
          expect(streamed.filter((d) => d.type === "content_block_delta").map((d) => d.delta.text).join("")).toBe("anthropic streamed")
          expect((yield* json(yield* post(`${server.openAiUrl}/responses`, responsesRequest("weather", { model: "local" })))).output[0].content[0].text).toBe(
            "responses API"
          )
          expect(server.requests().map((r) => r.served)).toEqual([0, 1, "default", 3, "default", 5, 5, 2, 4])
        })
    ))

  it.scopedLive("times counts an entry's uses; a spent entry lets later ones match; reset restores counts and may replace the script", () =>
    withMock(
      { responses: [{ match: { user: "ping" }, times: 2, text: "pong" }, { text: "fallback", times: "always" }] },
      (server) =>
        Effect.gen(function*() {
          const ask = (user: string) =>
            post(`${server.openAiUrl}/chat/completions`, chatRequest(user)).pipe(
              Effect.flatMap(json),
              Effect.map((b) => b.choices[0].message.content as string)
            )
          const answers = [yield* ask("ping"), yield* ask("other"), yield* ask("ping"), yield* ask("ping")]
          expect(answers).toEqual(["pong", "fallback", "pong", "fallback"])
          yield* server.reset()
          expect(server.requests()).toEqual([])
          expect(yield* ask("ping")).toBe("pong")
          yield* server.reset({ responses: [{ text: "replaced" }] })
          expect([yield* ask("ping"), yield* ask("ping")]).toEqual(["replaced", "ping"])
          const bad = yield* Effect.either(server.reset({ responses: [{ times: 0 }] }))
          expect(Either.isLeft(bad) && bad.left._tag).toBe("MockScriptError")
        })
    ))

  it.scopedLive("the default may be anything a response may be, a fault included", () =>
    withMock({ default: { status: 503, error: "no scripted response" } }, (server) =>
      Effect.gen(function*() {
        const res = yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("x"))
        expect(res.status).toBe(503)
        expect((yield* json(res)).error.message).toBe("no scripted response")
      })))
})

describe("faults", () => {
  it.scopedLive("delay holds back the status line and headers", () =>
    withMock({ responses: [{ text: "late", delay: "300ms" }] }, (server) =>
      Effect.gen(function*() {
        const start = performance.now()
        const res = yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("x"))
        expect(performance.now() - start).toBeGreaterThanOrEqual(290)
        expect(res.status).toBe(200)
      })))

  it.scopedLive("chunk_delay spaces the text events; the headers come at once", () =>
    withMock({ responses: [{ text: "abcdefgh", chunk_size: 2, chunk_delay: "120ms" }] }, (server) =>
      Effect.gen(function*() {
        const res = yield* post(`${server.url}/v1/messages`, anthropicRequest("x", { stream: true }))
        const headersAt = performance.now()
        const { chunks, error } = yield* readChunks(res)
        expect(error).toBeUndefined()
        expect(chunks.filter((c) => c.text.includes("content_block_delta")).length).toBeGreaterThanOrEqual(2)
        // Four text events, three pauses between them, all after the headers (with slack for a busy machine).
        expect(chunks[chunks.length - 1]!.at - headersAt).toBeGreaterThanOrEqual(2 * 120)
        expect(parseSse(chunks.map((c) => c.text).join("")).filter((e) => e.event === "content_block_delta")).toHaveLength(4)
      })))

  it.scopedLive("drop: the connection closes before any response", () =>
    withMock({ responses: [{ fault: "drop" }] }, (server) =>
      Effect.gen(function*() {
        const result = yield* Effect.either(Effect.tryPromise(() => fetch(`${server.openAiUrl}/chat/completions`, { method: "POST", body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "x" }] }) })))
        expect(Either.isLeft(result)).toBe(true)
        expect(server.requests()[0]).toMatchObject({ outcome: "dropped", status: undefined, served: 0 })
      })))

  it.scopedLive("drop_mid_response, plain: a 200 whose body stops short of its Content-Length", () =>
    withMock({ responses: [{ text: XML_ANSWER, fault: "drop_mid_response" }] }, (server) =>
      Effect.gen(function*() {
        const res = yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("x"))
        expect(res.status).toBe(200)
        const body = yield* Effect.either(Effect.tryPromise(() => res.text()))
        expect(Either.isLeft(body)).toBe(true)
        expect(server.requests()[0]).toMatchObject({ outcome: "dropped", status: 200 })
      })))

  it.scopedLive("drop_mid_response, streamed: fault_after text events go through, then the socket is destroyed", () =>
    withMock({ responses: [{ text: "aaaabbbbccccdddd", chunk_size: 4, fault: "drop_mid_response", fault_after: 2 }] }, (server) =>
      Effect.gen(function*() {
        const res = yield* post(`${server.url}/v1/messages`, anthropicRequest("x", { stream: true }))
        expect(res.status).toBe(200)
        const { chunks, error } = yield* readChunks(res)
        expect(error).toBeDefined()
        const events = parseSse(chunks.map((c) => c.text).join(""))
        expect(events.map((e) => e.event)).toEqual(["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta"])
        expect(server.requests()[0]).toMatchObject({ outcome: "dropped", status: 200 })
      })))

  it.scopedLive("drop_mid_response, streamed, by default: half of the text events (rounded up) go through", () =>
    withMock({ responses: [{ text: "abcde", chunk_size: 1, fault: "drop_mid_response" }] }, (server) =>
      Effect.gen(function*() {
        const res = yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("x", { stream: true }))
        const { chunks, error } = yield* readChunks(res)
        expect(error).toBeDefined()
        const deltas = parseSse(chunks.map((c) => c.text).join("")).map((e) => JSON.parse(e.data).choices[0].delta.content).slice(1)
        expect(deltas).toEqual(["a", "b", "c"])
      })))

  it.scopedLive("malformed, plain: a 200 with a JSON body cut in half", () =>
    withMock({ responses: [{ text: "Hello", fault: "malformed" }] }, (server) =>
      Effect.gen(function*() {
        const res = yield* post(`${server.url}/v1/messages`, anthropicRequest("x"))
        expect(res.status).toBe(200)
        const body = yield* text(res)
        expect(() => JSON.parse(body)).toThrow()
        expect(body.startsWith(`{"id":"msg_`)).toBe(true)
        expect(server.requests()[0]!.outcome).toBe("completed")
      })))

  it.scopedLive("malformed, streamed: the text event after fault_after is cut short, the stream goes on to its end", () =>
    withMock({ responses: [{ text: "aabbcc", chunk_size: 2, fault: "malformed", fault_after: 1 }] }, (server) =>
      Effect.gen(function*() {
        const events = parseSse(yield* text(yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("x", { stream: true }))))
        expect(events[events.length - 1]!.data).toBe("[DONE]")
        const parsed = events.slice(0, -1).map((e) => {
          try {
            return JSON.parse(e.data).choices[0].delta.content ?? "(finish)"
          } catch {
            return "(malformed)"
          }
        })
        expect(parsed).toEqual(["", "aa", "(malformed)", "cc", "(finish)"])
      })))

  it.scopedLive("stream_error: the provider's error event after fault_after text events, then the end; plain requests get a 500", () =>
    withMock({ responses: [{ text: "aabbcc", chunk_size: 2, fault: "stream_error", fault_after: 2, error: "overloaded", times: "always" }] }, (server) =>
      Effect.gen(function*() {
        const lastEvent = (events: Array<{ event: string | undefined; data: string }>) => events[events.length - 1]!
        const anthropic = parseSse(yield* text(yield* post(`${server.url}/v1/messages`, anthropicRequest("x", { stream: true }))))
        expect(anthropic.filter((e) => e.event === "content_block_delta")).toHaveLength(2)
        expect(lastEvent(anthropic)).toEqual({
          event: "error",
          data: JSON.stringify({ type: "error", error: { type: "overloaded_error", message: "overloaded" } })
        })
        const chat = parseSse(yield* text(yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("x", { stream: true }))))
        expect(JSON.parse(lastEvent(chat).data)).toEqual({ error: { message: "overloaded", type: "server_error", param: null, code: null } })
        const responses = parseSse(yield* text(yield* post(`${server.openAiUrl}/responses`, responsesRequest("x", { stream: true }))))
        expect(lastEvent(responses).event).toBe("error")
        expect(JSON.parse(lastEvent(responses).data)).toMatchObject({ type: "error", code: "server_error", message: "overloaded" })
        const plain = yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("x"))
        expect(plain.status).toBe(500)
        expect((yield* json(plain)).error.message).toBe("overloaded")
        expect(server.requests().map((r) => [r.status, r.outcome])).toEqual([[200, "completed"], [200, "completed"], [200, "completed"], [500, "completed"]])
      })))

  it.scopedLive("a reply without text echoes the last user message", () =>
    withMock({ responses: [{ delay: "10ms" }] }, (server) =>
      Effect.gen(function*() {
        expect((yield* json(yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("say this back")))).choices[0].message.content).toBe(
          "say this back"
        )
      })))

  it.scopedLive("a client that gives up during a delay is logged as client_closed", () =>
    withMock({ responses: [{ text: "never seen", delay: "10s" }] }, (server) =>
      Effect.gen(function*() {
        const abort = new AbortController()
        setTimeout(() => abort.abort(), 100)
        const result = yield* Effect.either(Effect.tryPromise(() =>
          fetch(`${server.openAiUrl}/chat/completions`, { method: "POST", body: JSON.stringify(chatRequest("x")), signal: abort.signal })
        ))
        expect(Either.isLeft(result)).toBe(true)
        expect(yield* eventually(() => server.requests()[0]?.outcome === "client_closed")).toBe(true)
        expect(server.requests()[0]!.status).toBeUndefined()
      })))

  it.scopedLive("extra headers go with any reply", () =>
    withMock({ responses: [{ status: 429, retry_after: 2, headers: { "x-ratelimit-remaining-requests": "0" } }, { text: "ok", headers: { "x-mock": "yes" } }] }, (server) =>
      Effect.gen(function*() {
        const limited = yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("x"))
        expect([limited.headers.get("retry-after"), limited.headers.get("x-ratelimit-remaining-requests")]).toEqual(["2", "0"])
        const ok = yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("x", { stream: true }))
        expect(ok.headers.get("x-mock")).toBe("yes")
      })))
})

describe("script files and validation", () => {
  it.effect("YAML: block scalars keep multi-line text exactly; durations and rules decode", () =>
    Effect.gen(function*() {
      const path = file(
        "script.yaml",
        `# first a rate limit, then the agent's XML answer
responses:
  - status: 429
    retry_after: 1
  - match: { model: /^claude-/, user: "(?:greet|hello)" }
    times: always
    delay: 250ms
    chunk_delay: 0.1
    text: |
      Sure, here it is:
      \`\`\`xml
      <Greeting><Name>Ada</Name></Greeting>
      \`\`\`
default:
  text: nothing scripted for this
models: [claude-sonnet-4-5]
`
      )
      const script = yield* loadMockScript(path)
      expect(script).toBeInstanceOf(MockScript)
      expect(script.responses[1]!.text).toBe(XML_ANSWER)
      expect(script.responses[1]!.times).toBe("always")
      expect(script.responses[1]!.match!.model!.test("claude-opus-4")).toBe(true)
      expect(script.responses[1]!.match!.model!.test("gpt-4o")).toBe(false)
      expect(script.responses[0]!.times).toBeUndefined()
      expect(script.default!.text).toBe("nothing scripted for this")
    }))

  it.effect("JSON is read as well", () =>
    Effect.gen(function*() {
      const script = yield* loadMockScript(file("script.json", JSON.stringify({ responses: [{ text: "a\nb", finish_reason: "length" }] })))
      expect(script.responses[0]).toMatchObject({ text: "a\nb", finish_reason: "length" })
    }))

  it.effect("every problem is reported at once, with line, column and key", () =>
    Effect.gen(function*() {
      const result = parseMockScript(
        "bad.yaml",
        `responses:
  - status: 429
    retry_afer: 1
  - text: hi
    echo: true
  - match: { user: "(unclosed" }
    times: 0
  - status: 200
  - fault: explode
  - text: x
    fault_after: 2
  - text: y
    delay: soon
`
      )
      expect(Either.isLeft(result)).toBe(true)
      const problems = Either.isLeft(result) ? result.left.problems.map(String) : []
      expect(problems).toEqual([
        `bad.yaml:3:5: responses[0].retry_afer: unknown key "retry_afer" (did you mean "retry_after"?); expected one of: text, tool_calls, echo, finish_reason, usage, delay, chunk_delay, chunk_size, status, error, retry_after, headers, fault, fault_after, ignore_max_tokens, match, times`,
        `bad.yaml:5:11: responses[1].echo: give either text or echo: true, not both`,
        `bad.yaml:6:20: responses[2].match.user: not a valid regular expression: Invalid regular expression: /(unclosed/: Unterminated group`,
        `bad.yaml:7:12: responses[2].times: expected a positive integer or "always", got 0`,
        `bad.yaml:8:13: responses[3].status: expected an HTTP status from 400 to 599, got 200`,
        `bad.yaml:9:12: responses[4].fault: expected "drop", "drop_mid_response", "malformed" or "stream_error", got "explode"`,
        `bad.yaml:11:18: responses[5].fault_after: fault_after goes with fault: drop_mid_response, malformed or stream_error`,
        `bad.yaml:13:12: responses[6].delay: expected a duration like 500ms, 10s, 2m, or a number of seconds, got "soon"`
      ])
    }))

  it.effect("a script object is checked the same way, and the server refuses to start with a bad one", () =>
    Effect.gen(function*() {
      const decoded = decodeMockScript({ responses: [{ text: "ok" }, { status: 429, text: "no" }], default: { fault: "drop", retry_after: 1 } })
      expect(Either.isLeft(decoded) ? decoded.left.problems.map(String) : []).toEqual([
        `mock script: responses[1].status: an error status sends the provider's error body, not text; drop text/echo or status`,
        `mock script: default.retry_after: retry_after goes with an error status: add status (e.g. 429)`
      ])
      const exit = yield* Effect.exit(Effect.scoped(MockLlmServer.make({ script: { responses: [{ chunk_size: -1 }] } })))
      expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(/responses\[0\]\.chunk_size: expected a positive integer, got -1/)
      const missing = yield* Effect.either(loadMockScript(join(dir, "nope.yaml")))
      expect(Either.isLeft(missing) && missing.left.message).toMatch(/nope\.yaml: no such file/)
    }))

  it.effect("g and y flags are refused: a rule's regex must answer the same every time", () =>
    Effect.sync(() => {
      const result = decodeMockScript({ responses: [{ match: { user: "/x/g" } }] })
      expect(Either.isLeft(result) && result.left.message).toMatch(/responses\[0\]\.match\.user: flag "g" is not allowed/)
    }))
})

describe("server lifecycle", () => {
  it.scopedLive("listens on the given port; a taken port is a MockLlmServerError; closing the scope closes the port", () =>
    Effect.gen(function*() {
      const free = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          const probe = createServer().listen(0, "127.0.0.1", () => {
            const port = (probe.address() as { port: number }).port
            probe.close(() => resolve(port))
          })
        })
      )
      const url = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* MockLlmServer.make({ port: free })
        expect(server.port).toBe(free)
        expect(server.url).toBe(`http://127.0.0.1:${free}`)
        const taken = yield* Effect.either(Effect.scoped(MockLlmServer.make({ port: free })))
        expect(Either.isLeft(taken) && taken.left._tag).toBe("MockLlmServerError")
        expect(Either.isLeft(taken) && taken.left.message).toMatch(/EADDRINUSE/)
        // A stream left open must not keep the server from closing.
        const res = yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("x", { stream: true }))
        expect(res.status).toBe(200)
        return server.url
      }))
      // Scripted with the default echo, the open stream ended when the server closed.
      const after = yield* Effect.either(Effect.tryPromise(() => fetch(`${url}/v1/models`)))
      expect(Either.isLeft(after)).toBe(true)
    }))

  it.scopedLive("a layer provides the server to a program", () =>
    Effect.gen(function*() {
      const server = yield* MockLlmServer
      const body = yield* json(yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("x")))
      expect(body.choices[0].message.content).toBe("from the layer")
    }).pipe(Effect.provide(MockLlmServer.layer({ script: { default: { text: "from the layer" } } }))))
})

describe("organism mock-llm", () => {
  const bin = join(__dirname, "..", "bin", "organism.js")

  it("prints the URL, logs each request on one line, stops on Ctrl-C", async () => {
    const script = file("cli.yaml", `responses:\n  - status: 429\n    retry_after: 1\n  - text: |\n      <Greeting><Name>Ada</Name></Greeting>\n`)
    // Killed when the test ends, whatever happened: a failed assertion must not leave a server running.
    const child = spawnForTest(process.execPath, [bin, "mock-llm", "--script", script, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout!.on("data", (d) => (stdout += d))
    child.stderr!.on("data", (d) => (stderr += d))
    const until = async (re: RegExp) => {
      for (let i = 0; i < 300 && !re.test(stdout); i++) await new Promise((r) => setTimeout(r, 50))
      return re.exec(stdout)
    }
    const listening = await until(/listening on (http:\/\/127\.0\.0\.1:\d+)/)
    expect(listening, stderr).not.toBeNull()
    const url = listening![1]!
    const limited = await fetch(`${url}/v1/chat/completions`, { method: "POST", body: JSON.stringify(chatRequest("hi")) })
    expect(limited.status).toBe(429)
    const ok = await fetch(`${url}/v1/messages`, { method: "POST", body: JSON.stringify(anthropicRequest("hi", { stream: true })) })
    expect(await ok.text()).toContain("Greeting")
    await until(/#1 .*\n/)
    child.kill("SIGINT")
    expect(await exitOf(child, 15_000)).toBe(130)
    expect(stdout).toMatch(/\d\d:\d\d:\d\d\.\d{3} #0 POST \/v1\/chat\/completions gpt-4o → responses\[0\]: status 429 \(Retry-After: 1\)\n/)
    expect(stdout).toMatch(/#1 POST \/v1\/messages claude-sonnet-4-5 stream → responses\[1\]: text "<Greeting><Name>Ada<\/Name><\/Greeting>"\n/)
    expect(stdout).toMatch(/mock-llm: stopped after 2 requests/)
  })

  it("a broken script: every problem on stderr, exit 2", async () => {
    const script = file("broken.yaml", `responses:\n  - text: hi\n    tiems: 2\n`)
    const child = spawnForTest(process.execPath, [bin, "mock-llm", "--script", script], { stdio: ["ignore", "pipe", "pipe"] })
    let stderr = ""
    child.stderr!.on("data", (d) => (stderr += d))
    const code = await exitOf(child, 15_000)
    expect(code).toBe(2)
    expect(stderr).toMatch(/broken\.yaml:3:5: responses\[0\]\.tiems: unknown key "tiems" \(did you mean "times"\?\)/)
  })
})

describe("the context window, the output cap and reasoning tokens", () => {
  const long = "word ".repeat(400)
  it.scopedLive("over the window: each API's own 400; within it: answered, with the prompt's count logged", () =>
    withMock({ context_window: 100, default: { text: "ok" } }, (server) =>
      Effect.gen(function*() {
        const chat = yield* post(`${server.openAiUrl}/chat/completions`, chatRequest(long, { max_tokens: 10 }))
        expect(chat.status).toBe(400)
        expect(yield* json(chat)).toMatchObject({
          error: { type: "invalid_request_error", code: "context_length_exceeded", message: expect.stringMatching(/^This model's maximum context length is 100 tokens\. However, you requested \d+ tokens/) }
        })
        const responses = yield* post(`${server.openAiUrl}/responses`, responsesRequest(long))
        expect(responses.status).toBe(400)
        expect(yield* json(responses)).toMatchObject({ error: { code: "context_length_exceeded", param: "input" } })
        const anthropic = yield* post(`${server.url}/v1/messages`, anthropicRequest(long))
        expect(anthropic.status).toBe(400)
        expect(yield* json(anthropic)).toMatchObject({
          type: "error",
          error: { type: "invalid_request_error", message: expect.stringMatching(/^prompt is too long: \d+ tokens > 100 maximum$/) }
        })
        // The prompt fits, the prompt and the cap together do not (Anthropic's other wording).
        const capped = yield* post(`${server.url}/v1/messages`, anthropicRequest("hi", { max_tokens: 99 }))
        expect(yield* json(capped)).toMatchObject({ error: { message: expect.stringMatching(/exceed context limit: \d+ \+ 99 > 100/) } })
        const fine = yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("hi", { max_tokens: 10 }))
        expect(fine.status).toBe(200)
        expect(server.requests().map((r) => r.status)).toEqual([400, 400, 400, 400, 200])
        expect(server.requests()[4]).toMatchObject({ promptTokens: estimate("You are terse.\nhi"), maxOutputTokens: 10 })
      })))

  it.scopedLive("the requested cap stops the answer with each API's length finish; reasoning tokens are reported", () =>
    withMock({ default: { text: long, usage: { reasoning_tokens: 7 } } }, (server) =>
      Effect.gen(function*() {
        const chat = yield* json(yield* post(`${server.openAiUrl}/chat/completions`, chatRequest("go", { max_completion_tokens: 5 })))
        expect(chat.choices[0]).toMatchObject({ finish_reason: "length", message: { content: long.slice(0, 20) } })
        expect(chat.usage.completion_tokens_details.reasoning_tokens).toBe(7)
        const responses = yield* json(yield* post(`${server.openAiUrl}/responses`, responsesRequest("go", { max_output_tokens: 5 })))
        expect(responses).toMatchObject({ status: "incomplete", incomplete_details: { reason: "max_output_tokens" } })
        expect(responses.usage.output_tokens_details.reasoning_tokens).toBe(7)
        const anthropic = yield* json(yield* post(`${server.url}/v1/messages`, anthropicRequest("go", { max_tokens: 5 })))
        expect(anthropic).toMatchObject({ stop_reason: "max_tokens", content: [{ text: long.slice(0, 20) }] })
      })))
})
