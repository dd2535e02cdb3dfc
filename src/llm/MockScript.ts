/**
 * The script of the mock LLM server: which reply each request gets. Written in YAML or JSON
 * (snake_case keys, like the organism file) or passed as an object; either way it goes
 * through this Schema, so a mistake is reported with the key it is about.
 *
 * `responses` is an ordered list. Each request is served by the first entry whose `match`
 * fits and which still has uses left (`times`, default 1, or `always`); when none does, by
 * `default` (built-in: echo the last user message). So "first 429, then 500, then text" is
 * three entries without `match`, and a rule is an entry with a `match` and `times: always`.
 */
import { FileSystem } from "@effect/platform"
import { Duration, Effect, Either, ParseResult, Schema } from "effect"
import { ConfigProblem, unreadableFile } from "../config/ConfigError.js"
import { decodeSource, formatPath, parseYaml, type YamlSource } from "../config/YamlSource.js"
import { DurationConfig, NonNegativeInt, PositiveInt } from "../domain/OrganismConfig.js"

const shown = (u: unknown) => (typeof u === "string" ? JSON.stringify(u) : u === undefined ? "nothing" : JSON.stringify(u))

const expected = (what: string) => ({
  message: (issue: ParseResult.ParseIssue) =>
    "actual" in issue ? `expected ${what}, got ${shown(issue.actual)}` : `expected ${what}`
})

/** For unions: one message for the whole choice instead of one per member. */
const expectedOneOf = (what: string) => ({
  message: (issue: ParseResult.ParseIssue) => ({
    message: "actual" in issue ? `expected ${what}, got ${shown(issue.actual)}` : `expected ${what}`,
    override: true
  })
})

/**
 * Exact optional keys: a YAML value is never `undefined`, and a `X | undefined` union would
 * add an "expected undefined" complaint next to every real problem inside X.
 */
const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })

const Text = Schema.String.annotations(expected("a string"))
const Flag = Schema.Boolean.annotations(expected("true or false"))

/**
 * `"pattern"` or `"/pattern/flags"` (flags i, m, s, u). The stateful flags g and y are
 * refused: a rule's regex is tested again and again and must answer the same each time.
 */
const compilePattern = (source: string): Either.Either<RegExp, string> => {
  const slashed = /^\/(.*)\/([a-z]*)$/s.exec(source)
  const body = slashed === null ? source : slashed[1]!
  const flags = slashed === null ? "" : slashed[2]!
  const bad = flags.replace(/[imsu]/g, "")
  if (bad !== "") return Either.left(`flag "${bad[0]}" is not allowed (use i, m, s or u)`)
  try {
    return Either.right(new RegExp(body, flags))
  } catch (e) {
    return Either.left(`not a valid regular expression: ${(e as Error).message}`)
  }
}

const patternSchema = (what: string, compile: (s: string) => Either.Either<RegExp, string>) =>
  Schema.transformOrFail(Schema.String.annotations(expected(what)), Schema.instanceOf(RegExp), {
    strict: true,
    decode: (s, _, ast) => Either.mapLeft(compile(s), (message) => new ParseResult.Type(ast, s, message)),
    encode: (re) => Either.right(re.flags === "" ? re.source : `/${re.source}/${re.flags}`)
  })

/** A regular expression searched for in a text (`"weather"` matches "what's the weather?"). */
export const Pattern = patternSchema("a regular expression", compilePattern)

/**
 * A model name: exact, so `gpt-4o` does not also catch `gpt-4o-mini` (a fallback test needs
 * to tell them apart), or `/regex/flags` for a pattern.
 */
export const ModelPattern = patternSchema("a model name, or /regex/", (s) =>
  s.startsWith("/") ? compilePattern(s) : Either.right(new RegExp(`^${s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`)))

export const Provider = Schema.Literal("openai", "anthropic").annotations(expectedOneOf(`"openai" or "anthropic"`))
export type Provider = typeof Provider.Type

/** `chat`: /v1/chat/completions, `responses`: /v1/responses (OpenAI), `messages`: /v1/messages (Anthropic). */
export const Endpoint = Schema.Literal("chat", "responses", "messages").annotations(
  expectedOneOf(`"chat", "responses" or "messages"`)
)
export type Endpoint = typeof Endpoint.Type

/** Provider-neutral; each wire format spells it its own way (Anthropic `end_turn`, `max_tokens`…). */
export const FinishReason = Schema.Literal("stop", "length", "tool_calls", "content_filter").annotations(
  expectedOneOf(`"stop", "length", "tool_calls" or "content_filter"`)
)
export type FinishReason = typeof FinishReason.Type

/**
 * - `drop`: the connection is closed before any byte of a response;
 * - `drop_mid_response`: headers and part of the body are sent, then the socket is destroyed;
 * - `malformed`: a 200 whose JSON (or one stream event's JSON) is cut short;
 * - `stream_error`: the stream starts, then the provider's error event ends it (the way an
 *   overloaded provider fails mid-stream); a plain request gets a 500 instead.
 */
export const FaultKind = Schema.Literal("drop", "drop_mid_response", "malformed", "stream_error").annotations(
  expectedOneOf(`"drop", "drop_mid_response", "malformed" or "stream_error"`)
)
export type FaultKind = typeof FaultKind.Type

const ErrorStatus = Schema.Number.annotations(expected("an HTTP status from 400 to 599")).pipe(
  Schema.int(),
  Schema.between(400, 599)
).annotations(expected("an HTTP status from 400 to 599"))

const RetryAfter = Schema.Union(
  Schema.Number.pipe(Schema.nonNegative()),
  Schema.String
).annotations(expectedOneOf("a number of seconds, or an HTTP date as a string"))

export const Times = Schema.Union(PositiveInt, Schema.Literal("always")).annotations(
  expectedOneOf(`a positive integer or "always"`)
)

export class MockUsage extends Schema.Class<MockUsage>("MockUsage")({
  prompt_tokens: optional(NonNegativeInt),
  completion_tokens: optional(NonNegativeInt),
  /**
   * Reasoning tokens among the completion tokens, reported where the wire has a field for
   * them (Responses `output_tokens_details`, Chat `completion_tokens_details`; Anthropic has none).
   */
  reasoning_tokens: optional(NonNegativeInt)
}) {}

export class MockMatch extends Schema.Class<MockMatch>("MockMatch")({
  /** The request's `model`: exact, or `/regex/`. */
  model: optional(ModelPattern),
  provider: optional(Provider),
  endpoint: optional(Endpoint),
  /** Searched in the text of the last user message. */
  user: optional(Pattern),
  /** Searched in the system prompt (every system/developer message and `instructions`). */
  system: optional(Pattern),
  /**
   * Searched in the tool results that end the request (the answers to the previous tool
   * calls); a request that does not end with tool results never matches.
   */
  tool_result: optional(Pattern),
  /** The request offers a tool of this exact name. */
  tool: optional(Text),
  stream: optional(Flag)
}) {}

/**
 * One scripted tool call: the tool's name and its arguments — a mapping (sent as its JSON) or
 * a string sent verbatim (so a script can send arguments that are not valid JSON).
 */
export class MockToolCall extends Schema.Class<MockToolCall>("MockToolCall")({
  name: Text,
  arguments: optional(Schema.Union(Text, Schema.Record({ key: Schema.String, value: Schema.Unknown })).annotations(
    expectedOneOf("a mapping of arguments, or a string sent verbatim")
  )),
  /** The call's id (default: generated, unique per reply). */
  id: optional(Text)
}) {}

const replyFields = {
  /** The assistant's text; a YAML block scalar (`text: |`) keeps code fences and XML as written. */
  text: optional(Text),
  /**
   * Tool calls, in order, in the wire's own form (Responses `function_call` items, Chat
   * `tool_calls`, Anthropic `tool_use` blocks); the finish reason defaults to `tool_calls`.
   * With `text`, both are sent; without, the answer has no text.
   */
  tool_calls: optional(Schema.Array(MockToolCall).annotations(expected("a list of tool calls ({name, arguments})"))),
  /** Reply with the text of the last user message. */
  echo: optional(Flag),
  finish_reason: optional(FinishReason),
  /** Token counts reported; each defaults to an estimate (one token per 4 characters). */
  usage: optional(MockUsage),
  /** Wait before sending the status line and headers. */
  delay: optional(DurationConfig),
  /** Wait between stream events carrying text. */
  chunk_delay: optional(DurationConfig),
  /** Characters of text per stream event (default 16). */
  chunk_size: optional(PositiveInt),
  /** Answer with this error status and the provider's error body. */
  status: optional(ErrorStatus),
  /** The error message of a `status` reply or a `stream_error`. */
  error: optional(Text),
  /** Seconds (or an HTTP date) for the `Retry-After` header of a `status` reply. */
  retry_after: optional(RetryAfter),
  /** Extra response headers. */
  headers: optional(Schema.Record({ key: Schema.String, value: Schema.String }).annotations(
    expected("a mapping of header names to strings")
  )),
  fault: optional(FaultKind),
  /** For a streamed `drop_mid_response`, `malformed` or `stream_error`: text events sent before the fault (default: half). */
  fault_after: optional(NonNegativeInt),
  /** Send the whole text whatever output cap the request asked for (a server that ignores it). */
  ignore_max_tokens: optional(Flag)
}

type ReplyFields = Schema.Struct.Type<typeof replyFields>

/** Combinations that cannot mean anything, each reported at the key that is out of place. */
const checkReply = (r: ReplyFields): Array<Schema.FilterIssue> => {
  const issues: Array<Schema.FilterIssue> = []
  if (r.text !== undefined && r.echo === true) issues.push({ path: ["echo"], message: "give either text or echo: true, not both" })
  if (r.tool_calls !== undefined && r.echo === true) issues.push({ path: ["echo"], message: "give either tool_calls or echo: true, not both" })
  if (r.status !== undefined && r.tool_calls !== undefined) {
    issues.push({ path: ["status"], message: "an error status sends the provider's error body, not tool calls; drop tool_calls or status" })
  }
  if (r.status !== undefined && r.fault !== undefined) {
    issues.push({ path: ["fault"], message: "a reply is either an error status or a fault, not both" })
  }
  if (r.status !== undefined && (r.text !== undefined || r.echo === true)) {
    issues.push({ path: ["status"], message: "an error status sends the provider's error body, not text; drop text/echo or status" })
  }
  if (r.status === undefined && r.fault !== "stream_error" && r.error !== undefined) {
    issues.push({ path: ["error"], message: "error is the message of an error status or a stream_error: add status (e.g. 500)" })
  }
  if (r.status === undefined && r.retry_after !== undefined) {
    issues.push({ path: ["retry_after"], message: "retry_after goes with an error status: add status (e.g. 429)" })
  }
  if (r.fault_after !== undefined && r.fault !== "drop_mid_response" && r.fault !== "malformed" && r.fault !== "stream_error") {
    issues.push({ path: ["fault_after"], message: "fault_after goes with fault: drop_mid_response, malformed or stream_error" })
  }
  return issues
}

export class MockReply extends Schema.Class<MockReply>("MockReply")(
  Schema.Struct(replyFields).pipe(Schema.filter(checkReply))
) {}

export class MockEntry extends Schema.Class<MockEntry>("MockEntry")(
  Schema.Struct({
    ...replyFields,
    /** Every condition given must hold; no `match` matches every request. */
    match: optional(MockMatch),
    /** How many requests this entry serves: a count (default 1) or `always`. */
    times: optional(Times)
  }).pipe(Schema.filter(checkReply))
) {}

export class MockScript extends Schema.Class<MockScript>("MockScript")({
  responses: Schema.optionalWith(Schema.Array(MockEntry).annotations(expected("a list of responses")), {
    default: () => [],
    exact: true
  }),
  /** Serves requests no entry takes; without it, the last user message is echoed. */
  default: optional(MockReply),
  /** Listed by GET /v1/models (default: one model, `mock-llm`). */
  models: optional(Schema.Array(Text).annotations(expected("a list of model names"))),
  /**
   * The model's context window in tokens (the mock's estimate: one per 4 characters). A
   * request whose prompt plus requested output cap exceeds it is refused with the provider's
   * own 400 "context length exceeded" error, as the real APIs do. Default: no limit.
   */
  context_window: optional(PositiveInt)
}) {}

/** The script as written: what YAML/JSON holds and what code may pass instead of a file. */
export type MockScriptInput = typeof MockScript.Encoded

/** A script that cannot be used; lists every problem, each with the key it is about. */
export class MockScriptError extends Schema.TaggedError<MockScriptError>()("MockScriptError", {
  file: Schema.String,
  problems: Schema.Array(ConfigProblem)
}) {
  override get message(): string {
    return this.problems.map(String).join("\n")
  }
}

const fail = (file: string, problems: ReadonlyArray<ConfigProblem>) =>
  new MockScriptError({ file, problems: [...problems] })

const decodeFrom = (source: YamlSource): Either.Either<MockScript, MockScriptError> => {
  if (source.value === null || source.value === undefined) return Either.right(new MockScript({}))
  if (typeof source.value !== "object" || Array.isArray(source.value)) {
    return Either.left(fail(source.file, [source.problem([], "expected a mapping with the keys responses, default, models")]))
  }
  return Either.mapLeft(decodeSource(source, MockScript), (problems) => fail(source.file, problems))
}

/** A script given as an object (the programmatic form); `label` names it in errors. */
export const decodeMockScript = (
  input: MockScriptInput | unknown,
  label = "mock script"
): Either.Either<MockScript, MockScriptError> =>
  decodeFrom({
    file: label,
    value: input,
    problem: (path, message) => new ConfigProblem({ file: label, line: 0, column: 0, key: formatPath(path, input), message })
  })

/** A script as YAML or JSON text (JSON is YAML), with line numbers in errors. */
export const parseMockScript = (file: string, text: string): Either.Either<MockScript, MockScriptError> => {
  const parsed = parseYaml(file, text)
  return Either.isLeft(parsed) ? Either.left(fail(file, parsed.left)) : decodeFrom(parsed.right)
}

export const loadMockScript = Effect.fn("MockScript.load")(function*(path: string) {
  const fs = yield* FileSystem.FileSystem
  const text = yield* Effect.mapError(fs.readFileString(path), (e) => fail(path, [unreadableFile(path, e)]))
  return yield* parseMockScript(path, text)
})

/** Milliseconds of an optional duration (0 when absent). */
export const millisOf = (d: Duration.Duration | undefined): number => (d === undefined ? 0 : Duration.toMillis(d))
