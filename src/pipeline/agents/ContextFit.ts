/**
 * Fitting an LLM agent's history to its model's context window, counted with the provider's
 * tokenizer (llm/Tokenizers.ts):
 * - a message the agent received that is longer than `maxToolResultTokens` is cut, with a
 *   marker saying how much was left out (a peer's long reply, a big document);
 * - when the system prompt and the history do not fit in the window less the tokens kept for
 *   the answer, the oldest turns go: dropped with a note saying so (`drop_oldest`), or
 *   condensed by a summariser agent (`summarise`) whose summary is kept and extended as more
 *   turns go, so it is asked again only when the kept turns have grown to twice their size;
 * - the system prompt and the latest message are always sent: when they alone do not fit,
 *   the call is not made (`ContextTooSmall`), rather than sent to be refused.
 *
 * The fitted request never exceeds the window: its answer's cap is lowered when the prompt
 * leaves less than it (only with a `reserve_output` smaller than the cap).
 */
import { Effect, Schema } from "effect"
import type { ThreadId } from "../../domain/Ids.js"
import type { BudgetExhausted } from "../../domain/BudgetPayloads.js"
import type { LlmError, LlmMessage, LlmRouterService } from "../../domain/Llm.js"
import type { AgentContextOptions, LlmAgentOptions, SummariserOptions } from "../../domain/Listener.js"
import type { LlmProvider } from "../../domain/LlmConfig.js"
import type { ContextSlot } from "../../services/ContextBuffer.js"
import { type ProviderTokenizer, tokenizerFor } from "../../llm/Tokenizers.js"

/** The system prompt and the latest message alone are over the window: no request is sent. */
export class ContextTooSmall extends Schema.TaggedError<ContextTooSmall>()("ContextTooSmall", {
  message: Schema.String
}) {}

/** The router's default answer cap (`llm.max_output_tokens`), for agents that set none. */
export const DEFAULT_RESERVE_OUTPUT = 4096

type Role = "system" | "user" | "assistant" | "tool"

/** Token counts of texts, remembered (a long conversation is counted again at every turn). */
export interface TokenCounter {
  readonly kind: ProviderTokenizer["kind"]
  readonly count: (role: Role, text: string) => Effect.Effect<number>
  /** Counted without remembering: for the many trial cuts of a long text. */
  readonly measure: (role: Role, text: string) => Effect.Effect<number>
}

const COUNT_CACHE = 4096

export const makeCounter = (provider: ProviderTokenizer): TokenCounter => {
  const known = new Map<string, number>()
  const measure = (role: Role, text: string) =>
    // A tool result is counted as the text a user message would carry.
    provider.tokenizer.tokenize([{ role: role === "tool" ? "user" : role, content: text }]).pipe(
      Effect.map((tokens) => tokens.length),
      // A tokenizer that fails counts as the safe approximation would.
      Effect.orElseSucceed(() => 4 + Math.ceil(text.length / 3))
    )
  return {
    kind: provider.kind,
    measure,
    count: (role, text) => {
      const key = `${role}\u0000${text}`
      const hit = known.get(key)
      if (hit !== undefined) return Effect.succeed(hit)
      return measure(role, text).pipe(
        Effect.tap((n) =>
          Effect.sync(() => {
            if (known.size >= COUNT_CACHE) known.delete(known.keys().next().value!)
            known.set(key, n)
          })
        )
      )
    }
  }
}

/**
 * `text` cut to at most `maxTokens` (its marker included): its head (or tail) kept at a
 * code point boundary, found by bisection on the counted length.
 */
export const truncateText = (
  counter: TokenCounter,
  role: Role,
  text: string,
  maxTokens: number,
  marker: (omitted: number, total: number) => string,
  keep: "head" | "tail" = "head"
): Effect.Effect<string> =>
  Effect.gen(function*() {
    const total = yield* counter.count(role, text)
    if (total <= maxTokens) return text
    const points = Array.from(text)
    const build = (n: number, omitted: number) =>
      keep === "head" ? points.slice(0, n).join("") + marker(omitted, total) : marker(omitted, total) + points.slice(points.length - n).join("")
    let lo = 0
    let hi = points.length
    let best = build(0, total)
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const kept = yield* counter.measure(role, points.slice(keep === "head" ? 0 : points.length - mid, keep === "head" ? mid : undefined).join(""))
      const candidate = build(mid, Math.max(0, total - kept))
      if ((yield* counter.measure(role, candidate)) <= maxTokens) {
        best = candidate
        lo = mid + 1
      } else hi = mid - 1
    }
    return best
  })

const resultMarker = (max: number) => (omitted: number, total: number) =>
  `\n[… ${omitted} of this message's ${total} tokens were cut here to fit the context (max_tool_result_tokens: ${max}) …]`

/** Received messages longer than `maxTokens` cut with a marker; the agent's own are kept whole. */
export const truncateReceived = (
  counter: TokenCounter,
  agent: string,
  slots: ReadonlyArray<ContextSlot>,
  maxTokens: number
): Effect.Effect<ReadonlyArray<ContextSlot>> =>
  Effect.forEach(slots, (slot) =>
    slot.from === agent
      ? Effect.succeed(slot)
      : Effect.map(truncateText(counter, "user", slot.xml, maxTokens, resultMarker(maxTokens)), (xml) =>
        xml === slot.xml ? slot : { ...slot, xml }))

/** What one summary covers: the first `covered.length` messages, as they were. */
export interface SummaryState {
  readonly covered: ReadonlyArray<string>
  readonly summary: string
}

export interface FitInput<E, R> {
  readonly system: string
  readonly messages: ReadonlyArray<LlmMessage>
  /** Tokens the system prompt and the messages may take. */
  readonly budget: number
  readonly counter: TokenCounter
  /** With `summarise`: condenses the newly dropped turns into the summary so far. */
  readonly summarise?: {
    readonly by: string
    /** Tokens a summary may take. */
    readonly allowance: number
    readonly run: (dropped: ReadonlyArray<LlmMessage>, previous: string | undefined) => Effect.Effect<string, E, R>
    readonly state: () => SummaryState | undefined
    readonly save: (state: SummaryState) => void
  } | undefined
}

export interface FitResult {
  readonly messages: ReadonlyArray<LlmMessage>
  /** The fitted prompt's tokens, system prompt included, as counted. */
  readonly promptTokens: number
  /** Messages of the history left out (summarised or not). */
  readonly dropped: number
  /** A summary stands for the dropped messages. */
  readonly summarised: boolean
}

export const droppedNote = (n: number) =>
  `[${n} earlier message${n === 1 ? " was" : "s were"} left out of this conversation to fit the model's context window.]`

export const summaryLead = (n: number, by: string, summary: string) =>
  `[The ${n} earliest message${n === 1 ? " is" : "s are"} left out to fit the model's context window; ${by} summarised ${n === 1 ? "it" : "them"}:]\n${summary}`

/** `lead` as the first user turn: merged into the first message when that is the user's. */
const withLead = (lead: string, tail: ReadonlyArray<LlmMessage>): Array<LlmMessage> =>
  tail[0]?.role === "user"
    ? [{ role: "user", content: `${lead}\n\n${tail[0].content}` }, ...tail.slice(1)]
    : [{ role: "user", content: lead }, ...tail]

const sameStart = (messages: ReadonlyArray<LlmMessage>, covered: ReadonlyArray<string>) =>
  covered.length < messages.length && covered.every((c, i) => messages[i]!.content === c)

/** Fits the history into `budget` tokens (see the module comment). */
export const fitHistory = <E = never, R = never>(input: FitInput<E, R>): Effect.Effect<FitResult, ContextTooSmall | E, R> =>
  Effect.gen(function*() {
    const { budget, counter, messages } = input
    const n = messages.length
    const sys = input.system === "" ? 0 : yield* counter.count("system", input.system)
    const counts = yield* Effect.forEach(messages, (m) => counter.count(m.role, m.content))
    const suffix = new Array<number>(n + 1).fill(0)
    for (let i = n - 1; i >= 0; i--) suffix[i] = suffix[i + 1]! + counts[i]!
    const total = (ms: ReadonlyArray<LlmMessage>) =>
      Effect.map(Effect.forEach(ms, (m) => counter.count(m.role, m.content)), (cs) => sys + cs.reduce((a, b) => a + b, 0))
    if (sys + suffix[0]! <= budget) return { messages, promptTokens: sys + suffix[0]!, dropped: 0, summarised: false }
    const last = n === 0 ? 0 : counts[n - 1]!
    const lead = yield* counter.count("user", droppedNote(n))
    if (n === 0 || sys + lead + last > budget) {
      return yield* new ContextTooSmall({
        message: `the system prompt (${sys} tokens) and the latest message (${last} tokens) do not fit in ${budget} tokens ` +
          `(the context window less the tokens kept for the answer)`
      })
    }

    /** The messages from `k` on under `leadText`, if they fit. */
    const attempt = (k: number, leadText: string) =>
      Effect.gen(function*() {
        const fitted = withLead(leadText, messages.slice(k))
        const tokens = yield* total(fitted)
        return tokens <= budget ? { messages: fitted, promptTokens: tokens } : undefined
      })

    /** Drops from `from` on until what is left fits; `leadOf(k)` says what stands for the dropped. */
    const dropFrom = (from: number, leadOf: (k: number) => string) =>
      Effect.gen(function*() {
        for (let k = Math.max(1, from); k < n; k++) {
          // Cheap test first: the counts are additive up to a few tokens at the joint.
          if (sys + lead + suffix[k]! > budget && k < n - 1) continue
          const fitted = yield* attempt(k, leadOf(k))
          if (fitted !== undefined) return { ...fitted, dropped: k }
        }
        return undefined
      })

    const summarise = input.summarise
    if (summarise !== undefined) {
      let state = summarise.state()
      if (state !== undefined && !sameStart(messages, state.covered)) state = undefined
      const covered = state?.covered.length ?? 0
      if (state !== undefined) {
        const reused = yield* attempt(covered, summaryLead(covered, summarise.by, state.summary))
        if (reused !== undefined) return { ...reused, dropped: covered, summarised: true }
      }
      // A new summary: the kept turns shrink to half of what is left beside it, so that the
      // summariser is asked again only after as many turns again.
      const room = budget - sys - summarise.allowance
      let k = Math.max(1, covered)
      while (k < n - 1 && suffix[k]! > room / 2) k++
      // Nothing new to condense (all but the latest message are summarised already): drop instead.
      if (k > covered) {
        const summary = yield* summarise.run(messages.slice(covered, k), state?.summary)
        const next: SummaryState = { covered: messages.slice(0, k).map((m) => m.content), summary }
        summarise.save(next)
        const fitted = yield* attempt(k, summaryLead(k, summarise.by, summary))
        if (fitted !== undefined) return { ...fitted, dropped: k, summarised: true }
        // The summary came out longer than its allowance: more turns go, the summary stays.
        const more = yield* dropFrom(k + 1, (j) => `${summaryLead(k, summarise.by, summary)}\n${droppedNote(j - k)}`)
        if (more !== undefined) return { ...more, summarised: true }
      }
    }
    const dropped = yield* dropFrom(1, droppedNote)
    if (dropped !== undefined) return { ...dropped, summarised: false }
    return yield* new ContextTooSmall({ message: `the history cannot be fitted in ${budget} tokens` })
  })

/** The transcript a summariser reads: who said what, oldest first. */
export const transcript = (agent: string, dropped: ReadonlyArray<LlmMessage>) =>
  dropped.map((m) => (m.role === "assistant" ? `${agent} wrote:\n${m.content}` : `${agent} received:\n${m.content}`)).join("\n\n")

export const SUMMARISE_INSTRUCTION = "Summarise this conversation for the agent that took part in it, so it can go on without the full text: keep the facts, decisions, open questions and anything it promised. Answer with the summary only."

/** What an agent's model call needs to know about its model: the window, whose tokenizer. */
export interface ModelInfo {
  readonly window: number | undefined
  readonly provider: LlmProvider
  readonly model: string
}

/**
 * The window of `model` (the smallest of the backends serving it, any of which may answer) and
 * the provider whose tokenizer counts for it — read at every call, so a reload's backends count.
 */
export const modelInfo = (router: LlmRouterService, model: string | undefined, window: number | undefined): ModelInfo => {
  const serving = router.backends().filter((b) => model === undefined || b.models.includes(model))
  const windows = serving.flatMap((b) => (b.contextWindow === undefined ? [] : [b.contextWindow]))
  const first = serving[0]
  return {
    window: window ?? (windows.length === 0 ? undefined : Math.min(...windows)),
    provider: (first?.provider as LlmProvider | undefined) ?? "mock",
    model: model ?? first?.models[0] ?? ""
  }
}

/** An LLM agent's context fitting, with its summaries per conversation. */
export const makeAgentContext = (agent: string, options: LlmAgentOptions) => {
  const context: AgentContextOptions = options.context ?? {}
  const summaries = new Map<ThreadId, SummaryState>()
  // The tokenizer loads only when something is to be counted: an agent without a window pays nothing.
  const counters = new Map<string, TokenCounter>()
  const counterFor = (info: ModelInfo) =>
    Effect.suspend(() => {
      const key = `${info.provider}\u0000${info.model}`
      const known = counters.get(key)
      if (known !== undefined) return Effect.succeed(known)
      return Effect.map(tokenizerFor(info.provider, info.model), (t) => {
        const counter = makeCounter(t)
        counters.set(key, counter)
        return counter
      })
    })

  /** Received messages cut to `max_tool_result_tokens`, when set. */
  const prepare = (router: LlmRouterService, slots: ReadonlyArray<ContextSlot>) =>
    context.maxToolResultTokens === undefined
      ? Effect.succeed(slots)
      : Effect.flatMap(
        counterFor(modelInfo(router, options.model, context.window)),
        (counter) => truncateReceived(counter, agent, slots, context.maxToolResultTokens!)
      )

  const summariseWith = (router: LlmRouterService, root: ThreadId, summariser: SummariserOptions, allowance: number) =>
  (dropped: ReadonlyArray<LlmMessage>, previous: string | undefined) =>
    Effect.gen(function*() {
      const own = modelInfo(router, summariser.model, undefined)
      const head = previous === undefined ? "" : `The summary so far:\n${previous}\n\nWhat happened next:\n\n`
      let body = `${head}${transcript(agent, dropped)}`
      if (own.window !== undefined) {
        // The summariser's own request must fit its window too: the oldest part goes.
        const counter = yield* counterFor(own)
        const room = own.window - allowance - (yield* counter.count("system", summariser.prompt)) - 16
        body = yield* truncateText(counter, "user", body, Math.max(1, room), (omitted) => `[… ${omitted} tokens left out …]\n`, "tail")
      }
      const response = yield* router.complete({
        agent: summariser.name,
        root,
        system: summariser.prompt,
        messages: [{ role: "user", content: `${SUMMARISE_INSTRUCTION}\n\n${body}` }],
        model: summariser.model,
        maxOutputTokens: allowance
      })
      return response.text.trim()
    })

  /**
   * The messages to send and the answer's cap: unchanged when no window is known; fitted
   * otherwise.
   */
  const fit = (
    router: LlmRouterService,
    root: ThreadId,
    system: string,
    messages: ReadonlyArray<LlmMessage>
  ): Effect.Effect<
    { readonly messages: ReadonlyArray<LlmMessage>; readonly maxOutputTokens: number | undefined; readonly fit: FitResult | undefined },
    ContextTooSmall | LlmError | BudgetExhausted
  > =>
    Effect.gen(function*() {
      const info = modelInfo(router, options.model, context.window)
      if (info.window === undefined) return { messages, maxOutputTokens: options.maxOutputTokens, fit: undefined }
      const window = info.window
      const counter = yield* counterFor(info)
      const reserve = context.reserveOutput ?? options.maxOutputTokens ?? DEFAULT_RESERVE_OUTPUT
      const budget = window - reserve
      const summariser = context.strategy === "summarise" ? context.summariser : undefined
      const allowance = Math.max(64, Math.min(summariser?.maxOutputTokens ?? DEFAULT_RESERVE_OUTPUT, Math.floor(budget / 4)))
      const fitted = yield* fitHistory({
        system,
        messages,
        budget,
        counter,
        summarise: summariser === undefined ? undefined : {
          by: summariser.name,
          allowance,
          run: summariseWith(router, root, summariser, allowance),
          state: () => summaries.get(root),
          save: (s) => void summaries.set(root, s)
        }
      })
      const cap = options.maxOutputTokens
      const maxOutputTokens = cap !== undefined && fitted.promptTokens + cap > window ? Math.max(1, window - fitted.promptTokens) : cap
      return { messages: fitted.messages, maxOutputTokens, fit: fitted }
    })

  return { prepare, fit, forget: (root: ThreadId) => void summaries.delete(root) }
}
