/**
 * The router's usage and cost since start, organism-wide: per agent, per model, per backend.
 * (Per conversation, usage lives in BudgetRegistry, which also enforces the budgets.)
 *
 * Cost comes from the price table, per million prompt and completion tokens; a model without
 * a price costs 0 — a local model usually is free, and an unknown price is better shown as
 * 0 than guessed.
 */
import type { LlmPrice } from "../domain/LlmConfig.js"
import type { UsageLine, UsageReport } from "../domain/Llm.js"

interface Line {
  requests: number
  promptTokens: number
  completionTokens: number
  costUsd: number
}

const zero = (): Line => ({ requests: 0, promptTokens: 0, completionTokens: 0, costUsd: 0 })

const add = (line: Line, prompt: number, completion: number, cost: number) => {
  line.requests++
  line.promptTokens += prompt
  line.completionTokens += completion
  line.costUsd += cost
}

const lineIn = (map: Map<string, Line>, key: string): Line => {
  let line = map.get(key)
  if (line === undefined) map.set(key, line = zero())
  return line
}

const snapshot = (map: Map<string, Line>): Record<string, UsageLine> => {
  const out: Record<string, UsageLine> = {}
  for (const [key, line] of map) out[key] = { ...line }
  return out
}

export interface UsageEntry {
  readonly agent: string
  readonly model: string
  readonly backend: string
  readonly promptTokens: number
  readonly completionTokens: number
}

export interface UsageLedger {
  readonly costOf: (model: string, promptTokens: number, completionTokens: number) => number
  /** Records one call; returns its cost. */
  readonly record: (entry: UsageEntry) => number
  readonly report: () => UsageReport
}

export const makeUsageLedger = (prices: Readonly<Record<string, LlmPrice>>): UsageLedger => {
  const totals = zero()
  const byAgent = new Map<string, Line>()
  const byModel = new Map<string, Line>()
  const byBackend = new Map<string, Line>()
  const costOf = (model: string, prompt: number, completion: number) => {
    const price = prices[model]
    return price === undefined ? 0 : (prompt * price.input_per_million + completion * price.output_per_million) / 1_000_000
  }
  return {
    costOf,
    record: (e) => {
      const cost = costOf(e.model, e.promptTokens, e.completionTokens)
      for (const line of [totals, lineIn(byAgent, e.agent), lineIn(byModel, e.model), lineIn(byBackend, e.backend)]) {
        add(line, e.promptTokens, e.completionTokens, cost)
      }
      return cost
    },
    report: () => ({ totals: { ...totals }, byAgent: snapshot(byAgent), byModel: snapshot(byModel), byBackend: snapshot(byBackend) })
  }
}
