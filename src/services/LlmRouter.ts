/**
 * LlmRouter: the organism's way to call models — backends (OpenAI, OpenAI-compatible servers,
 * Anthropic, the mock), strategies (failover, round-robin, least-loaded), retries with backoff
 * and jitter honouring Retry-After, fallback across backends, per-backend rate limits and
 * concurrency, usage and cost, and the token budget checked before and charged after every
 * call.
 */
import { Context, type Effect } from "effect"
import type { BudgetExhausted } from "./BudgetRegistry.js"
import type { LlmError, LlmRequest, LlmResponse } from "../domain/Llm.js"

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
  /** Requests in flight now. */
  readonly inFlight: number
  readonly requests: number
  readonly failures: number
}

export declare namespace LlmRouter {
  export interface Service {
    /** One model call, under every policy of the router; budget checked first, charged after. */
    readonly complete: (request: LlmRequest) => Effect.Effect<LlmResponse, LlmError | BudgetExhausted>
    /** Usage and cost so far (organism-wide; per conversation see BudgetRegistry). */
    readonly usage: () => UsageReport
    readonly backends: () => ReadonlyArray<BackendStatus>
  }
}

export class LlmRouter extends Context.Tag("xml-organism/LlmRouter")<LlmRouter, LlmRouter.Service>() {}
