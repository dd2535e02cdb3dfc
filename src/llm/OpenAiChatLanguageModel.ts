/**
 * A `LanguageModel` over OpenAI **Chat Completions** (`POST /chat/completions`), the API the
 * OpenAI-compatible servers speak — Ollama, vLLM, a llama.cpp server, xAI — and OpenAI itself
 * with `api: chat`. `OpenAiLanguageModel` speaks only the Responses API.
 *
 * It goes through `OpenAiClient` (its base URL, bearer key and HTTP client) but reads the
 * replies with schemas of its own rather than the generated `createChatCompletion`:
 * - the generated response schema demands what only OpenAI sends (`logprobs`, `refusal`, a
 *   closed list of finish reasons), so a compatible server's perfectly usable answer would
 *   fail to decode — and a decode failure looks like a broken backend;
 * - `OpenAiClient.streamRequest` skips a stream event it cannot decode, silently losing its
 *   text; here a malformed event fails the stream (`MalformedOutput`), as Anthropic's does.
 *
 * System, user and assistant messages with text parts, and function tools: an assistant's
 * tool calls go out as `tool_calls`, tool results as `tool` messages, the offered tools as
 * `tools` (each a function with its JSON Schema), and the answer's `tool_calls` — whole, or
 * joined from a stream's pieces by index — come back as tool-call parts. Anything else
 * (files) is refused as `MalformedInput` — the router never sends it.
 */
import { AiError, LanguageModel, type Prompt, type Response, Tool } from "@effect/ai"
import { OpenAiClient } from "@effect/ai-openai"
import * as Sse from "@effect/experimental/Sse"
import { HttpBody, HttpClient, type HttpClientError, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { Context, Effect, Layer, Option, ParseResult, Schema, Stream } from "effect"

const MODULE = "OpenAiChatLanguageModel"

/** Request fields set per call (the router's `max_tokens`), over those given at construction. */
export class Config extends Context.Tag("xml-organism/OpenAiChatLanguageModel/Config")<Config, Config.Service>() {}

export declare namespace Config {
  export interface Service {
    /** What the compatible servers read; OpenAI itself wants `max_completion_tokens`. */
    readonly max_tokens?: number | undefined
    readonly max_completion_tokens?: number | undefined
    readonly temperature?: number | undefined
    readonly top_p?: number | undefined
    readonly stop?: ReadonlyArray<string> | undefined
    readonly seed?: number | undefined
  }
}

const Count = Schema.optional(Schema.NullOr(Schema.Number))

const ChatUsage = Schema.Struct({
  prompt_tokens: Count,
  completion_tokens: Count,
  total_tokens: Count,
  // Reasoning models report their hidden reasoning among the completion tokens.
  completion_tokens_details: Schema.optional(Schema.NullOr(Schema.Struct({ reasoning_tokens: Count })))
})

/** Only what is read, every field but the text optional: compatible servers vary. */
const ToolCall = Schema.Struct({
  id: Schema.String,
  function: Schema.Struct({ name: Schema.String, arguments: Schema.String })
})

/** A piece of a streamed tool call: the first carries id and name, the rest more arguments. */
const ToolCallDelta = Schema.Struct({
  index: Schema.Number,
  id: Schema.optional(Schema.NullOr(Schema.String)),
  function: Schema.optional(Schema.NullOr(Schema.Struct({
    name: Schema.optional(Schema.NullOr(Schema.String)),
    arguments: Schema.optional(Schema.NullOr(Schema.String))
  })))
})

const ChatCompletion = Schema.Struct({
  id: Schema.optional(Schema.NullOr(Schema.String)),
  model: Schema.optional(Schema.NullOr(Schema.String)),
  created: Schema.optional(Schema.NullOr(Schema.Number)),
  choices: Schema.Array(Schema.Struct({
    message: Schema.Struct({
      content: Schema.optional(Schema.NullOr(Schema.String)),
      tool_calls: Schema.optional(Schema.NullOr(Schema.Array(ToolCall)))
    }),
    finish_reason: Schema.optional(Schema.NullOr(Schema.String))
  })),
  usage: Schema.optional(Schema.NullOr(ChatUsage))
})

const ChatChunk = Schema.Struct({
  id: Schema.optional(Schema.NullOr(Schema.String)),
  model: Schema.optional(Schema.NullOr(Schema.String)),
  created: Schema.optional(Schema.NullOr(Schema.Number)),
  choices: Schema.optional(Schema.NullOr(Schema.Array(Schema.Struct({
    delta: Schema.optional(Schema.NullOr(Schema.Struct({
      content: Schema.optional(Schema.NullOr(Schema.String)),
      tool_calls: Schema.optional(Schema.NullOr(Schema.Array(ToolCallDelta)))
    }))),
    finish_reason: Schema.optional(Schema.NullOr(Schema.String))
  })))),
  usage: Schema.optional(Schema.NullOr(ChatUsage)),
  /** Chat Completions has no error event: a failing server sends `{error: …}` as a chunk. */
  error: Schema.optional(Schema.Unknown)
})
type ChatChunk = typeof ChatChunk.Type

export const finishReasonOf = (reason: string | null | undefined): Response.FinishReason => {
  switch (reason) {
    case "stop":
      return "stop"
    case "length":
      return "length"
    case "content_filter":
      return "content-filter"
    case "tool_calls":
    case "function_call":
      return "tool-calls"
    case null:
    case undefined:
      return "unknown"
    default:
      return "other"
  }
}

const usageOf = (u: typeof ChatUsage.Type | null | undefined): typeof Response.Usage.Encoded => {
  const input = u?.prompt_tokens ?? undefined
  const output = u?.completion_tokens ?? undefined
  const reasoning = u?.completion_tokens_details?.reasoning_tokens ?? undefined
  return {
    ...(reasoning !== undefined ? { reasoningTokens: reasoning } : {}),
    inputTokens: input,
    outputTokens: output,
    totalTokens: u?.total_tokens ?? (input !== undefined && output !== undefined ? input + output : undefined)
  }
}

const metadataOf = (c: { readonly id?: string | null | undefined; readonly model?: string | null | undefined; readonly created?: number | null | undefined }): Response.ResponseMetadataPartEncoded => ({
  type: "response-metadata",
  ...(c.id != null ? { id: c.id } : {}),
  ...(c.model != null ? { modelId: c.model } : {}),
  ...(c.created != null ? { timestamp: new Date(c.created * 1000).toISOString() } : {})
})

type ChatMessage =
  | { readonly role: "system" | "user"; readonly content: string }
  | {
    readonly role: "assistant"
    readonly content: string | null
    readonly tool_calls?: ReadonlyArray<{ id: string; type: "function"; function: { name: string; arguments: string } }>
  }
  | { readonly role: "tool"; readonly tool_call_id: string; readonly content: string }

const refuse = (method: string, description: string) => new AiError.MalformedInput({ module: MODULE, method, description })

/** The prompt as Chat Completions messages: text parts, tool calls and tool results. */
export const chatMessages = (prompt: Prompt.Prompt, method: string): Effect.Effect<Array<ChatMessage>, AiError.MalformedInput> =>
  Effect.suspend(() => {
    const out: Array<ChatMessage> = []
    for (const message of prompt.content) {
      switch (message.role) {
        case "system":
          out.push({ role: "system", content: message.content })
          break
        case "user":
        case "assistant": {
          let text = ""
          const calls: Array<{ id: string; type: "function"; function: { name: string; arguments: string } }> = []
          for (const part of message.content) {
            if (part.type === "text") text += part.text
            else if (part.type === "tool-call" && message.role === "assistant") {
              calls.push({ id: part.id, type: "function", function: { name: part.name, arguments: JSON.stringify(part.params ?? {}) } })
            } else if (part.type !== "reasoning") {
              return Effect.fail(refuse(method, `${message.role} message part "${part.type}" is not supported (text and tool calls only)`))
            }
          }
          if (message.role === "user") out.push({ role: "user", content: text })
          else if (calls.length === 0) out.push({ role: "assistant", content: text })
          else out.push({ role: "assistant", content: text === "" ? null : text, tool_calls: calls })
          break
        }
        case "tool":
          for (const part of message.content) {
            out.push({ role: "tool", tool_call_id: part.id, content: typeof part.result === "string" ? part.result : JSON.stringify(part.result) })
          }
          break
      }
    }
    return Effect.succeed(out)
  })

const requestError = (method: string) => (error: HttpClientError.RequestError) =>
  Effect.fail(AiError.HttpRequestError.fromRequestError({ module: MODULE, method, error }))
const responseError = (method: string) => (error: HttpClientError.ResponseError) =>
  AiError.HttpResponseError.fromResponseError({ module: MODULE, method, error })

const decodeChunk = Schema.decodeUnknown(ChatChunk)

/** A tool call's arguments, parsed the way @effect/ai's clients do (no prototype keys). */
const toolCallPart = (
  method: string,
  id: string,
  name: string,
  args: string
): Effect.Effect<Response.ToolCallPartEncoded, AiError.MalformedOutput> =>
  Effect.try({
    try: () => ({ type: "tool-call" as const, id, name, params: Tool.unsafeSecureJsonParse(args === "" ? "{}" : args) }),
    catch: (cause) =>
      new AiError.MalformedOutput({
        module: MODULE,
        method,
        description: `Failed to securely parse tool call parameters for tool '${name}':\nParameters: ${args}`,
        cause
      })
  })

/** The offered tools and the tool choice as Chat Completions fields (none without tools). */
const toolFields = (providerOptions: LanguageModel.ProviderOptions) => {
  if (providerOptions.tools.length === 0) return {}
  const choice = providerOptions.toolChoice
  return {
    tools: providerOptions.tools.map((tool) => ({
      type: "function",
      function: {
        name: tool.name,
        ...(tool.description !== undefined ? { description: tool.description } : {}),
        parameters: Tool.getJsonSchema(tool as any)
      }
    })),
    tool_choice: typeof choice === "string"
      ? choice
      : "tool" in choice
      ? { type: "function", function: { name: choice.tool } }
      : choice.mode ?? "auto"
  }
}

/** One SSE event's data: `[DONE]` is the end marker; anything else must be a chunk. */
const parseEvent = (data: string): Effect.Effect<Option.Option<ChatChunk>, AiError.MalformedOutput> => {
  if (data.trim() === "[DONE]") return Effect.succeedNone
  let json: unknown
  try {
    json = JSON.parse(data)
  } catch {
    return Effect.fail(
      new AiError.MalformedOutput({ module: MODULE, method: "streamText", description: `a stream event is not valid JSON: ${data.slice(0, 200)}` })
    )
  }
  return decodeChunk(json).pipe(
    Effect.map(Option.some),
    Effect.catchAll((error) =>
      AiError.MalformedOutput.fromParseError({ module: MODULE, method: "streamText", error })
    )
  )
}

export interface Options {
  readonly model: string
  /** Request fields for every call (a per-call `Config` wins). */
  readonly config?: Config.Service | undefined
}

export const make = Effect.fnUntraced(function*(options: Options) {
  const client = yield* OpenAiClient.OpenAiClient
  // The client's own HTTP client: base URL, bearer key and JSON accept header already applied.
  const http = HttpClient.filterStatusOk(client.client.httpClient)

  const body = (providerOptions: LanguageModel.ProviderOptions, method: string, stream: boolean) =>
    Effect.gen(function*() {
      const messages = yield* chatMessages(providerOptions.prompt, method)
      const perCall = yield* Effect.serviceOption(Config)
      const config = { ...options.config, ...Option.getOrUndefined(perCall) }
      const fields = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined))
      return {
        model: options.model,
        messages,
        ...toolFields(providerOptions),
        ...fields,
        ...(stream ? { stream: true, stream_options: { include_usage: true } } : {})
      }
    })

  const generateText = (providerOptions: LanguageModel.ProviderOptions) =>
    Effect.gen(function*() {
      const request = yield* body(providerOptions, "generateText", false)
      const completion = yield* http.execute(HttpClientRequest.post("/chat/completions", { body: HttpBody.unsafeJson(request) })).pipe(
        Effect.flatMap(HttpClientResponse.schemaBodyJson(ChatCompletion)),
        Effect.catchTags({
          RequestError: requestError("generateText"),
          ResponseError: responseError("generateText"),
          ParseError: (error: ParseResult.ParseError) =>
            AiError.MalformedOutput.fromParseError({ module: MODULE, method: "generateText", error })
        })
      )
      const choice = completion.choices[0]
      const parts: Array<Response.PartEncoded> = [metadataOf(completion)]
      const text = choice?.message.content ?? ""
      if (text !== "") parts.push({ type: "text", text })
      for (const call of choice?.message.tool_calls ?? []) {
        parts.push(yield* toolCallPart("generateText", call.id, call.function.name, call.function.arguments))
      }
      parts.push({ type: "finish", reason: finishReasonOf(choice?.finish_reason), usage: usageOf(completion.usage) })
      return parts
    })

  const streamText = (providerOptions: LanguageModel.ProviderOptions): Stream.Stream<Response.StreamPartEncoded, AiError.AiError> =>
    Stream.unwrap(Effect.map(body(providerOptions, "streamText", true), (request) => {
      const events = http.execute(HttpClientRequest.post("/chat/completions", { body: HttpBody.unsafeJson(request) })).pipe(
        Effect.map((response) => response.stream),
        Stream.unwrapScoped,
        Stream.decodeText(),
        Stream.pipeThroughChannel(Sse.makeChannel()),
        Stream.catchTags({
          RequestError: (error) => Stream.fromEffect(requestError("streamText")(error)),
          ResponseError: (error) => Stream.fromEffect(responseError("streamText")(error))
        }),
        Stream.mapEffect((event) => parseEvent(event.data)),
        Stream.filterMap((chunk) => chunk)
      )
      // Per stream run: what the chunks have said so far.
      return Stream.suspend(() => {
        const textId = "text"
        let started = false
        let textOpen = false
        let failed = false
        let finish: string | null | undefined
        let usage: typeof ChatUsage.Type | null | undefined
        // Streamed tool calls by index: opened by a piece with id and name, completed at the end.
        const calls: Array<{ id: string; name: string; args: string }> = []
        const onChunk = (chunk: ChatChunk): Array<Response.StreamPartEncoded> => {
          const parts: Array<Response.StreamPartEncoded> = []
          if (!started) {
            started = true
            parts.push(metadataOf(chunk))
          }
          if (chunk.error !== undefined) {
            failed = true
            parts.push({ type: "error", error: chunk.error })
            return parts
          }
          if (chunk.usage != null) usage = chunk.usage
          for (const choice of chunk.choices ?? []) {
            const delta = choice.delta?.content
            if (delta != null && delta !== "") {
              if (!textOpen) {
                textOpen = true
                parts.push({ type: "text-start", id: textId })
              }
              parts.push({ type: "text-delta", id: textId, delta })
            }
            for (const piece of choice.delta?.tool_calls ?? []) {
              let call = calls[piece.index]
              if (call === undefined) {
                call = calls[piece.index] = { id: piece.id ?? `call_${piece.index}`, name: piece.function?.name ?? "", args: "" }
                parts.push({ type: "tool-params-start", id: call.id, name: call.name })
              }
              call.args += piece.function?.arguments ?? ""
            }
            if (choice.finish_reason != null) finish = choice.finish_reason
          }
          return parts
        }
        // The finish part waits for the end: usage comes in a chunk after the finish reason.
        // Without a finish reason there is no finish part, and the caller sees a broken stream.
        const end = Stream.unwrap(Effect.suspend(() => {
          if (failed || finish === undefined) return Effect.succeed(Stream.empty)
          return Effect.gen(function*() {
            const parts: Array<Response.StreamPartEncoded> = []
            if (textOpen) parts.push({ type: "text-end", id: textId })
            for (const call of calls) {
              if (call === undefined) continue
              parts.push({ type: "tool-params-end", id: call.id })
              parts.push(yield* toolCallPart("streamText", call.id, call.name, call.args))
            }
            parts.push({ type: "finish", reason: finishReasonOf(finish), usage: usageOf(usage) })
            return Stream.fromIterable(parts)
          })
        }))
        return events.pipe(
          Stream.takeUntil((chunk) => chunk.error !== undefined),
          Stream.mapConcat(onChunk),
          Stream.concat(end)
        )
      })
    }))

  return yield* LanguageModel.make({ generateText, streamText })
})

export const layer = (options: Options): Layer.Layer<LanguageModel.LanguageModel, never, OpenAiClient.OpenAiClient> =>
  Layer.effect(LanguageModel.LanguageModel, make(options))

/** Request fields for the calls inside `self` (a per-call `max_tokens`, say). */
export const withConfigOverride = (overrides: Config.Service) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.serviceOption(Config), (current) =>
    Effect.provideService(self, Config, { ...Option.getOrUndefined(current), ...overrides }))
