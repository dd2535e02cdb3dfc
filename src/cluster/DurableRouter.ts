/**
 * The model router of a runner: a model call of a durable conversation is an activity of
 * its workflow (DESIGN.md §11), named by the request's hash and how many times the
 * conversation made that same request. Its answer is stored by the workflow engine; when the
 * conversation runs again on another runner after a crash, the same request gets the stored
 * answer and no model is asked again. A call that was in flight at the crash has no stored
 * answer and is sent again: `organism_llm_sends` counts it (`repeated`).
 *
 * Calls of conversations that are not durable go straight to the router.
 */
import { Activity } from "@effect/workflow"
import { Clock, Effect, Schema } from "effect"
import { BudgetExhausted } from "../domain/BudgetPayloads.js"
import { LlmError, type LlmRequest, type LlmResponse } from "../domain/Llm.js"
import { LlmCallCompleted, LlmCallStarted } from "../domain/PumpEvent.js"
import { requestHashes } from "../llm/RequestHash.js"
import type { BudgetRegistry } from "../services/BudgetRegistry.js"
import type { Events } from "../services/Events.js"
import type { LlmRouter } from "../services/LlmRouter.js"
import type { Bindings } from "./Bindings.js"
import type { DurableStore } from "./DurableStore.js"

/** What is stored of an answer (budget warnings are worked out again where it is used). */
const StoredAnswer = Schema.Struct({
  text: Schema.String,
  promptTokens: Schema.Number,
  completionTokens: Schema.Number,
  model: Schema.String,
  backend: Schema.String,
  costUsd: Schema.Number,
  finishReason: Schema.String,
  attempts: Schema.Number
})

export interface DurableCounters {
  /** Model calls sent to a model by this runner. */
  llmCalls: number
  /** Model calls answered from a stored result (no request sent). */
  llmReplayed: number
  /** Sends of a call that had been sent before (in flight at a crash). */
  llmRepeated: number
}

/** How many recent calls the overhead median is taken over (the bench runs exactly this many one at a time). */
const SAMPLES = 50

export interface DurableRouter {
  readonly router: LlmRouter.Service
  /**
   * The median time a model call of a durable conversation spent in the durable machinery
   * (recording the send, storing the activity and its answer, the usage ledger), in ms, over
   * the last calls this runner sent: the framework's overhead per turn.
   */
  readonly overheadMedianMs: () => number
}

export const makeDurableRouter = (options: {
  readonly inner: LlmRouter.Service
  readonly bindings: Bindings
  readonly budget: BudgetRegistry.Service
  readonly store: DurableStore.Service
  /** Where an answer served from the store is published (as the router publishes a call it makes). */
  readonly events: Events.Service
  readonly maxOutputTokens: number
  readonly counters: DurableCounters
}): DurableRouter => {
  const { bindings, budget, counters, events, inner, store } = options
  let served = 0
  const samples: Array<number> = []
  const sample = (ms: number) => {
    samples.push(ms)
    if (samples.length > SAMPLES) samples.shift()
  }
  const overheadMedianMs = () => {
    if (samples.length === 0) return 0
    const sorted = [...samples].sort((a, b) => a - b)
    return Math.round(sorted[Math.floor(sorted.length / 2)]! * 100) / 100
  }
  const nowMs = Effect.map(Clock.currentTimeNanos, (n) => Number(n) / 1e6)

  const complete = (request: LlmRequest): Effect.Effect<LlmResponse, LlmError | BudgetExhausted> =>
    Effect.gen(function*() {
      const slot = yield* bindings.slotOf(request.root)
      if (slot === undefined) return yield* inner.complete(request)
      // Checked before the activity: a refusal is not an answer to store.
      yield* budget.check(request.root, request.agent)
      const maxOutputTokens = request.maxOutputTokens ?? options.maxOutputTokens
      const hashes = requestHashes(request, maxOutputTokens)
      const hash = hashes.requestHash
      const nth = (slot.calls.get(hash) ?? 0) + 1
      slot.calls.set(hash, nth)
      let local: LlmResponse | undefined
      let modelMs = 0
      const activity = Activity.make({
        name: `llm/${request.agent}/${hash.slice(0, 24)}/${nth}`,
        success: StoredAnswer,
        error: Schema.Union(LlmError, BudgetExhausted),
        execute: Effect.gen(function*() {
          // Noted before the request goes out, so a call sent again after a crash is always
          // counted (a runner killed between the two counts one send too many, never too few).
          const sends = yield* store.noteSend(slot.conversation, `${request.agent}/${hash}/${nth}`)
          const sent = yield* nowMs
          const r = yield* inner.complete(request)
          modelMs = (yield* nowMs) - sent
          counters.llmCalls++
          if (sends > 1) counters.llmRepeated++
          local = r
          // Written behind the conversation's back (the answer is stored by the activity
          // itself): a crash in the next few milliseconds can lose this ledger line.
          yield* Effect.forkDaemon(store.recordUsage({
            conversation: slot.conversation,
            agent: request.agent,
            model: r.model,
            backend: r.backend,
            promptTokens: r.usage.promptTokens,
            completionTokens: r.usage.completionTokens,
            costUsd: r.costUsd
          }))
          return {
            text: r.text,
            promptTokens: r.usage.promptTokens,
            completionTokens: r.usage.completionTokens,
            model: r.model,
            backend: r.backend,
            costUsd: r.costUsd,
            finishReason: r.finishReason,
            attempts: r.attempts
          }
        })
      })
      const began = yield* nowMs
      const stored = yield* Effect.provide(activity, slot.context)
      if (local !== undefined) {
        sample((yield* nowMs) - began - modelMs)
        return local
      }
      // Answered from the store: charged to this run's budget as the first run was.
      counters.llmReplayed++
      const usage = { promptTokens: stored.promptTokens, completionTokens: stored.completionTokens }
      const warnings = budget.unsafeConsume(request.root, request.agent, { ...usage, model: stored.model })
      if (events.active()) {
        // The journal and the console see the exchange too, served from the store (provider "stored").
        const time = yield* nowMs
        const ids = { thread: request.root, root: request.root, call: `stored-${++served}`, agent: request.agent, backend: stored.backend, model: stored.model, attempt: 1 }
        events.publish(new LlmCallStarted({ ...ids, time, provider: "stored", maxOutputTokens, stream: false, ...hashes }, true))
        events.publish(
          new LlmCallCompleted({
            ...ids,
            time,
            latencyMs: 0,
            inputTokens: stored.promptTokens,
            outputTokens: stored.completionTokens,
            costUsd: stored.costUsd,
            finishReason: stored.finishReason,
            truncated: stored.finishReason === "length",
            text: stored.text
          }, true)
        )
      }
      const response: LlmResponse = {
        text: stored.text,
        usage,
        model: stored.model,
        backend: stored.backend,
        costUsd: stored.costUsd,
        finishReason: stored.finishReason,
        warnings,
        attempts: stored.attempts
      }
      return response
    })

  return { router: { complete, usage: inner.usage, backends: inner.backends }, overheadMedianMs }
}
