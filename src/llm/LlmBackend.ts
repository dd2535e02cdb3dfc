/**
 * One configured backend, connected: its provider's client (base URL, API key) and a
 * `LanguageModel` per model it serves, built once in the router's scope and shared by every
 * request. Which @effect/ai model speaks for which wire format:
 * - `responses`: `OpenAiLanguageModel` (OpenAI's Responses API);
 * - `chat`: `OpenAiChatLanguageModel` (Chat Completions, the OpenAI-compatible servers);
 * - `anthropic`: `AnthropicLanguageModel` (Messages).
 * A `mock` backend is a MockLlmServer started here, on a free loopback port, for as long as
 * the scope lasts, and spoken to with one of the above.
 */
import { type AiError, LanguageModel, type Prompt, type Response, type Toolkit } from "@effect/ai"
import { AnthropicClient, AnthropicLanguageModel } from "@effect/ai-anthropic"
import { OpenAiClient, OpenAiLanguageModel } from "@effect/ai-openai"
import { type FileSystem, type HttpClient, Path } from "@effect/platform"
import { Config, ConfigProvider, Effect, Option, Redacted, type Scope, Stream } from "effect"
import { LlmConfigError } from "../domain/Llm.js"
import { type LlmBackendConfig, type LlmWire, providerInfo } from "../domain/LlmConfig.js"
import { MockLlmServer } from "./MockLlmServer.js"
import { loadMockScript } from "./MockScript.js"
import * as OpenAiChatLanguageModel from "./OpenAiChatLanguageModel.js"

export interface BackendConnection {
  readonly wire: LlmWire
  /** Where requests go (for a mock: the server it started). */
  readonly baseUrl: string
  /** The models' context window: the backend's `context_window`, or a mock script's. */
  readonly contextWindow: number | undefined
  /** With a toolkit, the tools are offered and their calls returned, never run (see ToolPrompt.ts). */
  readonly generateText: (
    model: string,
    prompt: Prompt.Prompt,
    maxOutputTokens: number,
    toolkit?: Toolkit.Toolkit<any> | undefined
  ) => Effect.Effect<LanguageModel.GenerateTextResponse<{}>, AiError.AiError>
  readonly streamText: (
    model: string,
    prompt: Prompt.Prompt,
    maxOutputTokens: number,
    toolkit?: Toolkit.Toolkit<any> | undefined
  ) => Stream.Stream<Response.StreamPart<{}>, AiError.AiError>
}

export interface ConnectOptions {
  /** The organism file's directory: a mock's `script` is relative to it. */
  readonly baseDir: string
  /**
   * Where API keys are read: this map when given, otherwise the Effect's ConfigProvider
   * (the process environment unless one was set, e.g. with `Layer.setConfigProvider`).
   */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
}

const wireOf = (b: LlmBackendConfig): LlmWire =>
  b.provider === "mock"
    ? b.wire === "anthropic" ? "anthropic" : b.api === "chat" ? "chat" : "responses"
    : b.provider === "openai"
    ? b.api === "chat" ? "chat" : "responses"
    : providerInfo[b.provider].wire

/**
 * The API key, read as `Config.redacted` (never printed: logs and errors show `<redacted>`).
 * A missing key fails the start, naming the variable: better than a 401 on the first call.
 */
const apiKeyOf = (b: LlmBackendConfig, env: ConnectOptions["env"]): Effect.Effect<Redacted.Redacted | undefined, LlmConfigError> => {
  const info = providerInfo[b.provider]
  const variable = b.api_key_env ?? info.keyEnv
  if (variable === undefined) return Effect.succeed(undefined)
  const read = Config.redacted(variable).pipe(Config.option)
  const withEnv = env === undefined ? read : Effect.withConfigProvider(read, fromEnv(env))
  return withEnv.pipe(
    // A value Config cannot read counts as missing; an empty one too.
    Effect.orElseSucceed(() => Option.none<Redacted.Redacted>()),
    Effect.flatMap((key) => {
      if (Option.isSome(key) && Redacted.value(key.value) !== "") return Effect.succeed(key.value)
      // A key named explicitly is wanted; a provider's default variable only when it needs one.
      if (b.api_key_env === undefined && !info.keyRequired) return Effect.succeed(undefined)
      return Effect.fail(
        new LlmConfigError({
          backend: b.name,
          message: `backend "${b.name}" (${b.provider}): the environment variable ${variable} that should hold its API key is not set`
        })
      )
    })
  )
}

/** A ConfigProvider over an explicit environment map (unset entries left out). */
const fromEnv = (env: Readonly<Record<string, string | undefined>>) =>
  ConfigProvider.fromMap(new Map(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)))

/** Starts the mock server of a `mock` backend; its base URLs. */
const startMock = (b: LlmBackendConfig, baseDir: string) =>
  Effect.gen(function*() {
    const path = yield* Path.Path
    const script = b.script === undefined ? undefined : yield* loadMockScript(path.resolve(baseDir, b.script))
    const server = yield* MockLlmServer.make({ script })
    return { server, contextWindow: script?.context_window }
  }).pipe(
    Effect.mapError((e) =>
      new LlmConfigError({
        backend: b.name,
        message: e._tag === "MockScriptError"
          ? `backend "${b.name}": the mock script cannot be used:\n${e.message}`
          : `backend "${b.name}": the mock server cannot start: ${e.message}`
      })
    )
  )

const trimSlash = (url: string) => url.replace(/\/+$/, "")

export const connectBackend = Effect.fn("LlmBackend.connect")(function*(b: LlmBackendConfig, options: ConnectOptions): Effect.fn.Return<
  BackendConnection,
  LlmConfigError,
  HttpClient.HttpClient | FileSystem.FileSystem | Path.Path | Scope.Scope
> {
  const wire = wireOf(b)
  const apiKey = yield* apiKeyOf(b, options.env)
  let baseUrl: string
  let contextWindow = b.context_window
  if (b.provider === "mock") {
    const { contextWindow: scripted, server } = yield* startMock(b, options.baseDir)
    baseUrl = wire === "anthropic" ? server.url : server.openAiUrl
    contextWindow ??= scripted
  } else {
    // The schema requires base_url where the provider has no default.
    baseUrl = trimSlash(b.base_url ?? providerInfo[b.provider].baseUrl ?? "")
  }

  const models = new Map<string, LanguageModel.Service>()
  let withLimit: {
    readonly effect: <A, E, R>(self: Effect.Effect<A, E, R>, n: number) => Effect.Effect<A, E, R>
    readonly stream: <A, E, R>(self: Stream.Stream<A, E, R>, n: number) => Stream.Stream<A, E, R>
  }
  if (wire === "anthropic") {
    const client = yield* AnthropicClient.make({ apiUrl: baseUrl, apiKey })
    for (const model of b.models) {
      models.set(model, yield* Effect.provideService(AnthropicLanguageModel.make({ model }), AnthropicClient.AnthropicClient, client))
    }
    withLimit = {
      effect: (self, n) => AnthropicLanguageModel.withConfigOverride(self, { max_tokens: n }),
      stream: (self, n) => self.pipe(Stream.provideService(AnthropicLanguageModel.Config, { max_tokens: n }))
    }
  } else {
    const client = yield* OpenAiClient.make({ apiUrl: baseUrl, apiKey })
    for (const model of b.models) {
      // Not strict: OpenAI's structured outputs mode refuses a tool schema with an optional
      // property (not in `required`), which payload types may well have.
      const make = wire === "responses"
        ? OpenAiLanguageModel.make({ model, config: { strict: false } })
        : OpenAiChatLanguageModel.make({ model })
      models.set(model, yield* Effect.provideService(make, OpenAiClient.OpenAiClient, client))
    }
    if (wire === "responses") {
      withLimit = {
        effect: (self, n) => OpenAiLanguageModel.withConfigOverride(self, { max_output_tokens: n }),
        stream: (self, n) => self.pipe(Stream.provideService(OpenAiLanguageModel.Config, { max_output_tokens: n }))
      }
    } else {
      // OpenAI itself deprecated max_tokens for max_completion_tokens; the compatible servers read max_tokens.
      const field = b.provider === "openai" ? "max_completion_tokens" : "max_tokens"
      withLimit = {
        effect: (self, n) => OpenAiChatLanguageModel.withConfigOverride({ [field]: n })(self),
        stream: (self, n) => self.pipe(Stream.provideService(OpenAiChatLanguageModel.Config, { [field]: n }))
      }
    }
  }

  const modelOf = (model: string): LanguageModel.Service => {
    const lm = models.get(model)
    // The router only asks a backend for the models it lists.
    if (lm === undefined) throw new Error(`backend "${b.name}" does not serve model "${model}"`)
    return lm
  }

  const connection: BackendConnection = {
    wire,
    baseUrl,
    contextWindow,
    generateText: (model, prompt, maxOutputTokens, toolkit) =>
      withLimit.effect(
        Effect.suspend(() =>
          toolkit === undefined
            ? modelOf(model).generateText({ prompt })
            : (modelOf(model).generateText({ prompt, toolkit, disableToolCallResolution: true }) as Effect.Effect<
              LanguageModel.GenerateTextResponse<{}>,
              AiError.AiError
            >)
        ),
        maxOutputTokens
      ),
    streamText: (model, prompt, maxOutputTokens, toolkit) =>
      withLimit.stream(
        Stream.suspend(() =>
          toolkit === undefined
            ? modelOf(model).streamText({ prompt })
            : (modelOf(model).streamText({ prompt, toolkit, disableToolCallResolution: true }) as Stream.Stream<
              Response.StreamPart<{}>,
              AiError.AiError
            >)
        ),
        maxOutputTokens
      )
  }
  return connection
})
