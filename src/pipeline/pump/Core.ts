/**
 * What the parts of the pump share: the services, the running version (replaced whole by a
 * hot reload), the inbox of hops, the books and the producers' permits. Each part (lifecycle,
 * outbox, dispatcher, delivery) is a function of this core; Pump.ts wires them.
 */
import { Deferred, Effect, type Exit, FiberId } from "effect"
import type { RequestError } from "../../domain/PumpError.js"
import type { PumpEvent } from "../../domain/PumpEvent.js"
import type { BudgetRegistry } from "../../services/BudgetRegistry.js"
import type { ContextBuffer } from "../../services/ContextBuffer.js"
import type { Events } from "../../services/Events.js"
import type { RootThread, ThreadRegistry } from "../../services/ThreadRegistry.js"
import type { TodoRegistry } from "../../services/TodoRegistry.js"
import type { XmlEngine } from "../../services/XmlEngine.js"
import type { Inbox } from "../internal/Inbox.js"
import type { Permits } from "../internal/Permits.js"
import type { Branches } from "./Branches.js"
import type { Endings } from "./Endings.js"
import type { Hop } from "./Hop.js"
import type { Version } from "./Version.js"

/** The sender name of messages the pump writes on its own behalf. */
export const SYSTEM = "system"

/** Dead letters and event texts keep at most this much of a message. */
export const TEXT_LIMIT = 4096

export const clip = (s: string) => (s.length > TEXT_LIMIT ? `${s.slice(0, TEXT_LIMIT)}…` : s)

export const payloadXmlOf = (tag: string, inner: string) => `<${tag}>${inner}</${tag}>`

/** A payload as it goes into an envelope. */
export interface Encoded {
  readonly tag: string
  readonly inner: string
  /**
   * The content is in canonical form as written (a payload class's encoder wrote it, with no
   * free-form XML field): the envelope around it needs no C14N pass (see Ingress.ts).
   */
  readonly canonical: boolean
}

/** A `request` waiting for what comes back to its injector. */
export interface Waiting {
  readonly resolve: (exit: Exit.Exit<unknown, RequestError>) => void
  /** The last rejection or guard on its conversation, for a NoReply that says why. */
  lastProblem: string | undefined
  /** The listener the request went to: a NoReply names it. */
  readonly to: string
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
  /** Hops opened: envelopes that entered the inbox, plus replies refused before writing. */
  readonly injected: number
  /** Messages handed to their handler(s) or back to their injector. */
  readonly delivered: number
  readonly rejected: number
  readonly guardStopped: number
  /** Hops not yet settled, plus handler invocations not yet finished. */
  readonly inFlight: number
  /** Handler invocations started. */
  readonly invocations: number
  /** Handler invocations running now. */
  readonly running: number
  /** Rejections by `stage/kind`. */
  readonly rejectedBy: Readonly<Record<string, number>>
  /** Messages waiting for a person's decision (counted in `inFlight` too). */
  readonly pendingApprovals: number
}

/**
 * The pump's books. Every hop ends delivered, rejected or guard-stopped, so once idle
 * `injected = delivered + rejected + guardStopped`. Idle means nothing in flight: neither a
 * hop nor a job — except hops held for a person's approval (`held`), which stay in flight
 * but do not keep the pump from being idle: nothing moves until someone decides. The
 * outcome counters are written by the lifecycle (pump/Lifecycle.ts) only.
 */
export class Books {
  injected = 0
  delivered = 0
  rejected = 0
  guardStopped = 0
  invocations = 0
  running = 0
  /** Jobs holding a lease (waiting in a gate, for a slot, or running). */
  jobsOpen = 0
  /** Hops held for approval (pump/ApprovalDesk.ts): in flight, yet idle. */
  held = 0
  readonly rejectedBy: Record<string, number> = {}
  readonly deadLetters: Array<DeadLetter> = []
  /** Completed when the pump is next idle; made when someone waits. */
  private idle: Deferred.Deferred<void> | undefined

  inFlight(): number {
    return this.injected - this.delivered - this.rejected - this.guardStopped + this.jobsOpen
  }

  checkIdle(): void {
    if (this.idle !== undefined && this.inFlight() === this.held) {
      const idle = this.idle
      this.idle = undefined
      Deferred.unsafeDone(idle, Effect.void)
    }
  }

  readonly awaitIdle: Effect.Effect<void> = Effect.suspend(() => {
    if (this.inFlight() === this.held) return Effect.void
    this.idle ??= Deferred.unsafeMake<void>(FiberId.none)
    return Deferred.await(this.idle)
  })

  addDeadLetter(letter: DeadLetter, capacity: number): void {
    this.deadLetters.push(letter)
    while (this.deadLetters.length > capacity) this.deadLetters.shift()
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
      rejectedBy: { ...this.rejectedBy },
      pendingApprovals: this.held
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
  /** The running version: read it where it is needed, keep no copy (a reload replaces it). */
  version: Version
  readonly books: Books
  readonly inbox: Inbox<Hop>
  readonly permits: Permits
  readonly requests: Map<string, Waiting>
  /** No new external messages (draining). */
  stopped: boolean
  /** Past a drain's deadline, why: every message left is stopped, no handler starts. */
  halting: string | undefined
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
  /** Why each conversation ends (ThreadCompleted.reason). */
  readonly endings: Endings
  /** Whether each watched branch was answered, and why one ended (pump/Branches.ts). */
  readonly branches: Branches
  /** The conversations not yet completed, by root id (for `cancel`). */
  readonly liveRoots: Map<string, RootThread>
  /** Remembers why a conversation may end without a reply (for a waiting `request`). */
  readonly noteProblem: (root: RootThread | undefined, problem: string) => void
  /** Runs `hook` when the conversation `root` completes. */
  readonly onRootComplete: (root: string, hook: () => void) => void
}
