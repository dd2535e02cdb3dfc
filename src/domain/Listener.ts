/**
 * A listener: a name, the payload type it accepts, and a handler — plus the policies the
 * pump applies around it (peers, timeout, retry, concurrency class).
 */
import type { Duration, Effect, Schedule } from "effect"
import type { AgentLimits } from "./AgentLimits.js"
import type { ThreadId } from "./Ids.js"
import type { PayloadType } from "./Payload.js"
import type { Reply } from "./Reply.js"
import type { BudgetWarning } from "./BudgetPayloads.js"
import type { SystemError } from "./SystemPayloads.js"
import type { TodoClosed, TodoRegistered } from "./TodoPayloads.js"

// ConcurrencyClass (a Data.TaggedEnum) has its own module; it is exported from here too, as
// it always was.
import { ConcurrencyClass } from "./ConcurrencyClass.js"
export { ConcurrencyClass }

/** What a handler knows about the message besides its payload. */
export interface HandlerMetadata {
  /** The thread this message travels on (opaque: the chain behind it is not visible). */
  readonly thread: ThreadId
  /** The immediate sender. */
  readonly from: string
  /** This listener's own name. */
  readonly self: string
  /** True when the listener sent this message to itself. */
  readonly isSelfCall: boolean
  /** The conversation (root thread) this message belongs to: the key of its history and budget. */
  readonly root: ThreadId
  /**
   * What the pipeline changed or noticed on the way (a recovering parse that repaired the
   * text, a thread id from outside that was replaced): empty for a clean message.
   */
  readonly diagnostics: ReadonlyArray<string>
  /** Agents: the raised, still open todos and how to close them (see TodoRegistry). */
  readonly nudge?: string | undefined
  /** Agents: the system prompt plus usage instructions generated from the peers. */
  readonly instructions?: string | undefined
}

/** A handler's result: an Effect, a Promise or a plain value of a Reply (or nothing). */
export type HandlerResult<R> =
  | Effect.Effect<Reply | void, unknown, R>
  | Promise<Reply | void>
  | Reply
  | void

export type Handler<A, R = never> = (payload: A, metadata: HandlerMetadata) => HandlerResult<R>

/** Payloads every listener accepts without declaring them. */
export type SystemPayload = SystemError | BudgetWarning | TodoRegistered | TodoClosed

export interface Listener<A = any, R = any> {
  readonly name: string
  /** The payload type this listener is known by (its peers' usage instructions show it). */
  readonly payload: PayloadType
  /** Further payload types it accepts (replies it expects back, TextInput…). */
  readonly accepts: ReadonlyArray<PayloadType>
  /**
   * Accepts any payload sent to it by name: typed (and validated) when the organism knows
   * the type, otherwise as a RawPayload. For generic listeners (sinks, orchestrators).
   */
  readonly acceptsAny: boolean
  readonly handler: Handler<A, R>
  /**
   * Receives the system payloads every listener implicitly accepts (SystemError…). Without
   * one, such a message is delivered, recorded in events, and ends that branch.
   */
  readonly onSystem: Handler<SystemPayload, R> | undefined
  readonly description: string
  readonly agent: boolean
  /**
   * Listeners an agent may forward to. `undefined` = unrestricted (non-agents);
   * an agent with an empty list may forward to nobody.
   */
  readonly peers: ReadonlyArray<string> | undefined
  /** Also receives messages of its payload type sent without a `to`. */
  readonly broadcast: boolean
  /** Per-invocation deadline (including retries); the organism default when undefined. */
  readonly timeout: Duration.Duration | undefined
  /** Retried on failure (not on defects or timeouts) with this schedule. */
  readonly retry: Schedule.Schedule<unknown, unknown> | undefined
  readonly concurrency: ConcurrencyClass
  /** Concurrent invocations of this listener; agents default to the organism's per-agent limit. */
  readonly maxConcurrent: number | undefined
  /** An agent's system prompt. */
  readonly prompt: string | undefined
  /** Caps what this agent may spend of a conversation's token budget. */
  readonly maxTokensPerThread: number | undefined
  /**
   * Set for an LLM agent: the platform supplies the handler (model calls through the
   * LlmRouter; see `Listener.llmAgent`).
   */
  readonly llm: LlmAgentOptions | undefined
  /**
   * `"required"`: every message addressed to this listener waits, once it has passed every
   * check, for a person to approve or deny it (see the Approvals service).
   */
  readonly approval: ApprovalPolicy
}

/** Whether messages to a listener wait for a person's decision. */
export type ApprovalPolicy = "none" | "required"

/** How an LLM agent calls its model. */
export interface LlmAgentOptions {
  /** Model name; the router's default when absent. */
  readonly model?: string | undefined
  /** Caps each answer; the router's default when absent. */
  readonly maxOutputTokens?: number | undefined
  /** Model calls per invocation to fix unreadable output (default 2). */
  readonly outputRetries?: number | undefined
  /** Invocations per conversation caused by SystemErrors (default 3); then the agent gives up. */
  readonly errorRetries?: number | undefined
  /** Loop control per conversation: stop conditions, loop detection, peer ceilings. */
  readonly limits?: AgentLimits | undefined
  /** Stream the model's answers (`LlmOutputDelta` events as they arrive); the router's default when absent. */
  readonly stream?: boolean | undefined
  /**
   * Reasoning tokens (where the provider reports them) this agent may spend per
   * conversation; once they are spent it makes no further model calls there.
   */
  readonly maxReasoningTokens?: number | undefined
  /** How its history is fitted to the model's context window. */
  readonly context?: AgentContextOptions | undefined
  /**
   * How the model addresses peers: `xml` (the default) — payload elements in its text;
   * `tools` — native tool calls, one tool per peer payload type.
   */
  readonly protocol?: "xml" | "tools" | undefined
  /** `protocol: tools`: tool calls sent per answer at most (default 8); the rest are refused. */
  readonly maxToolCalls?: number | undefined
}

/** The agent that condenses the turns an agent's history drops (`strategy: summarise`). */
export interface SummariserOptions {
  /** Its name: usage and budget are counted under it. */
  readonly name: string
  /** Its system prompt: how to summarise. */
  readonly prompt: string
  readonly model?: string | undefined
  /** Caps a summary; the router's default when absent. */
  readonly maxOutputTokens?: number | undefined
}

/** An LLM agent's context fitting (YAML `context:`); see README "Context that fits". */
export interface AgentContextOptions {
  /** The model's context window in tokens; default the backends' `context_window`. */
  readonly window?: number | undefined
  /** Tokens kept free for the answer; default the agent's output cap. */
  readonly reserveOutput?: number | undefined
  /** What happens to the oldest turns that do not fit (default drop_oldest). */
  readonly strategy?: "drop_oldest" | "summarise" | undefined
  /** With `summarise`: the agent that writes the summaries. */
  readonly summariser?: SummariserOptions | undefined
  /** A message received longer than this is cut, with a marker saying so. */
  readonly maxToolResultTokens?: number | undefined
}

/** The payload values of a list of payload types. */
export type TypesOf<Accepts extends ReadonlyArray<PayloadType<any>>> = [Accepts[number]] extends [never] ? never
  : Accepts[number] extends PayloadType<infer B> ? B
  : never

export interface ListenerOptions<A, Accepts extends ReadonlyArray<PayloadType<any>>, R> {
  readonly name: string
  readonly payload: PayloadType<A>
  readonly accepts?: Accepts | undefined
  readonly acceptsAny?: boolean | undefined
  readonly handler: Handler<A | TypesOf<Accepts>, R>
  readonly onSystem?: Handler<SystemPayload, R> | undefined
  readonly description?: string | undefined
  readonly agent?: boolean | undefined
  readonly peers?: ReadonlyArray<string> | undefined
  readonly broadcast?: boolean | undefined
  readonly timeout?: Duration.Duration | undefined
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
  readonly concurrency?: ConcurrencyClass | undefined
  readonly maxConcurrent?: number | undefined
  readonly prompt?: string | undefined
  readonly maxTokensPerThread?: number | undefined
  /** `"required"`: messages to it wait for a person to approve them (default `"none"`). */
  readonly approval?: ApprovalPolicy | undefined
}

/**
 * Listeners in code. (`Listener.llmAgent`, an agent whose handler is a model, lives with the
 * agent's code in the pipeline: the package's `Listener` has both.)
 */
export const Listener: {
  readonly make: <A, const Accepts extends ReadonlyArray<PayloadType<any>> = [], R = never>(
    options: ListenerOptions<A, Accepts, R>
  ) => Listener<A | TypesOf<Accepts>, R>
} = {
  make: <A, const Accepts extends ReadonlyArray<PayloadType<any>> = [], R = never>(
    options: ListenerOptions<A, Accepts, R>
  ): Listener<A | TypesOf<Accepts>, R> => ({
    name: options.name,
    payload: options.payload,
    accepts: options.accepts ?? [],
    acceptsAny: options.acceptsAny ?? false,
    handler: options.handler,
    onSystem: options.onSystem,
    description: options.description ?? "",
    agent: options.agent ?? false,
    // Agents default to "no peers": an agent must be told whom it may talk to.
    peers: options.peers ?? (options.agent === true ? [] : undefined),
    broadcast: options.broadcast ?? false,
    timeout: options.timeout,
    retry: options.retry,
    concurrency: options.concurrency ?? ConcurrencyClass.safe,
    maxConcurrent: options.maxConcurrent,
    prompt: options.prompt,
    maxTokensPerThread: options.maxTokensPerThread,
    llm: undefined,
    approval: options.approval ?? "none"
  }),
} as const
