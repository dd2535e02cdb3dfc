/**
 * The organism file's `llm:` section, as an Effect Schema: the model backends the LLM router
 * may call and the policies it calls them under. Keys are snake_case like the rest of the
 * organism file; every value carries a message so a mistake reads as "expected …".
 *
 * Provider-specific keys (`api`, `script`, `wire`) live on the one backend struct rather than
 * in a union of per-provider structs: the loader's unknown-key suggestions can only list the
 * keys of one struct, and a combination that makes no sense is reported at the key that is
 * out of place, which says more than "expected one of 8 shapes".
 */
import { Duration, Schema } from "effect"
import { DurationConfig, expected, expectedOneOf, NonNegativeInt, PositiveInt } from "./ConfigValues.js"

/** A YAML value is never `undefined`: exact optional keys keep errors to the real problem. */
const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })
const withDefault = <S extends Schema.Schema.AnyNoContext>(schema: S, value: () => Schema.Schema.Type<S>) =>
  Schema.optionalWith(schema, { exact: true, default: value })

/** Not NonEmptyArray, which reports `[]` as "missing element 0". */
const nonEmptyList = <A, I>(item: Schema.Schema<A, I>, what: string) =>
  Schema.Array(item).annotations(expected(what)).pipe(Schema.minItems(1)).annotations(expected(what))

const Text = Schema.String.annotations(expected("a string"))
const Flag = Schema.Boolean.annotations(expected("true or false"))

const BackendName = Schema.String.annotations(expected("a name")).pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_.:-]*$/),
  Schema.maxLength(128)
).annotations(expected("a name: a letter or _, then letters, digits, '_', '.', ':' or '-'"))

const EnvName = Schema.String.pipe(Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*$/)).annotations(
  expected("an environment variable name like OPENAI_API_KEY")
)

const HttpUrl = Schema.String.pipe(
  Schema.filter((s) => {
    try {
      const u = new URL(s)
      return u.protocol === "http:" || u.protocol === "https:"
    } catch {
      return false
    }
  })
).annotations(expected("an http:// or https:// URL"))

const Price = Schema.Number.pipe(Schema.nonNegative(), Schema.finite()).annotations(
  expected("a non-negative number of US dollars")
)

const Priority = Schema.Number.annotations(expected("an integer")).pipe(Schema.int()).annotations(expected("an integer"))

export const LlmStrategy = Schema.Literal("failover", "round-robin", "least-loaded").annotations(
  expectedOneOf(`"failover", "round-robin" or "least-loaded"`)
)
export type LlmStrategy = typeof LlmStrategy.Type

export const LlmProvider = Schema.Literal(
  "openai",
  "openai-compatible",
  "ollama",
  "vllm",
  "llamacpp",
  "xai",
  "anthropic",
  "mock"
).annotations(
  expectedOneOf(`"openai", "openai-compatible", "ollama", "vllm", "llamacpp", "xai", "anthropic" or "mock"`)
)
export type LlmProvider = typeof LlmProvider.Type

/** `responses`: OpenAI's Responses API (POST /responses); `chat`: Chat Completions. */
export const OpenAiApi = Schema.Literal("responses", "chat").annotations(expectedOneOf(`"responses" or "chat"`))
export type OpenAiApi = typeof OpenAiApi.Type

export const MockWire = Schema.Literal("openai", "anthropic").annotations(expectedOneOf(`"openai" or "anthropic"`))
export type MockWire = typeof MockWire.Type

/** The wire format a backend speaks, once its provider and `api`/`wire` keys are resolved. */
export type LlmWire = "responses" | "chat" | "anthropic"

export interface ProviderInfo {
  /** What the provider speaks unless `api` (or, for the mock, `wire`) says otherwise. */
  readonly wire: LlmWire
  /** Undefined: `base_url` is required. */
  readonly baseUrl: string | undefined
  /** Where the API key is read from when `api_key_env` is not given. */
  readonly keyEnv: string | undefined
  /** A hosted API refuses every request without a key: its absence is a config error at start. */
  readonly keyRequired: boolean
}

/**
 * The OpenAI-compatible servers speak Chat Completions (their Responses support, where it
 * exists, lags behind). Local servers need no key; one is sent when `api_key_env` names one
 * (vLLM's `--api-key`, a llama.cpp server's `--api-key`).
 */
export const providerInfo: Readonly<Record<LlmProvider, ProviderInfo>> = {
  openai: { wire: "responses", baseUrl: "https://api.openai.com/v1", keyEnv: "OPENAI_API_KEY", keyRequired: true },
  "openai-compatible": { wire: "chat", baseUrl: undefined, keyEnv: undefined, keyRequired: false },
  ollama: { wire: "chat", baseUrl: "http://localhost:11434/v1", keyEnv: undefined, keyRequired: false },
  vllm: { wire: "chat", baseUrl: "http://localhost:8000/v1", keyEnv: undefined, keyRequired: false },
  llamacpp: { wire: "chat", baseUrl: "http://localhost:8080/v1", keyEnv: undefined, keyRequired: false },
  xai: { wire: "chat", baseUrl: "https://api.x.ai/v1", keyEnv: "XAI_API_KEY", keyRequired: true },
  anthropic: { wire: "anthropic", baseUrl: "https://api.anthropic.com", keyEnv: "ANTHROPIC_API_KEY", keyRequired: true },
  mock: { wire: "responses", baseUrl: undefined, keyEnv: undefined, keyRequired: false }
}

export class LlmPrice extends Schema.Class<LlmPrice>("LlmPrice")({
  /** US dollars per million prompt (input) tokens. */
  input_per_million: Price,
  /** US dollars per million completion (output) tokens. */
  output_per_million: Price
}) {}

const backendFields = {
  /** Names the backend in usage, errors and logs; unique within the organism. */
  name: BackendName,
  provider: LlmProvider,
  /** The API's base URL (OpenAI style: ending in /v1; Anthropic: without /v1). */
  base_url: optional(HttpUrl),
  /** The environment variable holding the API key. */
  api_key_env: optional(EnvName),
  /** The models this backend serves; a request without a model gets the first. */
  models: nonEmptyList(Text, "a list of model names (at least one)"),
  /** Failover order: lower first; backends without one come after, in file order. */
  priority: optional(Priority),
  /** Requests per minute; more wait (a token bucket), they do not fail. */
  rate_limit_rpm: optional(PositiveInt),
  /** Prompt + completion tokens per minute, estimated before a call and corrected after. */
  rate_limit_tpm: optional(PositiveInt),
  /** HTTP requests to this backend at once. */
  max_concurrent: optional(PositiveInt),
  /** Per request; overrides the section's `timeout`. */
  timeout: optional(DurationConfig),
  /** Overrides the section's `retries` for this backend. */
  retries: optional(NonNegativeInt),
  /** openai (and a mock with wire openai): `responses` (default) or `chat`. */
  api: optional(OpenAiApi),
  /** mock: the script file, relative to the organism file (default: echo every request). */
  script: optional(Text),
  /** mock: the wire format the router speaks to it (default openai). */
  wire: optional(MockWire),
  /**
   * The context window of its models, in tokens: what LLM agents fit their history to
   * (see an agent's `context`). A mock backend's default is its script's `context_window`.
   */
  context_window: optional(PositiveInt)
}

type BackendFields = Schema.Struct.Type<typeof backendFields>

const chatOnly = new Set<LlmProvider>(["openai-compatible", "ollama", "vllm", "llamacpp", "xai"])

/** Combinations that cannot mean anything, each reported at the key that is out of place. */
const checkBackend = (b: BackendFields): Array<Schema.FilterIssue> => {
  const issues: Array<Schema.FilterIssue> = []
  const mock = b.provider === "mock"
  if (!mock && b.script !== undefined) issues.push({ path: ["script"], message: "script goes with provider: mock" })
  if (!mock && b.wire !== undefined) issues.push({ path: ["wire"], message: "wire goes with provider: mock" })
  if (mock && b.base_url !== undefined) {
    issues.push({ path: ["base_url"], message: "a mock backend is started by the router on a free port: drop base_url" })
  }
  if (mock && b.api_key_env !== undefined) issues.push({ path: ["api_key_env"], message: "a mock backend needs no API key" })
  if (b.provider === "openai-compatible" && b.base_url === undefined) {
    issues.push({ path: ["base_url"], message: "provider openai-compatible needs a base_url (e.g. http://localhost:8000/v1)" })
  }
  if (b.api !== undefined) {
    if (b.provider === "anthropic" || (mock && b.wire === "anthropic")) {
      issues.push({ path: ["api"], message: "api chooses between OpenAI's APIs; Anthropic has one" })
    } else if (chatOnly.has(b.provider) && b.api !== "chat") {
      issues.push({ path: ["api"], message: `provider ${b.provider} speaks Chat Completions only: drop api or say chat` })
    }
  }
  return issues
}

export class LlmBackendConfig extends Schema.Class<LlmBackendConfig>("LlmBackendConfig")(
  Schema.Struct(backendFields).pipe(Schema.filter(checkBackend))
) {}

const sectionFields = {
  /** How a request's first backend is chosen; the others follow as fallbacks. */
  strategy: withDefault(LlmStrategy, () => "failover" as const),
  /** Retries on one backend before falling back to the next. */
  retries: withDefault(NonNegativeInt, () => 2),
  /** The first retry's backoff; doubled for each further one. */
  backoff_base: withDefault(DurationConfig, () => Duration.millis(500)),
  /** No backoff is longer. */
  backoff_max: withDefault(DurationConfig, () => Duration.seconds(10)),
  /** A longer Retry-After is cut to this. */
  retry_after_max: withDefault(DurationConfig, () => Duration.seconds(30)),
  /** Per request (one HTTP exchange, a whole stream included). */
  timeout: withDefault(DurationConfig, () => Duration.seconds(120)),
  /** How long a backend that failed (its retries used up) is passed over by the strategies. */
  cooldown: withDefault(DurationConfig, () => Duration.seconds(30)),
  max_output_tokens: withDefault(PositiveInt, () => 4096),
  /** Use the providers' streaming APIs by default. */
  stream: withDefault(Flag, () => false),
  /** By model name. Models without a price cost 0. */
  prices: withDefault(
    Schema.Record({ key: Schema.String, value: LlmPrice }).annotations(
      expected("a mapping of model names to {input_per_million, output_per_million}")
    ),
    () => ({})
  ),
  backends: nonEmptyList(LlmBackendConfig, "a list of backends (at least one)")
}

type SectionFields = Schema.Struct.Type<typeof sectionFields>

const checkSection = (c: SectionFields): Array<Schema.FilterIssue> => {
  const issues: Array<Schema.FilterIssue> = []
  const seen = new Map<string, number>()
  c.backends.forEach((b, i) => {
    const first = seen.get(b.name.toLowerCase())
    if (first !== undefined) {
      issues.push({ path: ["backends", i, "name"], message: `backend "${b.name}" is already defined at backends[${first}]` })
    } else seen.set(b.name.toLowerCase(), i)
  })
  if (Duration.greaterThan(c.backoff_base, c.backoff_max)) {
    issues.push({ path: ["backoff_base"], message: "backoff_base is longer than backoff_max" })
  }
  return issues
}

export class LlmConfig extends Schema.Class<LlmConfig>("LlmConfig")(
  Schema.Struct(sectionFields).pipe(Schema.filter(checkSection))
) {}

/** The section as written: what YAML holds and what code may decode instead of a file. */
export type LlmConfigInput = typeof LlmConfig.Encoded
