/**
 * What agents and handlers exchange with the LLM router: a conversation in, text and usage
 * out. Provider wire formats stay inside the router's backends.
 */
import { type Context, type Effect, Schema } from "effect"
import type { BudgetExhausted, BudgetWarning } from "./BudgetPayloads.js"
import type { ThreadId } from "./Ids.js"

export interface LlmMessage {
  /** `tool`: the results of the previous assistant message's tool calls (`toolResults`). */
  readonly role: "user" | "assistant" | "tool"
  /** The text (for a `tool` message, its results' text: what it weighs in the prompt). */
  readonly content: string
  /** An assistant message's tool calls, in the order the model made them. */
  readonly toolCalls?: ReadonlyArray<LlmToolCall> | undefined
  /** A `tool` message's results, one per call of the assistant message before it. */
  readonly toolResults?: ReadonlyArray<LlmToolResult> | undefined
}

/**
 * A tool offered to the model (native tool calls): its name, what it does, and its arguments'
 * JSON Schema (an object schema).
 */
export interface LlmTool {
  readonly name: string
  readonly description: string
  readonly parameters: Readonly<Record<string, unknown>>
}

/** A tool call the model made: the provider's call id, the tool, the arguments (parsed JSON). */
export interface LlmToolCall {
  readonly id: string
  readonly name: string
  readonly arguments: unknown
}

/** What answers a tool call: its text, and whether it is an error. */
export interface LlmToolResult {
  readonly id: string
  readonly name: string
  readonly content: string
  readonly isError: boolean
}

export interface LlmRequest {
  /** The agent asking: usage, budget caps and rate accounting are per agent. */
  readonly agent: string
  /** The conversation (root thread): budget and usage per conversation. */
  readonly root: ThreadId
  readonly system: string
  readonly messages: ReadonlyArray<LlmMessage>
  /** A model name; the router only uses backends that serve it (default: the backend's first model). */
  readonly model?: string | undefined
  /** Caps the answer (the router's default otherwise). */
  readonly maxOutputTokens?: number | undefined
  /** Use the provider's streaming API (the router's default otherwise). */
  readonly stream?: boolean | undefined
  /** The hop asking (the conversation's root otherwise): what `LlmOutputDelta` events name. */
  readonly thread?: ThreadId | undefined
  /** Tools the model may call (native tool calls); none when absent or empty. */
  readonly tools?: ReadonlyArray<LlmTool> | undefined
}

export interface LlmUsage {
  readonly promptTokens: number
  readonly completionTokens: number
  /** Hidden reasoning among the completion tokens, where the provider reports it. */
  readonly reasoningTokens?: number | undefined
}

export interface LlmResponse {
  readonly text: string
  readonly usage: LlmUsage
  readonly model: string
  readonly backend: string
  /** From the price table; 0 for models without a price. */
  readonly costUsd: number
  readonly finishReason: string
  /** Budget thresholds this call crossed, for the calling agent (see BudgetRegistry). */
  readonly warnings: ReadonlyArray<BudgetWarning>
  /** Requests sent, retries and fallbacks included. */
  readonly attempts: number
  /** The tool calls of the answer, in order (only when the request offered tools). */
  readonly toolCalls?: ReadonlyArray<LlmToolCall> | undefined
  /**
   * The answer held tool calls that could not be read — a tool that was not offered,
   * arguments that are not a JSON object — in the provider's words. Nothing of the answer is
   * usable; the caller tells the model (the request is not retried: the model, not the
   * backend, got it wrong).
   */
  readonly toolCallProblem?: string | undefined
}

/** One failed attempt, for the error report. */
export class LlmAttempt extends Schema.Class<LlmAttempt>("LlmAttempt")({
  backend: Schema.String,
  model: Schema.String,
  /** HTTP status when there was one. */
  status: Schema.optional(Schema.Number),
  error: Schema.String
}) {}

/**
 * A model call that could not be completed: every backend failed (`unavailable`), the
 * request itself was refused (`rejected`: a 4xx other than 429 — retrying cannot help), a
 * stream broke after output had started (`stream-failed`: never retried elsewhere, the
 * caller has seen part of an answer), or no backend serves the model (`no-backend`).
 */
export class LlmError extends Schema.TaggedError<LlmError>()("LlmError", {
  reason: Schema.Literal("unavailable", "rejected", "stream-failed", "no-backend"),
  message: Schema.String,
  attempts: Schema.Array(LlmAttempt)
}) {}

/** A configuration the router cannot start with (e.g. a missing API key). */
export class LlmConfigError extends Schema.TaggedError<LlmConfigError>()("LlmConfigError", {
  backend: Schema.String,
  message: Schema.String
}) {}

export interface UsageLine {
  readonly requests: number
  readonly promptTokens: number
  readonly completionTokens: number
  readonly costUsd: number
}

export interface UsageReport {
  readonly totals: UsageLine
  readonly byAgent: Readonly<Record<string, UsageLine>>
  readonly byModel: Readonly<Record<string, UsageLine>>
  readonly byBackend: Readonly<Record<string, UsageLine>>
}

export interface BackendStatus {
  readonly name: string
  readonly provider: string
  readonly models: ReadonlyArray<string>
  /** Requests in flight now (HTTP exchanges under way). */
  readonly inFlight: number
  /** Requests assigned to it that wait: for its rate limit, a concurrency slot, or a retry's backoff. */
  readonly waiting: number
  /** False while it cools down after a failure (the strategies try it last). */
  readonly healthy: boolean
  /** HTTP requests sent. */
  readonly requests: number
  /** Requests that failed. */
  readonly failures: number
  /** Where its requests go (for a mock backend: the server the router started). */
  readonly baseUrl: string
  /** Its models' context window in tokens, when configured (`context_window`, a mock script's). */
  readonly contextWindow?: number | undefined
}

/** What the LlmRouter service offers (its Tag and layers are services/LlmRouter.ts). */
export interface LlmRouterService {
  /** One model call, under every policy of the router; budget checked first, charged after. */
  readonly complete: (request: LlmRequest) => Effect.Effect<LlmResponse, LlmError | BudgetExhausted>
  /** Usage and cost so far (organism-wide; per conversation see BudgetRegistry). */
  readonly usage: () => UsageReport
  readonly backends: () => ReadonlyArray<BackendStatus>
}

/**
 * The LlmRouter as a requirement, for the domain's types (an LLM agent's listener needs
 * it): an Effect class tag is identified by its key and service shape, so this is the very
 * type of `services/LlmRouter.ts`'s `LlmRouter` — without the domain importing the service.
 * test/layers.test.ts checks that the two stay the same type.
 */
export interface LlmRouterRequirement extends Context.TagClassShape<"xml-organism/LlmRouter", LlmRouterService> {}
