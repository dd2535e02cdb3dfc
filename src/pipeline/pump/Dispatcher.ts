/**
 * Dispatch: handler invocations under the organism's policies.
 *
 * A handler runs where its message is routed, on the pump's own fiber, as long as it
 * completes synchronously (most handlers do: they compute a reply). Only a handler that
 * suspends — I/O, a model call, a sleep — continues as a fiber of its own, under a deadline
 * from the timer wheel. Handing every job to a worker fiber instead costs two scheduler hops
 * per message, more than the libxml2 work.
 *
 * The global handler limit and the per-listener / per-category gates are counters with FIFO
 * queues: a job that cannot start waits outside, never occupying a slot it cannot use.
 *
 * What a handler returns is checked here, at the boundary: anything but a Reply is an invalid
 * reply the caller hears about, and the job is finished whatever happens while its reply is
 * written — a job can never be left holding its lease.
 */
import { Cause, Duration, Effect, Either, Exit, type Fiber, FiberId, FiberSet, Option, Runtime } from "effect"
import type { HandlerMetadata } from "../../domain/Listener.js"
import { makeEvent, AgentState, GuardTripped, handlerCompleted, HandlerFailed } from "../../domain/PumpEvent.js"
import type { PayloadValue } from "../../domain/Reply.js"
import { Conversation } from "../Conversation.js"
import { decodeReply } from "../../domain/Reply.js"
import { SystemErrors } from "../../domain/SystemPayloads.js"
import { describeThrown } from "../Ingress.js"
import { enterAll, Gate, leaveAll } from "../internal/Gate.js"
import type { TimeoutWheel } from "../internal/TimeoutWheel.js"
import type { ListenerEntry, Router } from "../Router.js"
import type { RootThread } from "../../services/ThreadRegistry.js"
import { payloadXmlOf, type PumpCore } from "./Core.js"
import type { Job } from "./Job.js"
import type { Lifecycle } from "./Lifecycle.js"
import { encodePayload, type Outbox } from "./Outbox.js"
import { endingOfGuard } from "./Endings.js"
import { makeWallClock } from "./WallClock.js"
import type { OrganismSettings } from "../../domain/Organism.js"

/**
 * The concurrency gates, kept by name for the pump's lifetime: an exclusive listener stays
 * exclusive while jobs of an old and a new version of it overlap in time.
 */
export const makeGateSet = () => {
  const categoryGates = new Map<string, Gate>()
  const listenerGates = new Map<string, Gate>()

  /** The gates of a route table's listeners, and their capacities (applied on swap). */
  const gatesFor = (routes: Router, settings: OrganismSettings) => {
    const gates = new Map<ListenerEntry, ReadonlyArray<Gate>>()
    const capacity = new Map<Gate, number>()
    for (const entry of routes.listeners.values()) {
      const l = entry.listener
      const own: Array<Gate> = []
      const limit = l.concurrency._tag === "Exclusive"
        ? 1
        : l.maxConcurrent ?? (l.agent ? settings.maxConcurrentPerAgent : undefined)
      if (limit !== undefined) {
        const key = l.name.toLowerCase()
        let g = listenerGates.get(key)
        if (g === undefined) listenerGates.set(key, g = new Gate(l.name, Math.max(1, limit)))
        capacity.set(g, Math.max(1, limit))
        own.push(g)
      }
      if (l.concurrency._tag === "Category") {
        const name = l.concurrency.name
        let g = categoryGates.get(name)
        if (g === undefined) categoryGates.set(name, g = new Gate(`category ${name}`, 1))
        capacity.set(g, 1)
        own.push(g)
      }
      gates.set(entry, own)
    }
    return { gates, capacity }
  }

  /** Makes a version's capacities the gates' own (a higher one lets parked jobs in now). */
  const apply = (capacity: ReadonlyMap<Gate, number>) => {
    for (const [gate, n] of capacity) gate.resize(n)
  }

  return { gatesFor, apply }
}

export const makeDispatcher = <R>(
  core: PumpCore,
  lifecycle: Lifecycle,
  outbox: Outbox,
  wheel: TimeoutWheel,
  runtime: Runtime.Runtime<R>,
  suspended: FiberSet.FiberSet<unknown, unknown>
) => {
  const { books } = core
  const runSync = Runtime.runSyncExit(runtime)

  // --- queues -----------------------------------------------------------------------------
  // Jobs wait in two places: a gate's queue (listener or category busy), then `waiting` for a
  // global slot. `runnable` is a trampoline: starting a job can finish one, which can wake
  // another; running them from one loop keeps the stack flat.
  const waiting: Array<Job> = []
  let waitingHead = 0
  const runnable: Array<Job> = []
  let draining = false

  const drain = () => {
    if (draining) return
    draining = true
    let i = 0
    try {
      // Each job leaves the queue before it starts: one that throws is never started twice.
      while (i < runnable.length) {
        const job = runnable[i++]!
        if (books.running >= core.version.settings.maxConcurrentHandlers) waiting.push(job)
        else start(job)
      }
    } finally {
      runnable.splice(0, i)
      draining = false
    }
  }

  const ready = (job: Job) => {
    runnable.push(job)
    drain()
  }

  /** Jobs of a delivered message (their lease is already theirs) wait for their gates. */
  const schedule = (job: Job) => {
    if (job.gates.length === 0) ready(job)
    else enterAll(job.gates, () => ready(job))
  }

  /** Global slots are free: the longest-waiting jobs take them. */
  const promote = () => {
    while (waitingHead < waiting.length && books.running < core.version.settings.maxConcurrentHandlers) {
      const job = waiting[waitingHead]!
      waiting[waitingHead++] = undefined as never
      if (waitingHead === waiting.length) {
        waiting.length = 0
        waitingHead = 0
      }
      ready(job)
    }
  }

  // --- outcomes ---------------------------------------------------------------------------
  const failJob = (job: Job, reason: "failed" | "died" | "timed-out" | "invalid-reply" | "cancelled", detail: string) => {
    const listener = job.entry.listener.name
    if (core.observed()) {
      core.publish(makeEvent(HandlerFailed, { thread: job.node.id, root: job.node.root.id, time: core.now(), listener, reason, detail }))
    }
    core.noteProblem(job.node.root, `${listener} ${reason}: ${detail}`)
    core.endings.note(
      job.node.root,
      reason === "timed-out" ? "timeout" : reason === "cancelled" ? "cancelled" : "failed",
      `${listener} ${reason}: ${detail}`
    )
    core.branches.note(job.node, `${listener} ${reason}`)
    // The caller hears about it: a SystemError travels back one hop (and answers the branch).
    const parent = job.node.parent
    if (parent !== undefined && !job.system) {
      lifecycle.emitSystemError(
        parent.name,
        parent,
        reason === "timed-out" ? SystemErrors.timeout() : SystemErrors.failed(),
        job.node
      )
    }
  }

  const finishJob = (job: Job) => {
    if (job.timer !== undefined) wheel.disarm(job.timer)
    const jobs = suspendedJobs.get(job.node.root)
    if (jobs !== undefined && jobs.delete(job) && jobs.size === 0) suspendedJobs.delete(job.node.root)
    job.fiber = undefined
    if (job.entry.listener.agent && core.observed()) {
      core.publish(
        makeEvent(AgentState, { thread: job.node.id, root: job.node.root.id, time: core.now(), listener: job.entry.listener.name, state: "idle" })
      )
    }
    leaveAll(job.gates)
    lifecycle.finish(job)
    promote()
  }

  const replied = (job: Job, value: unknown) => {
    if (core.observed()) job.replies = []
    if (value !== undefined && value !== null) {
      // Whatever a handler returns is checked in full here: a malformed reply is the handler's
      // failure, which its caller hears about, and never a second outcome of its message.
      const reply = decodeReply(value)
      if (Either.isLeft(reply)) return failJob(job, "invalid-reply", `handler returned something that is not a Reply: ${reply.left}`)
      outbox.sendReply(job, reply.right)
    }
    if (core.observed()) {
      const time = core.now()
      core.publish(
        handlerCompleted({
          thread: job.node.id,
          root: job.node.root.id,
          time,
          listener: job.entry.listener.name,
          replies: job.replies ?? [],
          durationMs: time - job.startedAt
        })
      )
    }
  }

  const completeJob = (job: Job, exit: Exit.Exit<unknown, unknown>) => {
    if (job.done) return
    job.done = true
    try {
      if (Exit.isSuccess(exit)) replied(job, exit.value)
      else if (!Cause.isInterruptedOnly(exit.cause)) {
        const failure = Cause.failureOption(exit.cause)
        if (Option.isSome(failure)) failJob(job, "failed", String(failure.value instanceof Error ? failure.value.message : failure.value))
        else failJob(job, "died", Cause.pretty(exit.cause).split("\n")[0] ?? "defect")
      } else if (core.halting !== undefined) {
        failJob(job, "cancelled", core.halting)
      } else if (core.endings.cancelled(job.node.root)) {
        failJob(job, "cancelled", core.endings.of(job.node.root).detail)
      } else {
        failJob(job, "died", "interrupted")
      }
    } catch (thrown) {
      // Writing the reply threw (a registry Layer, a bug): the handler's reply is lost, which
      // its caller hears; the job still gives back its lease below.
      failJob(job, "invalid-reply", describeThrown(thrown))
    } finally {
      finishJob(job)
    }
  }

  const timeOut = (job: Job) => {
    if (job.done) return
    job.done = true
    const fiber = job.fiber
    try {
      failJob(job, "timed-out", `no reply within ${Duration.format(job.entry.listener.timeout ?? job.version.settings.handlerTimeout)}`)
    } finally {
      finishJob(job)
    }
    fiber?.unsafeInterruptAsFork(FiberId.none)
  }

  // Jobs that suspended (a fiber or a Promise), by conversation: what `cancel` interrupts.
  const suspendedJobs = new Map<RootThread, Set<Job>>()

  const armTimeout = (job: Job) => {
    const root = job.node.root
    let jobs = suspendedJobs.get(root)
    if (jobs === undefined) suspendedJobs.set(root, jobs = new Set())
    jobs.add(job)
    const timeout = Duration.toMillis(job.entry.listener.timeout ?? job.version.settings.handlerTimeout)
    if (Number.isFinite(timeout)) job.timer = wheel.arm(core.now() + timeout, () => timeOut(job))
    wallClock.arm(root)
  }

  /** Ends every suspended job of every conversation (a drain's deadline), Promises included. */
  const cancelAll = (reason: string) => {
    for (const root of [...suspendedJobs.keys()]) {
      core.endings.note(root, "cancelled", reason)
      cancel(root)
    }
  }

  /** Ends every suspended job of a cancelled conversation now; waiting ones never start. */
  const cancel = (root: RootThread) => interruptAll(root, "cancelled", core.endings.of(root).detail)

  /** Ends every suspended job of a conversation now, with the reason its callers hear. */
  const interruptAll = (root: RootThread, reason: "cancelled" | "timed-out", detail: string) => {
    const jobs = suspendedJobs.get(root)
    if (jobs === undefined) return
    for (const job of [...jobs]) {
      if (job.done) continue
      job.done = true
      const fiber = job.fiber
      try {
        failJob(job, reason, detail)
      } finally {
        finishJob(job)
      }
      fiber?.unsafeInterruptAsFork(FiberId.none)
    }
    drain()
  }

  const wallClock = makeWallClock(core, wheel, (root, detail) => interruptAll(root, "timed-out", detail))

  // --- running ----------------------------------------------------------------------------
  const withConversation = (job: Job, effect: Effect.Effect<unknown, unknown, R>) =>
    Effect.provideService(effect, Conversation, conversationOf(job)) as Effect.Effect<unknown, unknown, R>

  /** Runs an Effect on the spot; if it suspends, it continues as its own fiber. */
  const runEffect = (job: Job, effect: Effect.Effect<unknown, unknown, R>) => {
    const exit = runSync(effect)
    if (Exit.isFailure(exit) && Cause.isDieType(exit.cause) && Runtime.isAsyncFiberException(exit.cause.defect)) {
      const fiber = exit.cause.defect.fiber as Fiber.RuntimeFiber<unknown, unknown>
      job.fiber = fiber
      FiberSet.unsafeAdd(suspended, fiber)
      armTimeout(job)
      fiber.addObserver((done) => {
        // At shutdown, handlers interrupted with the pump are not failures of the organism.
        if (core.closing) return
        completeJob(job, done)
        drain()
      })
      return
    }
    completeJob(job, exit)
  }

  /**
   * What the job's handler can ask of the pump, when its Effect asks (`yield* Conversation`).
   * One small object per job: every field is a getter on a shared prototype (JobConversation),
   * so a job that never asks allocates no closure, and a suspended handler keeps no more than
   * its job's reference (a closure per method cost ≈ 2.4 KB per suspended handler).
   */
  const parts: ConversationParts = {
    core,
    emitSystem: (from, node, encoded) => lifecycle.emitSystem(from, node, encoded),
    replyAs: (entry, node, reply) => outbox.replyAs(entry, node, reply)
  }
  const conversationOf = (job: Job): Conversation.Service => new JobConversation(job, parts)

  const metadataOf = (job: Job): HandlerMetadata => {
    const l = job.entry.listener
    const root = job.node.root.id
    const base = { thread: job.node.id, from: job.from, self: l.name, isSelfCall: job.from === l.name, root, diagnostics: job.diagnostics }
    return l.agent
      ? { ...base, nudge: core.todos.unsafeNudgeFor(l.name, root)?.text, instructions: job.version.prompts.unsafePromptFor(l.name)?.system }
      : base
  }

  const start = (job: Job) => {
    lifecycle.start()
    if (core.halting !== undefined || core.endings.cancelled(job.node.root)) return completeJob(job, Exit.interrupt(FiberId.none))
    // A job that waited at its gates past its conversation's wall clock never starts.
    const expired = wallClock.expired(job.node.root)
    if (expired !== undefined) {
      job.done = true
      try {
        failJob(job, "timed-out", expired)
      } finally {
        finishJob(job)
      }
      return
    }
    job.startedAt = core.now()
    const l = job.entry.listener
    if (l.agent && core.observed()) {
      core.publish(makeEvent(AgentState, { thread: job.node.id, root: job.node.root.id, time: core.now(), listener: l.name, state: "running" }))
    }
    const handler = (job.system ? l.onSystem! : l.handler) as (p: unknown, m: unknown) => unknown
    let meta: HandlerMetadata
    try {
      meta = metadataOf(job)
    } catch (e) {
      return completeJob(job, Exit.die(e))
    }
    if (l.retry !== undefined) {
      const attempt = Effect.suspend(() => {
        const r = handler(job.payload, meta)
        return Effect.isEffect(r)
          ? (r as Effect.Effect<unknown, unknown, R>)
          : r instanceof Promise
          ? Effect.tryPromise({ try: () => r, catch: (e) => e })
          : Effect.succeed(r)
      })
      return runEffect(job, withConversation(job, Effect.retry(attempt, l.retry)))
    }
    let result: unknown
    try {
      result = handler(job.payload, meta)
    } catch (e) {
      return completeJob(job, Exit.die(e))
    }
    if (Effect.isEffect(result)) return runEffect(job, withConversation(job, result as Effect.Effect<unknown, unknown, R>))
    if (result instanceof Promise) {
      armTimeout(job)
      result.then(
        (value) => completeJob(job, Exit.succeed(value)),
        (error) => completeJob(job, Exit.fail(error))
      ).finally(drain)
      return
    }
    completeJob(job, Exit.succeed(result))
  }

  return { schedule, promote, cancel, cancelAll }
}

export type Dispatcher = ReturnType<typeof makeDispatcher>

/** What a job's Conversation needs of the pump besides its job. */
interface ConversationParts {
  readonly core: PumpCore
  readonly emitSystem: Lifecycle["emitSystem"]
  readonly replyAs: Outbox["replyAs"]
}

/**
 * A job's `Conversation`. Getters, not methods: a handler may take a function out of it
 * (`const { history } = yield* Conversation`), and a getter hands out one that needs no
 * `this`. Values and Effects are made when asked for, from the job.
 */
class JobConversation implements Conversation.Service {
  constructor(private readonly job: Job, private readonly parts: ConversationParts) {}

  get thread() {
    return this.job.node.id
  }
  get root() {
    return this.job.node.root.id
  }
  get self() {
    return this.job.entry.listener.name
  }
  get from() {
    return this.job.from
  }
  get caller() {
    const parent = this.job.node.parent
    return parent === undefined || parent.parent === undefined ? Option.none() : Option.some(parent.id)
  }
  get senderThread() {
    const sender = this.job.sender
    return sender === undefined ? Option.none() : Option.some(sender.id)
  }
  get history(): Conversation.Service["history"] {
    const { core } = this.parts
    const root = this.job.node.root.id
    return (query) => Effect.sync(() => core.context.unsafeQuery(root, query))
  }
  get nudge(): Conversation.Service["nudge"] {
    const { core } = this.parts
    const { job } = this
    return Effect.sync(() => Option.fromNullable(core.todos.unsafeNudgeFor(job.entry.listener.name, job.node.root.id)?.text))
  }
  get instructions(): Conversation.Service["instructions"] {
    const { job } = this
    const l = job.entry.listener
    return Effect.sync(() => Option.fromNullable(job.version.prompts.unsafePromptFor(l.name)?.system ?? l.prompt))
  }
  get vocabulary(): Conversation.Service["vocabulary"] {
    const { job } = this
    return Effect.sync(() => job.version.vocabulary(job.entry.listener.name))
  }
  get xml() {
    return this.parts.core.engine
  }
  get xmlOf(): Conversation.Service["xmlOf"] {
    const { job } = this
    return (payload) => {
      const encoded = encodePayload(payload as PayloadValue, job.version.settings.wire)
      return Either.isRight(encoded) ? payloadXmlOf(encoded.right.tag, encoded.right.inner) : String(payload)
    }
  }
  get notify(): Conversation.Service["notify"] {
    const { core, emitSystem } = this.parts
    const { job } = this
    return (payload) =>
      Effect.sync(() => {
        // Judged by the running version when it arrives: written in its wire form.
        const encoded = encodePayload(payload, core.version.settings.wire)
        if (Either.isRight(encoded)) emitSystem(job.entry.listener.name, job.node, encoded.right)
      })
  }
  get guardTripped(): Conversation.Service["guardTripped"] {
    const { core } = this.parts
    const { job } = this
    return (guard, detail) =>
      Effect.sync(() => {
        const l = job.entry.listener
        const root = job.node.root
        core.noteProblem(root, `guard ${guard}: ${detail}`)
        core.endings.note(root, endingOfGuard(guard), `${guard}: ${detail}`)
        // Why a branch through this job ended, in the words its caller hears (pump/Branches.ts).
        core.branches.note(
          job.node,
          guard === "stop-when"
            ? `${l.name} reached its stop condition`
            : guard === "stop-when-failed"
            ? `${l.name} stopped: its stop condition failed`
            : `stopped by the ${guard} guard`
        )
        if (core.observed()) {
          core.publish(makeEvent(GuardTripped, { thread: job.node.id, root: root.id, time: core.now(), guard, listener: l.name, detail }))
        }
      })
  }
  get onComplete(): Conversation.Service["onComplete"] {
    const { core } = this.parts
    const root = this.job.node.root.id
    return (hook) => Effect.sync(() => core.onRootComplete(root, hook))
  }
  get onBranchEnd(): Conversation.Service["onBranchEnd"] {
    const { core, replyAs } = this.parts
    const { job } = this
    return (hook) => Effect.sync(() => core.registry.unsafeOnBranchEnd(job.node, () => hook((reply) => replyAs(job.entry, job.node, reply))))
  }
}
