/**
 * BudgetRegistry: token budgets per conversation.
 *
 * Two meters apply to every model call an agent makes in a conversation (a root thread and
 * all its branches):
 * - the conversation's budget (`maxTokensPerThread`, the organism's): every agent of the
 *   conversation spends from it;
 * - the agent's own cap (`perListener[name]`), when it has one: what that agent alone may
 *   spend in one conversation.
 * An agent's budget is whichever of the two is closer to running out (the higher fraction
 * used). A per-listener cap can therefore only tighten: one larger than the conversation's
 * budget never limits anything. Both are fixed for the registry's lifetime (config is frozen
 * once the organism starts).
 *
 * Warnings: each agent hears each threshold — 75 % `warning`, 90 % `critical`, 95 % `final`
 * — at most once per conversation, in that order, from the `consume` call that finds its
 * budget at or past it (a call crossing two thresholds yields both, in order). Warnings go
 * to the consuming agent: an agent that starts spending in a conversation already at 92 %
 * gets `warning` and `critical` from its first call, because it, too, must wrap up.
 *
 * `check` is called before every model request and fails with {@link BudgetExhausted} once
 * either meter is used up; `consume` records what a request actually used (also after
 * exhaustion: tokens spent are a fact), so usage may exceed the budget but never decreases.
 */
import { Context, Effect, Layer } from "effect"
import { BudgetExhausted, BudgetSeverity, BudgetWarning } from "../domain/BudgetPayloads.js"
import type { ThreadId } from "../domain/Ids.js"

// A domain error (the LlmRouter's interface names it); re-exported where it is raised.
export { BudgetExhausted } from "../domain/BudgetPayloads.js"

export interface BudgetConfig {
  /** Tokens one conversation may use, all agents together (`Infinity`: unlimited). */
  readonly maxTokensPerThread: number
  /** Tokens one agent may use in one conversation, by listener name (case-insensitive). */
  readonly perListener: Readonly<Record<string, number>>
}

export const defaultBudgetConfig: BudgetConfig = {
  // xml-pipeline's default.
  maxTokensPerThread: 100_000,
  perListener: {}
}

export interface TokenUsage {
  readonly promptTokens: number
  readonly completionTokens: number
  readonly model?: string | undefined
}

export interface UsageTotals {
  readonly promptTokens: number
  readonly completionTokens: number
  readonly totalTokens: number
  readonly requests: number
}

export interface ConversationUsage extends UsageTotals {
  readonly root: ThreadId
  readonly maxTokens: number
  readonly tokensRemaining: number
  readonly byAgent: Readonly<Record<string, UsageTotals>>
  /** By model name; calls without one are under "unknown". */
  readonly byModel: Readonly<Record<string, UsageTotals>>
}

/** An agent's budget in a conversation: the numbers of the meter closest to running out. */
export interface BudgetStatus {
  readonly root: ThreadId
  readonly agent: string
  /** `unlimited` when neither meter has a limit. */
  readonly scope: "conversation" | "agent" | "unlimited"
  readonly tokensUsed: number
  /** `Infinity` when unlimited. */
  readonly maxTokens: number
  /** `max(0, maxTokens - tokensUsed)`. */
  readonly tokensRemaining: number
  /** One decimal, rounded down. */
  readonly percentUsed: number
  readonly exhausted: boolean
}

export const thresholds: ReadonlyArray<{ readonly percent: number; readonly severity: BudgetSeverity }> = [
  { percent: 75, severity: "warning" },
  { percent: 90, severity: "critical" },
  { percent: 95, severity: "final" }
]

export declare namespace BudgetRegistry {
  export interface Service {
    readonly config: BudgetConfig
    /** Before a model request: the agent's budget, or BudgetExhausted. */
    readonly check: (root: ThreadId, agent: string) => Effect.Effect<BudgetStatus, BudgetExhausted>
    /** After a model request: records its usage; the warnings to deliver to `agent`. */
    readonly consume: (root: ThreadId, agent: string, usage: TokenUsage) => ReadonlyArray<BudgetWarning>
    readonly status: (root: ThreadId, agent: string) => BudgetStatus
    readonly usage: (root: ThreadId) => ConversationUsage | undefined
    readonly usageOf: (root: ThreadId, agent: string) => UsageTotals | undefined
    /** Forgets a conversation (the completion hook); returns its final usage. */
    readonly cleanup: (root: ThreadId) => ConversationUsage | undefined
    /** Conversations tracked now, and usage organism-wide since start. */
    readonly stats: () => UsageTotals & { readonly conversations: number }
  }
}

interface Totals {
  promptTokens: number
  completionTokens: number
  totalTokens: number
  requests: number
}

interface AgentMeter {
  readonly totals: Totals
  /** Thresholds already reported to this agent, as bits of `thresholds`. */
  warned: number
}

interface Conversation {
  readonly root: ThreadId
  readonly totals: Totals
  readonly agents: Map<string, AgentMeter>
  readonly models: Map<string, Totals>
}

const zero = (): Totals => ({ promptTokens: 0, completionTokens: 0, totalTokens: 0, requests: 0 })

/** Token counts from outside: anything not a non-negative number counts as 0. */
const tokens = (n: number) => (n > 0 && Number.isFinite(n) ? Math.floor(n) : 0)

const add = (t: Totals, prompt: number, completion: number) => {
  t.promptTokens += prompt
  t.completionTokens += completion
  t.totalTokens += prompt + completion
  t.requests++
}

const snapshot = (t: Totals): UsageTotals => ({ ...t })

const limit = (what: string, n: number): number => {
  if (n === Infinity) return n
  if (!(n >= 1) || !Number.isFinite(n)) throw new RangeError(`${what} must be a positive number of tokens, got ${n}`)
  return Math.floor(n)
}

const messageFor = (severity: BudgetSeverity, s: BudgetStatus): string => {
  const which = s.scope === "agent" ? "your own token budget for this conversation" : "this conversation's token budget"
  const numbers = `${s.percentUsed}% of ${which} is used (${s.tokensUsed} of ${s.maxTokens} tokens, ${s.tokensRemaining} left).`
  switch (severity) {
    case "warning":
      return `${numbers} Start wrapping up: keep the remaining work short.`
    case "critical":
      return `${numbers} Finish your current task and respond with what you have.`
    case "final":
      return `${numbers} Respond now: model calls will be refused once the budget runs out.`
  }
}

export const makeBudgetRegistry = (options: Partial<BudgetConfig> = {}): BudgetRegistry.Service => {
  const config: BudgetConfig = { ...defaultBudgetConfig, ...options }
  const conversationMax = limit("maxTokensPerThread", config.maxTokensPerThread)
  const caps = new Map<string, number>()
  for (const [name, n] of Object.entries(config.perListener)) caps.set(name.toLowerCase(), limit(`perListener.${name}`, n))
  const capOf = (agent: string) => caps.get(agent.toLowerCase()) ?? Infinity

  const conversations = new Map<string, Conversation>()
  const organism = zero()

  const statusOf = (root: ThreadId, agent: string, c: Conversation | undefined, cap: number): BudgetStatus => {
    const conversationUsed = c?.totals.totalTokens ?? 0
    const agentUsed = c?.agents.get(agent)?.totals.totalTokens ?? 0
    // Fractions compared exactly (a/x vs b/y as a·y vs b·x); on a tie the smaller budget
    // says more about what is left.
    const agentCloser = cap !== Infinity &&
      (conversationMax === Infinity || agentUsed * conversationMax > conversationUsed * cap ||
        (agentUsed * conversationMax === conversationUsed * cap && cap < conversationMax))
    if (conversationMax === Infinity && cap === Infinity) {
      return {
        root,
        agent,
        scope: "unlimited",
        tokensUsed: conversationUsed,
        maxTokens: Infinity,
        tokensRemaining: Infinity,
        percentUsed: 0,
        exhausted: false
      }
    }
    const used = agentCloser ? agentUsed : conversationUsed
    const max = agentCloser ? cap : conversationMax
    return {
      root,
      agent,
      scope: agentCloser ? "agent" : "conversation",
      tokensUsed: used,
      maxTokens: max,
      tokensRemaining: Math.max(0, max - used),
      percentUsed: Math.floor((used * 1000) / max) / 10,
      // The farther meter cannot be exhausted if the closer one is not.
      exhausted: used >= max
    }
  }

  const usageOf = (c: Conversation): ConversationUsage => {
    const byAgent: Record<string, UsageTotals> = {}
    for (const [name, a] of c.agents) byAgent[name] = snapshot(a.totals)
    const byModel: Record<string, UsageTotals> = {}
    for (const [name, t] of c.models) byModel[name] = snapshot(t)
    return {
      root: c.root,
      ...snapshot(c.totals),
      maxTokens: conversationMax,
      tokensRemaining: Math.max(0, conversationMax - c.totals.totalTokens),
      byAgent,
      byModel
    }
  }

  const status: BudgetRegistry.Service["status"] = (root, agent) =>
    statusOf(root, agent, conversations.get(root), capOf(agent))

  const check = Effect.fn("BudgetRegistry.check")(function*(root: ThreadId, agent: string) {
    const s = status(root, agent)
    if (s.exhausted) {
      return yield* new BudgetExhausted({
        root,
        agent,
        scope: s.scope === "agent" ? "agent" : "conversation",
        tokensUsed: s.tokensUsed,
        maxTokens: s.maxTokens
      })
    }
    return s
  })

  const consume: BudgetRegistry.Service["consume"] = (root, agent, usage) => {
    const prompt = tokens(usage.promptTokens)
    const completion = tokens(usage.completionTokens)
    let c = conversations.get(root)
    if (c === undefined) {
      c = { root, totals: zero(), agents: new Map(), models: new Map() }
      conversations.set(root, c)
    }
    let meter = c.agents.get(agent)
    if (meter === undefined) {
      meter = { totals: zero(), warned: 0 }
      c.agents.set(agent, meter)
    }
    const model = usage.model ?? "unknown"
    let byModel = c.models.get(model)
    if (byModel === undefined) c.models.set(model, byModel = zero())
    add(c.totals, prompt, completion)
    add(meter.totals, prompt, completion)
    add(byModel, prompt, completion)
    add(organism, prompt, completion)

    const s = statusOf(root, agent, c, capOf(agent))
    if (s.scope === "unlimited") return []
    let warnings: Array<BudgetWarning> | undefined
    for (let i = 0; i < thresholds.length; i++) {
      const { percent, severity } = thresholds[i]!
      const bit = 1 << i
      if ((meter.warned & bit) !== 0 || s.tokensUsed * 100 < percent * s.maxTokens) continue
      meter.warned |= bit
      ;(warnings ??= []).push(
        new BudgetWarning({
          percentUsed: s.percentUsed,
          tokensUsed: s.tokensUsed,
          tokensRemaining: s.tokensRemaining,
          maxTokens: s.maxTokens,
          severity,
          message: messageFor(severity, s)
        }, true)
      )
    }
    return warnings ?? []
  }

  return {
    config,
    check,
    consume,
    status,
    usage: (root) => {
      const c = conversations.get(root)
      return c === undefined ? undefined : usageOf(c)
    },
    usageOf: (root, agent) => {
      const a = conversations.get(root)?.agents.get(agent)
      return a === undefined ? undefined : snapshot(a.totals)
    },
    cleanup: (root) => {
      const c = conversations.get(root)
      if (c === undefined) return undefined
      conversations.delete(root)
      return usageOf(c)
    },
    stats: () => ({ conversations: conversations.size, ...snapshot(organism) })
  }
}

export class BudgetRegistry extends Context.Tag("xml-organism/BudgetRegistry")<BudgetRegistry, BudgetRegistry.Service>() {
  /** Dies with a RangeError when a limit is not a positive number (or Infinity). */
  static readonly make = (config: Partial<BudgetConfig> = {}): Effect.Effect<BudgetRegistry.Service> =>
    Effect.sync(() => makeBudgetRegistry(config))

  /** The embedded, in-process registry. */
  static readonly layerMemory = (config: Partial<BudgetConfig> = {}): Layer.Layer<BudgetRegistry> =>
    Layer.effect(BudgetRegistry, BudgetRegistry.make(config))
}
