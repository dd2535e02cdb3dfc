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
 */
import { Cause, Duration, Effect, Exit, type Fiber, FiberId, FiberSet, Option, Runtime } from "effect"
import type { HandlerMetadata } from "../../domain/Listener.js"
import { AgentState, HandlerCompleted, HandlerFailed } from "../../domain/PumpEvent.js"
import { isReply } from "../../domain/Reply.js"
import { SystemErrors } from "../../domain/SystemPayloads.js"
import { enterAll, Gate, leaveAll } from "../internal/Gate.js"
import type { TimeoutWheel } from "../internal/TimeoutWheel.js"
import type { ListenerEntry } from "../Router.js"
import type { Job, PumpCore } from "./Core.js"
import type { Outbox } from "./Outbox.js"

export const makeDispatcher = <R>(
  core: PumpCore,
  outbox: Outbox,
  wheel: TimeoutWheel,
  runtime: Runtime.Runtime<R>,
  suspended: FiberSet.FiberSet<unknown, unknown>
) => {
  const { counts } = core
  const runSync = Runtime.runSyncExit(runtime)

  // --- gates ----------------------------------------------------------------------------
  // Kept by name across reloads, so an exclusive listener stays exclusive while jobs of its
  // old and new versions overlap in time.
  const categoryGates = new Map<string, Gate>()
  const listenerGates = new Map<string, Gate>()
  let gatesOf = new Map<ListenerEntry, ReadonlyArray<Gate>>()

  /** (Re)builds the gates for the current route table. */
  const buildGates = () => {
    const next = new Map<ListenerEntry, ReadonlyArray<Gate>>()
    for (const entry of core.router.listeners.values()) {
      const l = entry.listener
      const gates: Array<Gate> = []
      const own = l.concurrency._tag === "Exclusive"
        ? 1
        : l.maxConcurrent ?? (l.agent ? core.settings.maxConcurrentPerAgent : undefined)
      if (own !== undefined) {
        const key = l.name.toLowerCase()
        let g = listenerGates.get(key)
        if (g === undefined) listenerGates.set(key, g = new Gate(l.name, Math.max(1, own)))
        else g.capacity = Math.max(1, own)
        gates.push(g)
      }
      if (l.concurrency._tag === "Category") {
        const name = l.concurrency.name
        let g = categoryGates.get(name)
        if (g === undefined) categoryGates.set(name, g = new Gate(`category ${name}`, 1))
        gates.push(g)
      }
      next.set(entry, gates)
    }
    gatesOf = next
  }

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
    try {
      for (let i = 0; i < runnable.length; i++) {
        const job = runnable[i]!
        if (counts.running >= core.settings.maxConcurrentHandlers) waiting.push(job)
        else start(job)
      }
      runnable.length = 0
    } finally {
      draining = false
    }
  }

  const ready = (job: Job) => {
    runnable.push(job)
    drain()
  }

  const schedule = (job: Job) => {
    counts.jobsOpen++
    if (job.gates.length === 0) ready(job)
    else enterAll(job.gates, () => ready(job))
  }

  /** Global slots are free: the longest-waiting jobs take them. */
  const promote = () => {
    while (waitingHead < waiting.length && counts.running < core.settings.maxConcurrentHandlers) {
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
  const failJob = (job: Job, reason: "failed" | "died" | "timed-out", detail: string) => {
    const listener = job.entry.listener.name
    if (core.observed()) {
      core.publish(new HandlerFailed({ thread: job.node.id, root: job.node.root.id, time: core.now(), listener, reason, detail }, true))
    }
    core.noteProblem(job.node.root, `${listener} ${reason}: ${detail}`)
    // The caller path hears about it: a SystemError travels back one hop.
    const parent = job.node.parent
    if (parent !== undefined && !job.system) {
      outbox.sendSystemError(parent.name, parent, reason === "timed-out" ? SystemErrors.timeout() : SystemErrors.failed())
    }
  }

  const finishJob = (job: Job) => {
    if (job.timer !== undefined) wheel.disarm(job.timer)
    job.fiber = undefined
    counts.running--
    counts.jobsOpen--
    if (job.entry.listener.agent && core.observed()) {
      core.publish(
        new AgentState({ thread: job.node.id, root: job.node.root.id, time: core.now(), listener: job.entry.listener.name, state: "idle" }, true)
      )
    }
    leaveAll(job.gates)
    core.registry.release(job.node)
    core.permitDone(job.permit)
    promote()
    counts.checkIdle()
  }

  const completeJob = (job: Job, exit: Exit.Exit<unknown, unknown>) => {
    if (job.settled) return
    job.settled = true
    if (Exit.isSuccess(exit)) {
      const value = exit.value
      if (core.observed()) job.replies = []
      if (value !== undefined && value !== null) {
        if (isReply(value)) outbox.sendReply(job, value)
        else {
          // A programming error, not a model's: reported, not bounced back to the listener.
          outbox.reportInvalidReply(job, `handler returned ${typeof value === "object" ? (value as object).constructor?.name : typeof value}, not a Reply`)
        }
      }
      if (core.observed()) {
        core.publish(
          new HandlerCompleted({
            thread: job.node.id,
            root: job.node.root.id,
            time: core.now(),
            listener: job.entry.listener.name,
            replies: job.replies ?? [],
            durationMs: core.now() - job.startedAt
          }, true)
        )
      }
    } else if (!Cause.isInterruptedOnly(exit.cause)) {
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure)) failJob(job, "failed", String(failure.value instanceof Error ? failure.value.message : failure.value))
      else failJob(job, "died", Cause.pretty(exit.cause).split("\n")[0] ?? "defect")
    } else {
      failJob(job, "died", "interrupted")
    }
    finishJob(job)
  }

  const timeOut = (job: Job) => {
    if (job.settled) return
    job.settled = true
    failJob(job, "timed-out", `no reply within ${Duration.format(job.entry.listener.timeout ?? core.settings.handlerTimeout)}`)
    const fiber = job.fiber
    finishJob(job)
    fiber?.unsafeInterruptAsFork(FiberId.none)
  }

  const armTimeout = (job: Job) => {
    const timeout = Duration.toMillis(job.entry.listener.timeout ?? core.settings.handlerTimeout)
    if (Number.isFinite(timeout)) job.timer = wheel.arm(core.now() + timeout, () => timeOut(job))
  }

  // --- running ----------------------------------------------------------------------------
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

  const metadataOf = (job: Job): HandlerMetadata => {
    const l = job.entry.listener
    const root = job.node.root.id
    const base = { thread: job.node.id, from: job.from, self: l.name, isSelfCall: job.from === l.name, root }
    return l.agent
      ? { ...base, nudge: core.todos.nudgeFor(l.name, root)?.text, instructions: core.prompts.promptFor(l.name)?.system }
      : base
  }

  const start = (job: Job) => {
    counts.running++
    counts.invocations++
    job.startedAt = core.now()
    const l = job.entry.listener
    if (l.agent && core.observed()) {
      core.publish(new AgentState({ thread: job.node.id, root: job.node.root.id, time: core.now(), listener: l.name, state: "running" }, true))
    }
    const handler = (job.system ? l.onSystem! : l.handler) as (p: unknown, m: unknown) => unknown
    const meta = metadataOf(job)
    if (l.retry !== undefined) {
      const attempt = Effect.suspend(() => {
        const r = handler(job.payload, meta)
        return Effect.isEffect(r)
          ? (r as Effect.Effect<unknown, unknown, R>)
          : r instanceof Promise
          ? Effect.tryPromise({ try: () => r, catch: (e) => e })
          : Effect.succeed(r)
      })
      return runEffect(job, Effect.retry(attempt, l.retry))
    }
    let result: unknown
    try {
      result = handler(job.payload, meta)
    } catch (e) {
      return completeJob(job, Exit.die(e))
    }
    if (Effect.isEffect(result)) return runEffect(job, result as Effect.Effect<unknown, unknown, R>)
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

  return {
    buildGates,
    gatesFor: (entry: ListenerEntry): ReadonlyArray<Gate> => gatesOf.get(entry) ?? [],
    schedule,
    promote
  }
}

export type Dispatcher = ReturnType<typeof makeDispatcher>
