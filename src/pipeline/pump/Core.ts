/**
 * What the parts of the pump share: the services, the version of the organism it runs (which
 * a hot reload replaces), the inbox, and the accounting. Each part (outbox, dispatcher,
 * delivery, built-ins) is a function of this core; Pump.ts wires them and exposes the API.
 */
import { Effect, type Exit, type Fiber, type Queue } from "effect"
import type { Listener } from "../../domain/Listener.js"
import type { OrganismSettings } from "../../domain/Organism.js"
import type { RequestError } from "../../domain/PumpError.js"
import type { PumpEvent } from "../../domain/PumpEvent.js"
import type { BudgetRegistry } from "../../services/BudgetRegistry.js"
import type { ContextBuffer } from "../../services/ContextBuffer.js"
import type { Events } from "../../services/Events.js"
import type { PromptRegistry } from "../../services/PromptRegistry.js"
import type { RootThread, ThreadNode, ThreadRegistry } from "../../services/ThreadRegistry.js"
import type { TodoRegistry } from "../../services/TodoRegistry.js"
import type { XmlEngine } from "../../services/XmlEngine.js"
import type { Ingress } from "../Ingress.js"
import type { Gate } from "../internal/Gate.js"
import type { Permits } from "../internal/Permits.js"
import type { Timer } from "../internal/TimeoutWheel.js"
import type { ListenerEntry, Router } from "../Router.js"

/** The sender name of messages the pump writes on its own behalf. */
export const SYSTEM = "system"

/** Dead letters and event texts keep at most this much of a message. */
export const TEXT_LIMIT = 4096

export const clip = (s: string) => (s.length > TEXT_LIMIT ? `${s.slice(0, TEXT_LIMIT)}…` : s)

export const payloadXmlOf = (tag: string, inner: string) => `<${tag}>${inner}</${tag}>`

export interface Origin {
  /** The node this message travels on (the receiver's end of the chain). */
  readonly node: ThreadNode
  /** Where a bounce goes if the message is rejected: the sending listener's node. */
  readonly senderNode: ThreadNode | undefined
  /** Written by the pump for itself (SystemErrors): never bounced, not a step. */
  readonly system: boolean
}

export interface InboxItem {
  /** Raw bytes from outside, or the envelope text the pump wrote. */
  readonly input: Uint8Array | string
  /** Present when the pump wrote the envelope (trusted routing facts). */
  readonly origin: Origin | undefined
  readonly permit: Permit | undefined
}

/** An external producer's permit, returned when its message and its deliveries are done. */
export interface Permit {
  pending: number
}

/** One handler invocation, from routing to completion. */
export interface Job {
  readonly entry: ListenerEntry
  readonly payload: unknown
  /** A payload the listener accepts implicitly (SystemError…): its onSystem handler runs. */
  readonly system: boolean
  readonly node: ThreadNode
  readonly from: string
  readonly permit: Permit | undefined
  readonly gates: ReadonlyArray<Gate>
  settled: boolean
  timer: Timer | undefined
  /** The fiber of a handler that suspended. */
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  startedAt: number
  /** Payload types written for this job's reply (only kept while events are observed). */
  replies: Array<string> | undefined
  /** (target, payload) pairs this invocation already counted for loop detection. */
  loopSeen?: Set<string>
}

/** A payload as it goes into an envelope. */
export interface Encoded {
  readonly tag: string
  readonly inner: string
}

/** A `request` waiting for what comes back to its injector. */
export interface Waiting {
  readonly resolve: (exit: Exit.Exit<unknown, RequestError>) => void
  /** The last rejection or guard on its conversation, for a NoReply that says why. */
  lastProblem: string | undefined
}

export interface DeadLetter {
  readonly time: number
  readonly stage: string
  readonly kind: string
  readonly reason: string
  readonly diagnostics: ReadonlyArray<string>
  readonly from: string | null
  readonly to: string | null
  readonly thread: string | null
  readonly payloadType: string | null
  /** The message as text (canonical when it got that far), at most 4 KiB. */
  readonly text: string
}

export interface Counters {
  /** Envelopes that entered the inbox (plus replies refused before writing: peer violations). */
  readonly injected: number
  /** Messages handed to their handler(s) or back to their injector. */
  readonly delivered: number
  readonly rejected: number
  readonly guardStopped: number
  /** Injected but not yet settled, plus handler invocations not yet finished. */
  readonly inFlight: number
  /** Handler invocations started. */
  readonly invocations: number
  /** Handler invocations running now. */
  readonly running: number
  /** Rejections by `stage/kind`. */
  readonly rejectedBy: Readonly<Record<string, number>>
}

/**
 * The pump's accounting: every message ends delivered, rejected or guard-stopped, so once
 * idle `injected = delivered + rejected + guardStopped`. Idle means nothing in flight:
 * neither a message nor a handler invocation.
 */
export class Accounting {
  injected = 0
  delivered = 0
  rejected = 0
  guardStopped = 0
  invocations = 0
  running = 0
  /** Jobs scheduled and not finished (waiting in a gate, for a slot, or running). */
  jobsOpen = 0
  readonly rejectedBy: Record<string, number> = {}
  readonly deadLetters: Array<DeadLetter> = []
  private idleWaiters: Array<() => void> = []

  inFlight(): number {
    return this.injected - this.delivered - this.rejected - this.guardStopped + this.jobsOpen
  }

  checkIdle(): void {
    if (this.idleWaiters.length > 0 && this.inFlight() === 0) {
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const w of waiters) w()
    }
  }

  readonly awaitIdle: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.inFlight() === 0) return resume(Effect.void)
    const waiter = () => resume(Effect.void)
    this.idleWaiters.push(waiter)
    return Effect.sync(() => {
      this.idleWaiters = this.idleWaiters.filter((w) => w !== waiter)
    })
  })

  addDeadLetter(letter: DeadLetter, capacity: number): void {
    this.deadLetters.push(letter)
    if (this.deadLetters.length > capacity) this.deadLetters.shift()
  }

  snapshot(): Counters {
    return {
      injected: this.injected,
      delivered: this.delivered,
      rejected: this.rejected,
      guardStopped: this.guardStopped,
      inFlight: this.inFlight(),
      invocations: this.invocations,
      running: this.running,
      rejectedBy: { ...this.rejectedBy }
    }
  }
}

export interface PumpCore {
  readonly registry: ThreadRegistry.Service
  readonly engine: XmlEngine.Service
  readonly context: ContextBuffer.Service
  readonly todos: TodoRegistry.Service
  readonly budgets: BudgetRegistry.Service
  readonly events: Events.Service
  /** The running version (replaced whole by a hot reload). */
  settings: OrganismSettings
  router: Router
  prompts: PromptRegistry.Service
  ingress: Ingress
  listeners: ReadonlyArray<Listener>
  readonly counts: Accounting
  readonly inbox: Queue.Queue<InboxItem>
  readonly permits: Permits
  readonly requests: Map<string, Waiting>
  /** No new external messages (draining). */
  stopped: boolean
  /** The pump's scope is closing: results of interrupted handlers are ignored. */
  closing: boolean
  /** Epoch milliseconds with a sub-millisecond fraction, from the Effect clock. */
  readonly now: () => number
  /**
   * Call sites test `observed()` before building an event: with nobody listening, no event
   * object is allocated per message.
   */
  readonly observed: () => boolean
  readonly publish: (event: PumpEvent) => void
  readonly permitDone: (permit: Permit | undefined) => void
  /** Remembers why a conversation may end without a reply (for a waiting `request`). */
  readonly noteProblem: (root: RootThread | undefined, problem: string) => void
  /** Runs `hook` when the conversation `root` completes. */
  readonly onRootComplete: (root: string, hook: () => void) => void
}
