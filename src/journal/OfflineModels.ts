/**
 * Offline models: an LlmRouter that answers from a journal's recorded model exchanges, so an
 * agent run replays with no model and no network (`organism replay --offline`).
 *
 * Each recorded call that was answered (a `model-call` `completed` record) is filed under
 * the hash of the request its answering attempt sent (the `started` record's
 * `requestHash`). A request of the replay gets the first unused answer filed under its own
 * hash — identical requests are served in the recorded order — with the recorded tokens
 * charged to the conversation's budget as the real router would, so budget warnings come
 * back the same. A request with no recorded answer is a divergence: the prompt, the history
 * or a handler changed. The first one is kept (which agent, which of its calls, which part of
 * the request differs: the system prompt or message N) and the call fails, so the replay
 * goes on to show the conversations' differences.
 */
import { Effect, Option } from "effect"
import type { JournalRecord, ModelCallCompleted, ModelCallStarted } from "../domain/JournalRecord.js"
import { type BackendStatus, LlmError, type LlmRequest, type LlmResponse } from "../domain/Llm.js"
import { LlmCallCompleted, LlmCallStarted } from "../domain/PumpEvent.js"
import { requestHashes } from "../llm/RequestHash.js"
import { makeUsageLedger } from "../llm/UsageLedger.js"
import { BudgetRegistry } from "../services/BudgetRegistry.js"
import { Events } from "../services/Events.js"
import type { LlmRouter } from "../services/LlmRouter.js"

export interface Divergence {
  readonly agent: string
  /** Which of the agent's model calls in the replay, from 1. */
  readonly call: number
  /** What differs: "the system prompt", "message 3 (user)", "a message was added"… */
  readonly part: string
  /** The recorded request the agent made at that point (absent: it made fewer calls). */
  readonly recorded: { readonly requestHash: string; readonly messageHashes: ReadonlyArray<string> } | undefined
  readonly replayed: { readonly requestHash: string; readonly messageHashes: ReadonlyArray<string> }
}

export interface OfflineModels {
  readonly router: LlmRouter.Service
  /** The first request that had no recorded answer; undefined while every one had. */
  readonly divergence: () => Divergence | undefined
  /** Recorded answers no request of the replay used. */
  readonly unused: () => number
}

interface Exchange {
  readonly started: ModelCallStarted
  readonly completed: ModelCallCompleted
}

/** The recorded exchanges, in the order their answers arrived. */
export const recordedExchanges = (records: ReadonlyArray<JournalRecord>): ReadonlyArray<Exchange> => {
  const started = new Map<string, ModelCallStarted>()
  const out: Array<Exchange> = []
  for (const r of records) {
    if (r.type !== "model-call") continue
    if (r.step === "started") started.set(`${r.call}\u0000${r.attempt}`, r)
    else if (r.step === "completed") {
      const s = started.get(`${r.call}\u0000${r.attempt}`)
      if (s !== undefined) out.push({ started: s, completed: r })
    }
  }
  return out
}

const where = (recorded: ReadonlyArray<string>, replayed: ReadonlyArray<string>, roles: ReadonlyArray<string>): string => {
  if (recorded[0] !== replayed[0]) return "the system prompt"
  const n = Math.min(recorded.length, replayed.length)
  for (let i = 1; i < n; i++) if (recorded[i] !== replayed[i]) return `message ${i} (${roles[i - 1] ?? "?"})`
  if (replayed.length > recorded.length) return `message ${recorded.length} (${roles[recorded.length - 1] ?? "?"}) was not in the recorded request`
  if (replayed.length < recorded.length) return `the recorded request had ${recorded.length - replayed.length} more message(s)`
  return "the model asked for or the output cap"
}

export const makeOfflineModels = (
  records: ReadonlyArray<JournalRecord>,
  options: {
    readonly maxOutputTokens: number
    /**
     * The organism's backends as configured: LLM agents fit their history to the context
     * windows these report, so the replayed requests are the recorded ones.
     */
    readonly backends?: ReadonlyArray<BackendStatus> | undefined
  }
): Effect.Effect<OfflineModels, never, BudgetRegistry> =>
  Effect.gen(function*() {
    const budget = yield* BudgetRegistry
    const events = Option.getOrUndefined(yield* Effect.serviceOption(Events))
    const clock = yield* Effect.clock
    const now = () => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000
    const exchanges = recordedExchanges(records)
    const byHash = new Map<string, Array<Exchange>>()
    const byAgent = new Map<string, Array<Exchange>>()
    for (const x of exchanges) {
      const list = byHash.get(x.started.requestHash)
      if (list === undefined) byHash.set(x.started.requestHash, [x])
      else list.push(x)
      const mine = byAgent.get(x.started.agent)
      if (mine === undefined) byAgent.set(x.started.agent, [x])
      else mine.push(x)
    }
    let used = 0
    let calls = 0
    const callsOf = new Map<string, number>()
    let divergence: Divergence | undefined
    const ledger = makeUsageLedger({})

    const complete = (request: LlmRequest) =>
      Effect.gen(function*() {
        yield* budget.check(request.root, request.agent)
        const maxOutputTokens = request.maxOutputTokens ?? options.maxOutputTokens
        const hashes = requestHashes(request, maxOutputTokens)
        const nth = (callsOf.get(request.agent) ?? 0) + 1
        callsOf.set(request.agent, nth)
        const x = byHash.get(hashes.requestHash)?.shift()
        if (x === undefined) {
          const expected = byAgent.get(request.agent)?.[nth - 1]?.started
          divergence ??= {
            agent: request.agent,
            call: nth,
            part: expected === undefined
              ? `the recording has no call ${nth} of ${request.agent}`
              : where(expected.messageHashes, hashes.messageHashes, request.messages.map((m) => m.role)),
            recorded: expected === undefined ? undefined : { requestHash: expected.requestHash, messageHashes: expected.messageHashes },
            replayed: hashes
          }
          return yield* new LlmError({
            reason: "unavailable",
            message: `offline replay: the journal has no answer for this request of ${request.agent} (its call ${nth}): it differs from the recording`,
            attempts: []
          })
        }
        used++
        const c = x.completed
        const warnings = budget.unsafeConsume(request.root, request.agent, {
          promptTokens: c.inputTokens,
          completionTokens: c.outputTokens,
          model: c.model
        })
        ledger.record({ agent: request.agent, model: c.model, backend: c.backend, promptTokens: c.inputTokens, completionTokens: c.outputTokens })
        if (events !== undefined && events.active()) {
          // The replay's own journal records the exchange too, served from the recording.
          const time = now()
          const ids = { thread: request.root, root: request.root, call: `llm-${++calls}`, agent: request.agent, backend: c.backend, model: c.model, attempt: 1 }
          events.publish(new LlmCallStarted({ ...ids, time, provider: x.started.provider, maxOutputTokens, stream: x.started.stream, ...hashes }, true))
          events.publish(
            new LlmCallCompleted({
              ...ids,
              time,
              latencyMs: 0,
              inputTokens: c.inputTokens,
              outputTokens: c.outputTokens,
              costUsd: c.costUsd,
              finishReason: c.finishReason,
              truncated: c.truncated,
              text: c.text,
              ...(c.reasoningTokens !== undefined ? { reasoningTokens: c.reasoningTokens } : {}),
              ...(c.toolCalls !== undefined ? { toolCalls: c.toolCalls } : {}),
              ...(c.toolCallProblem !== undefined ? { toolCallProblem: c.toolCallProblem } : {})
            }, true)
          )
        }
        const response: LlmResponse = {
          text: c.text,
          // Reasoning tokens too: a replayed agent's reasoning budget trips where it did.
          usage: {
            promptTokens: c.inputTokens,
            completionTokens: c.outputTokens,
            ...(c.reasoningTokens !== undefined && c.reasoningTokens > 0 ? { reasoningTokens: c.reasoningTokens } : {})
          },
          model: c.model,
          backend: c.backend,
          costUsd: c.costUsd,
          finishReason: c.finishReason,
          warnings,
          attempts: 1,
          ...(c.toolCalls !== undefined ? { toolCalls: c.toolCalls } : {}),
          ...(c.toolCallProblem !== undefined ? { toolCallProblem: c.toolCallProblem } : {})
        }
        return response
      })

    const router: LlmRouter.Service = { complete, usage: () => ledger.report(), backends: () => options.backends ?? [] }
    return { router, divergence: () => divergence, unused: () => exchanges.length - used }
  })
