/**
 * The real provider clients against the mock: @effect/ai-openai and @effect/ai-anthropic,
 * over NodeHttpClient. Besides proving the wire formats, these tests pin down what the clients
 * surface for each fault — what the LLM router has to recognise — so that a client upgrade
 * that changes it fails here first.
 */
import { AiError, LanguageModel, type Response } from "@effect/ai"
import { AnthropicClient, AnthropicLanguageModel } from "@effect/ai-anthropic"
import { OpenAiClient, OpenAiLanguageModel } from "@effect/ai-openai"
import { HttpBody, HttpClientRequest } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Effect, Exit, Layer, Option, Redacted, Schema, Stream } from "effect"
import type { MockLlmServer } from "../src/llm/MockLlmServer.js"
import type { MockScriptInput } from "../src/llm/MockScript.js"
import { eventually, withMock } from "./support/mockLlm.js"

type Http = "undici" | "node"
type Provider = "openai" | "anthropic"

const httpLayer = (http: Http) => (http === "undici" ? NodeHttpClient.layerUndici : NodeHttpClient.layer)

/** The layers the router will build: a client with the mock's base URL, a language model on it. */
const openAi = (server: MockLlmServer.Service, http: Http = "undici") =>
  OpenAiLanguageModel.layer({ model: "gpt-4o" }).pipe(
    Layer.provide(OpenAiClient.layer({ apiUrl: server.openAiUrl, apiKey: Redacted.make("sk-mock") })),
    Layer.provide(httpLayer(http))
  )

const anthropic = (server: MockLlmServer.Service, http: Http = "undici") =>
  AnthropicLanguageModel.layer({ model: "claude-sonnet-4-5" }).pipe(
    Layer.provide(AnthropicClient.layer({ apiUrl: server.url, apiKey: Redacted.make("sk-ant-mock") })),
    Layer.provide(httpLayer(http))
  )

const model = (provider: Provider, server: MockLlmServer.Service, http: Http = "undici") =>
  provider === "openai" ? openAi(server, http) : anthropic(server, http)

const prompt = [
  { role: "system" as const, content: "You answer in XML." },
  { role: "user" as const, content: "Greet Ada" }
]

const XML_ANSWER = "Here you are:\n```xml\n<Greeting><Name>Ada</Name></Greeting>\n```"

/** Runs streamText to its end, keeping the parts that arrived before any failure. */
const streamParts = (layer: Layer.Layer<LanguageModel.LanguageModel>, timeout: Effect.Effect<void> = Effect.never) =>
  Effect.gen(function*() {
    const parts: Array<Response.AnyPart> = []
    const exit = yield* LanguageModel.streamText({ prompt }).pipe(
      Stream.runForEach((part) => Effect.sync(() => void parts.push(part))),
      Effect.raceFirst(Effect.zipRight(timeout, Effect.fail("still running" as const))),
      Effect.provide(layer),
      Effect.exit
    )
    const deltas = parts.flatMap((p) => (p.type === "text-delta" ? [p.delta] : []))
    return { parts, deltas, exit }
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const generateFailure = (layer: Layer.Layer<LanguageModel.LanguageModel>) =>
  LanguageModel.generateText({ prompt }).pipe(Effect.provide(layer), Effect.timeout("5 seconds"), Effect.flip)

const withScript = <A, E>(script: MockScriptInput, f: (server: MockLlmServer.Service) => Effect.Effect<A, E>) =>
  withMock(script, f)

describe("@effect/ai-openai: OpenAiLanguageModel speaks the Responses API", () => {
  it.scopedLive("generateText: text, finish reason and usage come through; POST /v1/responses with a bearer key", () =>
    withScript({ responses: [{ text: XML_ANSWER, usage: { prompt_tokens: 12, completion_tokens: 34 } }] }, (server) =>
      Effect.gen(function*() {
        const response = yield* LanguageModel.generateText({ prompt }).pipe(Effect.provide(openAi(server)))
        expect(response.text).toBe(XML_ANSWER)
        expect(response.finishReason).toBe("stop")
        expect(response.usage).toMatchObject({ inputTokens: 12, outputTokens: 34, totalTokens: 46 })
        expect(server.requests()).toHaveLength(1)
        expect(server.requests()[0]).toMatchObject({
          path: "/v1/responses",
          endpoint: "responses",
          model: "gpt-4o",
          stream: false,
          system: "You answer in XML.",
          lastUser: "Greet Ada",
          headers: { authorization: "Bearer sk-mock" }
        })
      })))

  it.scopedLive("streamText: text deltas add up to the text; the finish part carries usage and reason", () =>
    withScript({ responses: [{ text: XML_ANSWER, chunk_size: 8, finish_reason: "length" }] }, (server) =>
      Effect.gen(function*() {
        const { deltas, exit, parts } = yield* streamParts(openAi(server))
        expect(Exit.isSuccess(exit)).toBe(true)
        expect(deltas.join("")).toBe(XML_ANSWER)
        expect(deltas).toHaveLength(Math.ceil(XML_ANSWER.length / 8))
        const finish = parts.find((p) => p.type === "finish")
        expect(finish).toMatchObject({ reason: "length", usage: { outputTokens: Math.ceil(XML_ANSWER.length / 4) } })
        expect(server.requests()[0]).toMatchObject({ path: "/v1/responses", stream: true })
      })))

  it.scopedLive("Chat Completions through OpenAiClient's generated client, plain and streamed", () =>
    withScript({ responses: [{ text: XML_ANSWER, times: 2 }] }, (server) =>
      Effect.gen(function*() {
        const client = yield* OpenAiClient.OpenAiClient
        const completion = yield* client.client.createChatCompletion({
          model: "gpt-4o",
          messages: [{ role: "user", content: "Greet Ada" }]
        })
        expect(completion.choices[0]!.message.content).toBe(XML_ANSWER)
        expect(completion.usage?.completion_tokens).toBe(Math.ceil(XML_ANSWER.length / 4))
        // No chunk schema is exported; `[DONE]` is not JSON and streamRequest skips it.
        const Chunk_ = Schema.Struct({
          choices: Schema.Array(Schema.Struct({ delta: Schema.Struct({ content: Schema.optional(Schema.NullOr(Schema.String)) }) })),
          usage: Schema.optional(Schema.NullOr(Schema.Struct({ completion_tokens: Schema.Number })))
        })
        const chunks = yield* client.streamRequest(
          HttpClientRequest.post("/chat/completions", {
            body: HttpBody.unsafeJson({
              model: "gpt-4o",
              stream: true,
              stream_options: { include_usage: true },
              messages: [{ role: "user", content: "Greet Ada" }]
            })
          }),
          Chunk_
        ).pipe(Stream.runCollect, Effect.map(Chunk.toArray))
        expect(chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? "")).join("")).toBe(XML_ANSWER)
        expect(chunks[chunks.length - 1]!.usage?.completion_tokens).toBe(Math.ceil(XML_ANSWER.length / 4))
        expect(server.requests().map((r) => r.path)).toEqual(["/v1/chat/completions", "/v1/chat/completions"])
      }).pipe(
        Effect.provide(OpenAiClient.layer({ apiUrl: server.openAiUrl }).pipe(Layer.provide(NodeHttpClient.layerUndici)))
      )))
})

describe("@effect/ai-anthropic: AnthropicLanguageModel speaks Messages", () => {
  it.scopedLive("generateText: POST /v1/messages?beta=true with x-api-key and anthropic-version; text and usage", () =>
    withScript({ responses: [{ text: XML_ANSWER, usage: { prompt_tokens: 12, completion_tokens: 34 } }] }, (server) =>
      Effect.gen(function*() {
        const response = yield* LanguageModel.generateText({ prompt }).pipe(Effect.provide(anthropic(server)))
        expect(response.text).toBe(XML_ANSWER)
        expect(response.finishReason).toBe("stop")
        expect(response.usage).toMatchObject({ inputTokens: 12, outputTokens: 34 })
        expect(server.requests()[0]).toMatchObject({
          url: "/v1/messages?beta=true",
          endpoint: "messages",
          model: "claude-sonnet-4-5",
          system: "You answer in XML.",
          lastUser: "Greet Ada",
          headers: { "x-api-key": "sk-ant-mock", "anthropic-version": "2023-06-01" }
        })
      })))

  it.scopedLive("streamText: POST /v1/messages (no beta query); deltas, stop reason and output tokens from message_delta", () =>
    withScript({ responses: [{ text: XML_ANSWER, chunk_size: 8, finish_reason: "length" }] }, (server) =>
      Effect.gen(function*() {
        const { deltas, exit, parts } = yield* streamParts(anthropic(server))
        expect(Exit.isSuccess(exit)).toBe(true)
        expect(deltas.join("")).toBe(XML_ANSWER)
        expect(parts.find((p) => p.type === "finish")).toMatchObject({
          reason: "length",
          usage: { outputTokens: Math.ceil(XML_ANSWER.length / 4) }
        })
        expect(server.requests()[0]).toMatchObject({ url: "/v1/messages", stream: true })
      })))
})

describe("what the clients surface for each fault (no client retries on its own)", () => {
  for (const provider of ["openai", "anthropic"] as const) {
    describe(provider, () => {
      it.scopedLive("429 with Retry-After: HttpResponseError, reason StatusCode, status 429, the header in response.headers", () =>
        withScript({ responses: [{ status: 429, retry_after: 7, times: 2 }] }, (server) =>
          Effect.gen(function*() {
            const plain = yield* generateFailure(model(provider, server))
            const streamed = failureOf((yield* streamParts(model(provider, server))).exit)
            for (const error of [plain, streamed]) {
              expect(error).toBeInstanceOf(AiError.HttpResponseError)
              const e = error as AiError.HttpResponseError
              expect([e.reason, e.response.status, e.response.headers["retry-after"]]).toEqual(["StatusCode", 429, "7"])
              expect(e.body).toContain(provider === "openai" ? "rate_limit_exceeded" : "rate_limit_error")
            }
            expect(server.requests()).toHaveLength(2)
          })))

      it.scopedLive("500 and 529: HttpResponseError with the status", () =>
        withScript({ responses: [{ status: 500 }, { status: 529 }] }, (server) =>
          Effect.gen(function*() {
            const first = (yield* generateFailure(model(provider, server))) as AiError.HttpResponseError
            const second = failureOf((yield* streamParts(model(provider, server))).exit) as AiError.HttpResponseError
            expect([first._tag, first.reason, first.response.status]).toEqual(["HttpResponseError", "StatusCode", 500])
            expect([second._tag, second.reason, second.response.status]).toEqual(["HttpResponseError", "StatusCode", 529])
            expect(server.requests()).toHaveLength(2)
          })))

      it.scopedLive("malformed JSON body: HttpResponseError, reason Decode, status 200", () =>
        withScript({ responses: [{ text: XML_ANSWER, fault: "malformed" }] }, (server) =>
          Effect.gen(function*() {
            const e = (yield* generateFailure(model(provider, server))) as AiError.HttpResponseError
            expect([e._tag, e.reason, e.response.status]).toEqual(["HttpResponseError", "Decode", 200])
          })))

      it.scopedLive("connection dropped before any response: HttpRequestError, reason Transport", () =>
        withScript({ responses: [{ fault: "drop", times: 2 }] }, (server) =>
          Effect.gen(function*() {
            const plain = yield* generateFailure(model(provider, server))
            const streamed = failureOf((yield* streamParts(model(provider, server))).exit)
            for (const e of [plain, streamed]) {
              expect(e).toBeInstanceOf(AiError.HttpRequestError)
              expect((e as AiError.HttpRequestError).reason).toBe("Transport")
            }
          })))

      it.scopedLive("connection dropped mid-body (plain): HttpResponseError, reason Decode, status 200", () =>
        withScript({ responses: [{ text: XML_ANSWER, fault: "drop_mid_response" }] }, (server) =>
          Effect.gen(function*() {
            const e = (yield* generateFailure(model(provider, server))) as AiError.HttpResponseError
            expect([e._tag, e.reason, e.response.status]).toEqual(["HttpResponseError", "Decode", 200])
          })))

      it.scopedLive("connection dropped mid-stream (undici): text deltas first, then HttpResponseError, reason Decode", () =>
        withScript({ responses: [{ text: "aaaabbbbccccdddd", chunk_size: 4, fault: "drop_mid_response", fault_after: 2 }] }, (server) =>
          Effect.gen(function*() {
            const { deltas, exit } = yield* streamParts(model(provider, server), Effect.sleep("5 seconds"))
            expect(deltas).toEqual(["aaaa", "bbbb"])
            const e = failureOf(exit) as AiError.HttpResponseError
            expect([e._tag, e.reason, e.response.status]).toEqual(["HttpResponseError", "Decode", 200])
          })))

      it.scopedLive("connection dropped mid-stream (node:http client): the stream never ends", () =>
        // AiError.HttpResponseError.fromResponseError reads the body again for its `body` field
        // (content-type text/event-stream counts as text); on node:http's aborted
        // IncomingMessage that read never completes. With undici it fails at once.
        withScript({ responses: [{ text: "aaaabbbbccccdddd", chunk_size: 4, fault: "drop_mid_response", fault_after: 2 }] }, (server) =>
          Effect.gen(function*() {
            const { deltas, exit } = yield* streamParts(model(provider, server, "node"), Effect.sleep("1500 millis"))
            expect(deltas).toEqual(["aaaa", "bbbb"])
            expect(failureOf(exit)).toBe("still running")
            expect(server.requests()[0]!.outcome).toBe("dropped")
          })))

      it.scopedLive("a request cut short by a timeout is really aborted: the server sees the client close", () =>
        withScript({ responses: [{ text: "late", delay: "10s", times: 4 }] }, (server) =>
          Effect.gen(function*() {
            for (const http of ["undici", "node"] as const) {
              const plain = yield* LanguageModel.generateText({ prompt }).pipe(
                Effect.provide(model(provider, server, http)),
                Effect.timeout("200 millis"),
                Effect.flip
              )
              const streamed = yield* LanguageModel.streamText({ prompt }).pipe(
                Stream.runDrain,
                Effect.provide(model(provider, server, http)),
                Effect.timeout("200 millis"),
                Effect.flip
              )
              expect([plain._tag, streamed._tag]).toEqual(["TimeoutException", "TimeoutException"])
            }
            expect(yield* eventually(() => server.requests().every((r) => r.outcome === "client_closed"))).toBe(true)
            expect(server.requests()).toHaveLength(4)
          })))
    })
  }

  it.scopedLive("a malformed event mid-stream: OpenAI skips it silently (text is lost), Anthropic fails with MalformedOutput", () =>
    // Anthropic's client decodes the events of one network read together: a bad event fails
    // the events that arrived with it too. The pause puts the bad event in a read of its own.
    withScript(
      { responses: [{ text: "aaaabbbbcccc", chunk_size: 4, chunk_delay: "50ms", fault: "malformed", fault_after: 1, times: 2 }] },
      (server) =>
        Effect.gen(function*() {
          const openai = yield* streamParts(openAi(server))
          expect(Exit.isSuccess(openai.exit)).toBe(true)
          expect(openai.deltas).toEqual(["aaaa", "cccc"])
          const claude = yield* streamParts(anthropic(server))
          expect(claude.deltas).toEqual(["aaaa"])
          expect(failureOf(claude.exit)).toBeInstanceOf(AiError.MalformedOutput)
        })
    ))
})

describe("an error event mid-stream (stream_error)", () => {
  for (const provider of ["openai", "anthropic"] as const) {
    it.scopedLive(`${provider}: the stream ends *successfully* with an "error" part and no "finish" part`, () =>
      withScript({ responses: [{ text: "aaaabbbbcccc", chunk_size: 4, fault: "stream_error", fault_after: 1, error: "busy" }] }, (server) =>
        Effect.gen(function*() {
          const { deltas, exit, parts } = yield* streamParts(model(provider, server), Effect.sleep("5 seconds"))
          expect(Exit.isSuccess(exit)).toBe(true)
          expect(deltas).toEqual(["aaaa"])
          expect(parts.some((p) => p.type === "finish")).toBe(false)
          const error = parts.find((p) => p.type === "error")
          expect(error).toBeDefined()
          expect(error!.error).toEqual(
            provider === "openai"
              ? { type: "error", sequence_number: 5, code: "server_error", message: "busy", param: null }
              : { type: "overloaded_error", message: "busy" }
          )
        })))
  }
})
