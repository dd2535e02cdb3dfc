/**
 * The conversations `organism serve` shows: a bounded, in-memory index fed by the pump's
 * events. It keeps the most recent conversations (root threads) with their events, and
 * forgets the oldest ones first once it holds more than `maxConversations`, or more than
 * `maxChars` of message text in all — a server that runs for weeks never grows without
 * bound. The journal, not this index, is the complete record.
 *
 * `record` runs on the pump's path (an Events observer): it only appends references and
 * adds numbers; JSON is built when someone asks.
 */
import { eventToJson, type PumpEvent } from "../domain/PumpEvent.js"

export interface IndexLimits {
  /** Conversations kept (the most recent ones). */
  readonly maxConversations: number
  /** Events kept per conversation; later ones are counted, not kept. */
  readonly maxEventsPerConversation: number
  /** Characters of message text (payloads, envelopes) kept across all conversations. */
  readonly maxChars: number
}

export const defaultIndexLimits: IndexLimits = {
  maxConversations: 1000,
  maxEventsPerConversation: 500,
  maxChars: 32 * 1024 * 1024
}

export type ConversationState = "running" | "completed"

interface Entry {
  readonly thread: string
  injector: string | null
  to: string | null
  startedAt: number
  endedAt: number | null
  state: ConversationState
  reason: unknown
  invocations: number
  messages: number
  rejections: number
  guardTrips: number
  failures: number
  modelCalls: number
  tokens: number
  costUsd: number
  firstPayloadType: string | null
  events: Array<PumpEvent>
  droppedEvents: number
  chars: number
}

/** What the list of conversations says about one. */
export interface ConversationSummary {
  readonly thread: string
  readonly state: ConversationState
  /** Why it ended, when the pump says (ThreadCompleted.reason), else null. */
  readonly reason: unknown
  readonly injector: string | null
  readonly to: string | null
  readonly payloadType: string | null
  readonly startedAt: number
  readonly endedAt: number | null
  readonly invocations: number
  readonly messages: number
  readonly rejections: number
  readonly guardTrips: number
  readonly failures: number
  readonly modelCalls: number
  readonly tokens: number
  readonly costUsd: number
}

/** One message of a conversation's tree: where it travels (thread) and what it extends (parent). */
export interface MessageNode {
  readonly thread: string | null
  readonly parent: string | null
  readonly depth: number
  readonly time: number
  readonly from: string
  readonly to: string | null
  readonly origin: string
  readonly payloadType: string
  readonly payload: string
}

export interface ConversationDetail extends ConversationSummary {
  /** The messages written in this conversation, in order, with their depth in the call tree. */
  readonly tree: ReadonlyArray<MessageNode>
  /** Every event kept, in the `--json` shape (the timeline). */
  readonly events: ReadonlyArray<Record<string, unknown>>
  /** Events past `maxEventsPerConversation`, counted but not kept. */
  readonly droppedEvents: number
}

/** The conversation an event belongs to: its `root`, or the thread of a thread's own events. */
export const conversationOf = (e: PumpEvent): string | null => {
  const r = (e as { readonly root?: string | null }).root
  if (r !== undefined) return r
  if (e._tag === "ThreadCreated" || e._tag === "ThreadCompleted") return e.thread
  return null
}

const textSize = (e: PumpEvent): number => {
  const r = e as { readonly payload?: unknown; readonly envelope?: unknown; readonly text?: unknown }
  return (typeof r.payload === "string" ? r.payload.length : 0) +
    (typeof r.envelope === "string" ? r.envelope.length : 0) +
    (typeof r.text === "string" ? r.text.length : 0) + 64
}

const num = (u: unknown): number => (typeof u === "number" && Number.isFinite(u) ? u : 0)

export class ConversationIndex {
  private readonly entries = new Map<string, Entry>()
  private chars = 0

  constructor(readonly limits: IndexLimits = defaultIndexLimits) {}

  get size(): number {
    return this.entries.size
  }

  /** Takes one pump event into the index. Never throws on an event it does not know. */
  record(e: PumpEvent): void {
    // Pieces of a streamed answer are for live views: the completed call holds the whole text.
    if (e._tag === "LlmOutputDelta") return
    const id = conversationOf(e)
    if (id === null) return
    let entry = this.entries.get(id)
    if (entry === undefined) {
      entry = {
        thread: id,
        injector: null,
        to: null,
        startedAt: e.time,
        endedAt: null,
        state: "running",
        reason: null,
        invocations: 0,
        messages: 0,
        rejections: 0,
        guardTrips: 0,
        failures: 0,
        modelCalls: 0,
        tokens: 0,
        costUsd: 0,
        firstPayloadType: null,
        events: [],
        droppedEvents: 0,
        chars: 0
      }
      this.entries.set(id, entry)
    }
    // Tags of events other parts of the framework may add (model calls) are read by name.
    const tag: string = e._tag
    const fields = e as unknown as Record<string, unknown>
    switch (tag) {
      case "ThreadCreated":
        entry.injector = fields.injector as string
        entry.to = (fields.to as string | null) ?? null
        entry.startedAt = e.time
        break
      case "ThreadCompleted":
        entry.state = "completed"
        entry.endedAt = e.time
        entry.invocations = Math.max(entry.invocations, num(fields.invocations))
        entry.reason = fields.reason ?? null
        break
      case "MessageSent":
        entry.messages++
        if (entry.firstPayloadType === null) entry.firstPayloadType = fields.payloadType as string
        if (entry.to === null) entry.to = (fields.to as string | null) ?? null
        if (entry.injector === null && fields.origin === "injected") entry.injector = fields.from as string
        break
      case "MessageRejected":
        entry.rejections++
        break
      case "GuardTripped":
        entry.guardTrips++
        break
      case "HandlerFailed":
        entry.failures++
        entry.invocations++
        break
      case "HandlerCompleted":
        entry.invocations++
        break
      case "LlmCallCompleted": {
        entry.modelCalls++
        const usage = fields.usage as Record<string, unknown> | undefined
        entry.tokens += num(fields.totalTokens) || num(fields.promptTokens) + num(fields.completionTokens) ||
          num(fields.inputTokens) + num(fields.outputTokens) || num(usage?.promptTokens) + num(usage?.completionTokens)
        entry.costUsd += num(fields.costUsd) || num(fields.cost)
        break
      }
      case "LlmCallFailed":
        entry.modelCalls++
        break
    }
    if (entry.events.length < this.limits.maxEventsPerConversation) {
      const size = textSize(e)
      entry.events.push(e)
      entry.chars += size
      this.chars += size
    } else entry.droppedEvents++
    this.evict()
  }

  /** Forgets the oldest conversations past the limits (Map order is insertion order). */
  private evict(): void {
    while (this.entries.size > this.limits.maxConversations || (this.chars > this.limits.maxChars && this.entries.size > 1)) {
      const oldest = this.entries.values().next().value as Entry
      this.entries.delete(oldest.thread)
      this.chars -= oldest.chars
    }
  }

  private summary(entry: Entry): ConversationSummary {
    return {
      thread: entry.thread,
      state: entry.state,
      reason: entry.reason,
      injector: entry.injector,
      to: entry.to,
      payloadType: entry.firstPayloadType,
      startedAt: entry.startedAt,
      endedAt: entry.endedAt,
      invocations: entry.invocations,
      messages: entry.messages,
      rejections: entry.rejections,
      guardTrips: entry.guardTrips,
      failures: entry.failures,
      modelCalls: entry.modelCalls,
      tokens: entry.tokens,
      costUsd: entry.costUsd
    }
  }

  /** The most recent conversations first, at most `limit`. */
  list(limit: number = this.limits.maxConversations): Array<ConversationSummary> {
    const all = [...this.entries.values()]
    const out: Array<ConversationSummary> = []
    for (let i = all.length - 1; i >= 0 && out.length < limit; i--) out.push(this.summary(all[i]!))
    return out
  }

  get(thread: string): ConversationDetail | undefined {
    const entry = this.entries.get(thread)
    if (entry === undefined) return undefined
    const depthOf = new Map<string, number>()
    const tree: Array<MessageNode> = []
    for (const e of entry.events) {
      if (e._tag !== "MessageSent") continue
      const depth = e.parent === null ? 0 : (depthOf.get(e.parent) ?? -1) + 1
      if (e.thread !== null && !depthOf.has(e.thread)) depthOf.set(e.thread, depth)
      tree.push({
        thread: e.thread,
        parent: e.parent,
        depth,
        time: e.time,
        from: e.from,
        to: e.to,
        origin: e.origin,
        payloadType: e.payloadType,
        payload: e.payload
      })
    }
    return {
      ...this.summary(entry),
      tree,
      events: entry.events.map(eventToJson),
      droppedEvents: entry.droppedEvents
    }
  }
}
