/**
 * What agents and handlers exchange with the LLM router: a conversation in, text and usage
 * out. Provider wire formats stay inside the router's backends.
 */
import { type Context, type Effect, Schema } from "effect"
import type { BudgetExhausted, BudgetWarning } from "./BudgetPayloads.js"
import type { ThreadId } from "./Ids.js"

export interface LlmMessage {
  readonly role: "user" | "assistant"
  readonly content: string
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
