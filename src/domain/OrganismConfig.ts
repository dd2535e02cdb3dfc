/**
 * The YAML organism file, as an Effect Schema. Keys are snake_case like xml-pipeline's.
 * Unknown keys are errors (the loader suggests the closest known key). Every field carries a
 * `message` so a wrong value reads as "expected …" rather than as a type dump.
 */
import { Duration, Schema } from "effect"
import { DurationConfig, expected, expectedOneOf, integerAtLeast, NonNegativeInt, PositiveInt } from "./ConfigValues.js"
import type { ConcurrencyClass } from "./Listener.js"
import { StagePoint } from "./CustomStage.js"
import { LlmConfig } from "./LlmConfig.js"

// Where they always were, for the modules that import them from here.
export { DurationConfig, NonNegativeInt, parseDuration, PositiveInt } from "./ConfigValues.js"

const Text = Schema.String.annotations(expected("a string"))
const Flag = Schema.Boolean.annotations(expected("true or false"))
const Name = Schema.String.annotations(expected("a name")).pipe(Schema.pattern(/^[A-Za-z_][A-Za-z0-9_.:-]*$/), Schema.maxLength(128)).annotations(
  expected("a name: a letter or _, then letters, digits, '_', '.', ':' or '-'")
)
const ModuleRef = Schema.String.pipe(Schema.pattern(/^[^#]+#[A-Za-z_$][\w$]*$/)).annotations(
  expected("a module reference like ./module.ts#ExportName")
)
const PayloadRef = Schema.String.pipe(Schema.pattern(/^([^#]+#[A-Za-z_$][\w$]*|[A-Z][A-Za-z0-9]*)$/)).annotations(
  expected("a payload type: ./module.ts#ExportName, or a built-in name such as TextInput")
)

export const ConcurrencyConfig = Schema.transform(
  Schema.Union(
    Schema.Literal("safe", "exclusive"),
    Schema.TemplateLiteral(Schema.Literal("category:"), Schema.String)
  ).annotations(expected(`"safe", "exclusive" or "category:NAME"`)),
  Schema.Any as Schema.Schema<ConcurrencyClass>,
  {
    strict: true,
    decode: (s): ConcurrencyClass =>
      s === "safe"
        ? { _tag: "Safe" }
        : s === "exclusive"
        ? { _tag: "Exclusive" }
        : { _tag: "Category", name: s.slice("category:".length) },
    encode: (c) => (c._tag === "Safe" ? "safe" : c._tag === "Exclusive" ? "exclusive" : `category:${c.name}` as `category:${string}`)
  }
)

export class RetryConfig extends Schema.Class<RetryConfig>("RetryConfig")({
  /** Retries after the first attempt. */
  times: NonNegativeInt,
  delay: Schema.optionalWith(DurationConfig, { default: () => Duration.millis(100) }),
  backoff: Schema.optionalWith(Schema.Literal("fixed", "exponential").annotations(expected(`"fixed" or "exponential"`)), {
    default: () => "exponential" as const
  }),
  max_delay: Schema.optional(DurationConfig)
}) {}

/** A token count, or "unlimited". */
export const TokenLimit = Schema.Union(PositiveInt, Schema.Literal("unlimited")).annotations(
  expected(`a positive number of tokens, or "unlimited"`)
)

export class ContextConfig extends Schema.Class<ContextConfig>("ContextConfig")({
  max_slots_per_thread: Schema.optional(PositiveInt),
  max_threads: Schema.optional(PositiveInt),
  on_full: Schema.optional(Schema.Literal("reject", "drop-oldest").annotations(expected(`"reject" or "drop-oldest"`))),
  retain_completed: Schema.optional(NonNegativeInt),
  retain_for: Schema.optional(DurationConfig)
}) {}

export class GuardsConfig extends Schema.Class<GuardsConfig>("GuardsConfig")({
  max_chain_depth: Schema.optional(PositiveInt),
  max_invocations_per_thread: Schema.optional(PositiveInt),
  max_agent_steps: Schema.optional(PositiveInt),
  loop_threshold: Schema.optional(integerAtLeast(2)),
  max_thread_duration: Schema.optional(DurationConfig)
}) {}

/** The ingress stages (README "Ingress workers"). */
export class IngressSectionConfig extends Schema.Class<IngressSectionConfig>("IngressSectionConfig")({
  /** Worker threads for the libxml2 stages of large inbox chunks; 0: none. */
  workers: Schema.optional(NonNegativeInt)
}) {}

export class OrganismSection extends Schema.Class<OrganismSection>("OrganismSection")({
  name: Name,
  description: Schema.optional(Text),
  injector: Schema.optional(Name),
  max_concurrent_handlers: Schema.optional(PositiveInt),
  max_concurrent_per_agent: Schema.optional(PositiveInt),
  inbox_capacity: Schema.optional(PositiveInt),
  handler_timeout: Schema.optional(DurationConfig),
  dead_letter_capacity: Schema.optional(NonNegativeInt),
  max_message_bytes: Schema.optional(PositiveInt),
  max_xml_depth: Schema.optional(PositiveInt),
  repair: Schema.optional(Flag),
  ingress: Schema.optional(IngressSectionConfig),
  guards: Schema.optional(GuardsConfig),
  max_tokens_per_thread: Schema.optional(TokenLimit),
  context: Schema.optional(ContextConfig),
  /** The payload wire form: `native` (default) or `xmlify` (xml-pipeline's dataclasses). */
  wire: Schema.optional(Schema.Literal("native", "xmlify").annotations(expectedOneOf(`"native" or "xmlify"`)))
}) {}

const PayloadName = Schema.String.pipe(Schema.pattern(/^[A-Za-z_][A-Za-z0-9_.-]*$/)).annotations(
  expected("a payload type name like FinalAnswer")
)

const stopWhenFields = {
  /** An answer sends a payload of this type (or one of these). */
  produced: Schema.optional(Schema.Union(PayloadName, Schema.Array(PayloadName)).annotations(
    expectedOneOf("a payload type name, or a list of them")
  )),
  /** The agent has answered this many times in the conversation. */
  steps: Schema.optional(PositiveInt),
  /** The agent has spent this many tokens in the conversation. */
  tokens: Schema.optional(PositiveInt),
  /** A function (context) => boolean, or an Effect of one (see StopContext). */
  handler: Schema.optional(ModuleRef)
}

/** LLM agents: when their loop stops in a conversation (any one condition given). */
export class StopWhenConfig extends Schema.Class<StopWhenConfig>("StopWhenConfig")(
  Schema.Struct(stopWhenFields).pipe(Schema.filter((c) =>
    c.produced === undefined && c.steps === undefined && c.tokens === undefined && c.handler === undefined
      ? "give at least one of produced, steps, tokens or handler"
      : undefined
  ))
) {}

/** LLM agents: what to do when they repeat their answers. */
export class LoopDetectionConfig extends Schema.Class<LoopDetectionConfig>("LoopDetectionConfig")({
  repeats: Schema.optional(integerAtLeast(2)),
  max_period: Schema.optional(PositiveInt),
  action: Schema.optional(Schema.Literal("stop", "warn").annotations(expectedOneOf(`"stop" or "warn"`)))
}) {}

/** An LLM agent's context fitting (README "Context that fits"). */
export class AgentContextConfig extends Schema.Class<AgentContextConfig>("AgentContextConfig")({
  /** The model's context window in tokens (default: its backends' `context_window`). */
  window: Schema.optional(PositiveInt),
  /** Tokens kept free for the answer (default: the agent's max_output_tokens). */
  reserve_output: Schema.optional(PositiveInt),
  strategy: Schema.optional(
    Schema.Literal("drop_oldest", "summarise").annotations(expectedOneOf(`"drop_oldest" or "summarise"`))
  ),
  /** With strategy summarise: the LLM agent (a listener of this file) that writes the summaries. */
  summariser: Schema.optional(Name),
  /** A received message longer than this is cut, with a marker. */
  max_tool_result_tokens: Schema.optional(PositiveInt)
}) {}

export class ListenerConfig extends Schema.Class<ListenerConfig>("ListenerConfig")({
  name: Name,
  payload: PayloadRef,
  accepts: Schema.optional(Schema.Array(PayloadRef)),
  /** Required, except for an LLM agent (agent: true with a prompt). */
  handler: Schema.optional(ModuleRef),
  on_system: Schema.optional(ModuleRef),
  description: Schema.optional(Text),
  agent: Schema.optional(Flag),
  peers: Schema.optional(Schema.Array(Name).annotations(expected("a list of listener names"))),
  broadcast: Schema.optional(Flag),
  timeout: Schema.optional(DurationConfig),
  concurrency: Schema.optional(ConcurrencyConfig),
  max_concurrent: Schema.optional(PositiveInt),
  retry: Schema.optional(RetryConfig),
  prompt: Schema.optional(Text),
  max_tokens_per_thread: Schema.optional(PositiveInt),
  /** LLM agents: the model to ask (the router's default otherwise). */
  model: Schema.optional(Text),
  /** LLM agents: caps each answer. */
  max_output_tokens: Schema.optional(PositiveInt),
  /** `required`: every message to this listener waits for a person to approve or deny it. */
  approval: Schema.optional(Schema.Literal("none", "required").annotations(expectedOneOf(`"required" or "none"`))),
  /** LLM agents: when their loop stops in a conversation. */
  stop_when: Schema.optional(StopWhenConfig),
  /** LLM agents: repeated answers are a loop (warn the agent, or stop it). */
  loop_detection: Schema.optional(LoopDetectionConfig),
  /** LLM agents: peer name → the most calls to it per conversation. */
  peer_limits: Schema.optional(
    Schema.Record({ key: Schema.String, value: PositiveInt }).annotations(expected("a mapping of peer names to numbers of calls"))
  ),
  /** LLM agents: stream answers (LlmOutputDelta events); the llm section's `stream` otherwise. */
  stream: Schema.optional(Flag),
  /** LLM agents: reasoning tokens (where reported) per conversation before the agent stops calling its model. */
  max_reasoning_tokens: Schema.optional(PositiveInt),
  /** LLM agents: fitting the history to the model's context window. */
  context: Schema.optional(AgentContextConfig),
  /** LLM agents: `xml` (default) or `tools` (native tool calls). */
  protocol: Schema.optional(Schema.Literal("xml", "tools").annotations(expectedOneOf(`"xml" or "tools"`))),
  /** LLM agents with `protocol: tools`: tool calls sent per answer at most (default 8). */
  max_tool_calls: Schema.optional(PositiveInt)
}) {}

export class BootConfig extends Schema.Class<BootConfig>("BootConfig")({
  to: Name,
  /** The payload element as XML text. */
  payload: Text
}) {}

/** An organism's own pipeline stage: where it runs and the function that runs there. */
export class StageConfig extends Schema.Class<StageConfig>("StageConfig")({
  /** Named in rejections; the function's export name when absent. */
  name: Schema.optional(Name),
  at: StagePoint.annotations(expected(`"after-decode", "before-dispatch" or "before-reply"`)),
  /** A function (message) => payload, or an Effect of one; see CustomStage. */
  run: ModuleRef
}) {}

/**
 * An MCP server whose tools become listeners (see src/mcp/): a command started as a child
 * process speaking MCP over stdio, or the URL of a streamable HTTP endpoint.
 */
export class McpServerConfig extends Schema.Class<McpServerConfig>("McpServerConfig")({
  /** Its tools are the listeners `NAME.TOOL`. */
  name: Name,
  command: Schema.optional(Text),
  args: Schema.optional(Schema.Array(Text).annotations(expected("a list of strings"))),
  /** Added to the organism's environment. */
  env: Schema.optional(Schema.Record({ key: Schema.String, value: Text }).annotations(expected("a mapping of names to strings"))),
  /** The command's working directory, relative to the organism file (default: its folder). */
  cwd: Schema.optional(Text),
  url: Schema.optional(Text),
  headers: Schema.optional(Schema.Record({ key: Schema.String, value: Text }).annotations(expected("a mapping of header names to strings"))),
  /** The tools to take (default: all it offers). */
  tools: Schema.optional(Schema.Array(Text).annotations(expected("a list of tool names"))),
  /** Per tool call (the listeners' timeout); the organism's handler_timeout otherwise. */
  timeout: Schema.optional(DurationConfig),
  /** How long the server may take to start and answer `initialize` (default 30s). */
  start_timeout: Schema.optional(DurationConfig)
}) {}

export class OrganismConfig extends Schema.Class<OrganismConfig>("OrganismConfig")({
  organism: OrganismSection,
  listeners: Schema.Array(ListenerConfig).annotations(expected("a list of listeners")),
  boot: Schema.optional(Schema.Array(BootConfig).annotations(expected("a list of {to, payload} messages"))),
  stages: Schema.optional(Schema.Array(StageConfig).annotations(expected("a list of {at, run} stages"))),
  /**
   * The models agents call (see LlmConfig). Exact: with `LlmConfig | undefined`, every
   * mistake inside the section would also be reported as "expected undefined" at `llm`.
   */
  llm: Schema.optionalWith(LlmConfig, { exact: true }),
  /** MCP servers whose tools are listeners. */
  mcp: Schema.optional(Schema.Array(McpServerConfig).annotations(expected("a list of MCP servers ({name, command, args} or {name, url})")))
}) {}
