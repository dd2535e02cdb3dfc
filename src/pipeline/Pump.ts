/**
 * The message pump: bounded inbox → ingress stages → route → dispatch → the pump writes the
 * reply envelopes → re-inject. Every message — injected, replied, or a SystemError the pump
 * itself sends — takes the same path, and ends in exactly one outcome: delivered, rejected,
 * or stopped by a guard. Counters for the three always add up to what was injected.
 *
 * Shape of the machinery (and why):
 * - The inbox is one unbounded FIFO (internal/Inbox.ts) read in chunks by one fiber; each
 *   chunk runs through the ingress stages synchronously, stage by stage (they are libxml2
 *   calls — no fiber per stage or message), then through delivery (pump/Delivery.ts). The
 *   chunks already waiting are delivered in one step of that fiber (pump/Intake.ts). With ingress workers
 *   (settings.ingress.workers) the libxml2 stages of larger chunks run in worker threads while
 *   this thread delivers the chunk before (pump/Intake.ts).
 * - External producers (inject, injectRaw) hold a permit from a bounded pool until their
 *   message is fully handled: that is the backpressure. Replies never wait for a permit, so
 *   a handler can never deadlock against a full inbox.
 * - Handlers run inline while they complete synchronously, under counters and FIFO gates for
 *   the concurrency limits (pump/Dispatcher.ts); the outbox turns replies into envelopes
 *   (pump/Outbox.ts), and every hop is opened and settled by the lifecycle (pump/Lifecycle.ts).
 * - What the pump derives from an organism is one immutable Version (pump/Version.ts),
 *   swapped whole by a reload.
 *
 * This file wires the parts around a shared core (pump/Core.ts) and exposes the API.
 */
import { Context, Deferred, Duration, Effect, Either, Exit, FiberSet, Layer, Option, Queue, Scope, Stream } from "effect"
import { builtinPayloads } from "../domain/BuiltinPayloads.js"
import type { ThreadId } from "../domain/Ids.js"
import type { Listener } from "../domain/Listener.js"
import type { Organism } from "../domain/Organism.js"
import { makeEvent, type PumpEvent, RawReceived, ReloadEvent, ThreadCompleted, ThreadCreated } from "../domain/PumpEvent.js"
import {
  InboxFull,
  type InjectError,
  NoReply,
  PayloadNotEncodable,
  PumpStopped,
  ReloadRefused,
  type RequestError,
  RequestTimedOut
} from "../domain/PumpError.js"
import type { PayloadValue } from "../domain/Reply.js"
import { Boot } from "../domain/SystemPayloads.js"
import { Approvals } from "../services/Approvals.js"
import { BudgetRegistry } from "../services/BudgetRegistry.js"
import { ContextBuffer } from "../services/ContextBuffer.js"
import { Events } from "../services/Events.js"
import {
  type DuplicateListener,
  type PromptConfigError,
  PromptRegistry,
  type PromptRegistryFrozen
} from "../services/PromptRegistry.js"
import { type RootThread, type ThreadNode, ThreadRegistry } from "../services/ThreadRegistry.js"
import { TodoRegistry } from "../services/TodoRegistry.js"
import { type SchemaCompileError, XmlEngine } from "../services/XmlEngine.js"
import type { Conversation } from "./Conversation.js"
import { Ingress } from "./Ingress.js"
import { Inbox } from "./internal/Inbox.js"
import { makeIoSlice } from "./internal/IoSlice.js"
import { millisOf } from "./internal/MillisClock.js"
import { IoFairness } from "./IoFairness.js"
import { Permits } from "./internal/Permits.js"
import { makeXmlWorkers, workersFor } from "./internal/XmlWorkers.js"
import { TimeoutWheel } from "./internal/TimeoutWheel.js"
import { diffListeners, type ListenerDiff } from "./ListenerDiff.js"
import { primitiveListeners, withPrimitives } from "./primitives/withPrimitives.js"
import {
  Books,
  type Counters as CoreCounters,
  type DeadLetter as CoreDeadLetter,
  type PumpCore,
  SYSTEM,
  type Waiting
} from "./pump/Core.js"
import { makeApprovalDesk } from "./pump/ApprovalDesk.js"
import { CustomStages } from "./pump/CustomStages.js"
import { makeBranches } from "./pump/Branches.js"
import { makeEndings } from "./pump/Endings.js"
import { makeDelivery } from "./pump/Delivery.js"
import { makeDispatcher, makeGateSet } from "./pump/Dispatcher.js"
import type { Hop, Permit } from "./pump/Hop.js"
import { inlineIntake, pipelinedIntake } from "./pump/Intake.js"
import { makeLifecycle } from "./pump/Lifecycle.js"
import { encodePayload, makeOutbox } from "./pump/Outbox.js"
import { limitsOf, stagesByPoint, type Version, vocabularyOf } from "./pump/Version.js"
import { makeRouter, type RouteTableError } from "./Router.js"

export { SYSTEM } from "./pump/Core.js"

/** The services a pump needs besides its handlers' own requirements. */
export type PumpServices = XmlEngine | ThreadRegistry | Events | ContextBuffer | TodoRegistry | BudgetRegistry

export type PromptError = PromptConfigError | DuplicateListener | PromptRegistryFrozen

export declare namespace Pump {
  export type Counters = CoreCounters
  export type DeadLetter = CoreDeadLetter

  export interface InjectOptions extends AdmissionOptions {
    /** The injector's name (default: the organism's `injector`, "console"). */
    readonly from?: string
  }

  export interface AdmissionOptions {
    /**
     * How long to wait for one of the inbox's permits when all `inbox_capacity` are held by
     * messages in flight; past it the injection fails with `InboxFull`. Without it, the
     * injection waits as long as it takes. A free permit is taken at once either way.
     */
    readonly maxWait?: Duration.DurationInput
  }

  export interface Drained {
    /** Everything finished within the deadline. */
    readonly finished: boolean
    /** Handler jobs (running or waiting) still open at the deadline, then interrupted. */
    readonly interrupted: number
  }

  export interface RequestOptions extends InjectOptions {
    readonly timeout?: Duration.DurationInput
  }

  export interface Service {
    readonly organism: Organism<any>
    /** Sends a payload to a listener on a new root thread; returns that thread's id. */
    readonly inject: (to: string, payload: PayloadValue, options?: InjectOptions) => Effect.Effect<ThreadId, InjectError>
    /** Feeds raw envelope bytes from outside (untrusted: every check applies). */
    readonly injectRaw: (bytes: Uint8Array | string, options?: AdmissionOptions) => Effect.Effect<void, PumpStopped | InboxFull>
    /** Injects and waits for the first payload that comes back to the injector. */
    readonly request: (to: string, payload: PayloadValue, options?: RequestOptions) => Effect.Effect<unknown, RequestError>
    /** Every pump event from the moment the stream is run. */
    readonly events: Stream.Stream<PumpEvent>
    /**
     * A subscription to the pump's events, live when this Effect returns: no event published
     * afterwards is missed. It lasts as long as the Scope.
     */
    readonly subscribe: Effect.Effect<Queue.Dequeue<PumpEvent>, never, Scope.Scope>
    /**
     * Waits until the inbox is empty and no handler is running. It does not wait for people:
     * messages held for approval stay in flight (`counters().pendingApprovals`) yet idle.
     */
    readonly awaitIdle: Effect.Effect<void>
    /**
     * Human approval: the messages to listeners with `approval: required` waiting for a
     * decision, and the way to approve or deny them. The Approvals service of the context the
     * pump was made in, or an in-memory one of its own.
     */
    readonly approvals: Approvals.Service
    readonly counters: () => Counters
    readonly deadLetters: () => ReadonlyArray<DeadLetter>
    readonly threads: () => { readonly roots: number; readonly nodes: number }
    /**
     * Stops taking external messages and waits for in-flight work to finish, up to
     * `deadline`. Messages waiting for approval are stopped at once by the `unapproved` guard
     * (a drain never waits for a person); their senders hear it. Past the deadline, what is left is stopped and booked — messages by the
     * `shutdown` guard, handler jobs interrupted (their callers hear it) — and it returns
     * once the books add up, saying how many handler jobs were still open at the deadline.
     */
    readonly drain: (deadline: Duration.DurationInput) => Effect.Effect<Pump.Drained>
    /**
     * Hot reload: swaps in another version of the organism (listeners, settings). Messages
     * already dispatched finish on the version they started with; the next message routes on
     * the new one. Publishes a ReloadEvent; returns what was added, removed and updated.
     */
    readonly reload: (
      organism: Organism<any>
    ) => Effect.Effect<ListenerDiff, SchemaCompileError | RouteTableError | PromptError | ReloadRefused>
    /**
     * Cancels a conversation (given any of its thread ids, or the start of its root id): its
     * suspended handlers and model calls are interrupted now, the rest of its messages are
     * stopped by the `cancelled` guard (those waiting for approval too), and it ends with
     * reason `cancelled`. False when no
     * live conversation matches.
     */
    readonly cancel: (thread: string, options?: { readonly by?: string }) => Effect.Effect<boolean>
    /** The agents' prompts and usage instructions of the running version. */
    readonly prompts: () => PromptRegistry.Service
  }
}

const make = Effect.fn("Pump.make")(function*<R>(organism: Organism<R>) {
  const registry = yield* ThreadRegistry
  const engine = yield* XmlEngine
  const events = yield* Events
  const context = yield* ContextBuffer
  const todos = yield* TodoRegistry
  const budgets = yield* BudgetRegistry
  const layerStages = Option.getOrElse(yield* Effect.serviceOption(CustomStages), () => [])
  const provided = yield* Effect.serviceOption(Approvals)
  const approvals = Option.isSome(provided) ? provided.value : yield* Approvals.makeMemory
  const clock = yield* Effect.clock
  const scope = yield* Effect.scope
  const inbox = yield* Effect.acquireRelease(Effect.sync(() => new Inbox<Hop>()), (i) => i.shutdown)
  const permits = new Permits(organism.settings.inboxCapacity)
  const rootHooks = new Map<string, Array<() => void>>()
  const requests = new Map<string, Waiting>()
  // A hop takes tens of microseconds: whole milliseconds would make durations all 0.
  const now = millisOf(clock)
  const noteProblem: PumpCore["noteProblem"] = (root, problem) => {
    if (root === undefined) return
    const waiting = requests.get(root.id)
    if (waiting !== undefined) waiting.lastProblem = problem
  }
  const onRootComplete: PumpCore["onRootComplete"] = (root, hook) => {
    const hooks = rootHooks.get(root)
    if (hooks === undefined) rootHooks.set(root, [hook])
    else hooks.push(hook)
  }

  // The built-in listeners (sequence, buffer, todos), once per pump: they keep run state.
  const builtIn = primitiveListeners()
  const gateSet = makeGateSet()
  const endings = makeEndings()
  const liveRoots = new Map<string, RootThread>()
  // Ingress workers (settings.ingress.workers, read at start): one pool for the pump's life,
  // every version's schemas compiled in each of its workers.
  const workerCount = workersFor(organism.settings.ingress)
  const workers = workerCount > 0
    ? yield* Scope.extend(makeXmlWorkers({ workers: workerCount, ...organism.settings.ingress.workerOptions }), scope)
    : undefined

  /** Everything the pump derives from an organism, built and compiled before it is used. */
  const buildVersion = (next: Organism<any>) =>
    Effect.gen(function*() {
      const listeners = withPrimitives(next.listeners as ReadonlyArray<Listener>, builtIn)
      // The framework's own payload types are always known, so an injector gets them typed.
      const routes = yield* Scope.extend(makeRouter(listeners, registry, Object.values(builtinPayloads), next.settings.wire), scope)
      // Agent prompts and usage instructions, rebuilt with every version of the organism.
      const prompts = yield* PromptRegistry.fromListeners(listeners)
      const ingress = yield* Scope.extend(Ingress.make(next.settings.ingress), scope)
      const workerVersion = workers === undefined ? undefined : yield* workers.register(routes, next.settings.ingress)
      const { capacity, gates } = gateSet.gatesFor(routes, next.settings)
      const version: Version = {
        organism: next,
        settings: next.settings,
        listeners,
        routes,
        prompts,
        ingress,
        workerVersion,
        gates,
        gateCapacity: capacity,
        stages: stagesByPoint([...layerStages, ...next.stages]),
        limits: limitsOf(next),
        vocabulary: vocabularyOf(routes)
      }
      return version
    }).pipe(Effect.provideService(XmlEngine, engine))

  const first = yield* buildVersion(organism)
  gateSet.apply(first.gateCapacity)

  const core: PumpCore = {
    registry,
    engine,
    context,
    todos,
    budgets,
    events,
    version: first,
    books: new Books(),
    inbox,
    permits,
    requests,
    stopped: false,
    halting: undefined,
    closing: false,
    now,
    observed: events.active,
    publish: events.publish,
    noteProblem,
    onRootComplete,
    endings,
    branches: makeBranches(),
    liveRoots
  }
  const { books } = core
  const lifecycle = makeLifecycle(core)
  const outbox = makeOutbox(core, lifecycle)

  // Deadlines are checked every 100 ms: handler timeouts are seconds, not milliseconds.
  const wheel = new TimeoutWheel(100, clock.unsafeCurrentTimeMillis())
  const suspended = yield* FiberSet.make<unknown, unknown>()
  // Registered after the FiberSet, so it runs before it: handlers interrupted by shutdown
  // are not reported as failures of the organism.
  yield* Effect.addFinalizer(() => Effect.sync(() => void (core.closing = true)))
  const dispatcher = makeDispatcher(core, lifecycle, outbox, wheel, yield* Effect.runtime<R>(), suspended)
  // Requests are filed with the Approvals service on fibers of the pump's scope.
  const desk = makeApprovalDesk(core, lifecycle, dispatcher, approvals, yield* FiberSet.makeRuntime<never, void, never>())
  yield* Effect.addFinalizer(() => desk.close)
  const delivery = makeDelivery(core, lifecycle, dispatcher, desk)

  registry.unsafeOnComplete((root) => {
    context.unsafeComplete(root.id)
    todos.unsafeCleanup(root.id)
    budgets.unsafeCleanup(root.id)
    const hooks = rootHooks.get(root.id)
    if (hooks !== undefined) {
      rootHooks.delete(root.id)
      // Handlers' hooks (Conversation.onComplete): one that throws must not stop the others,
      // nor the completion being booked.
      for (const hook of hooks) {
        try {
          hook()
        } catch {
          // A cleanup hook's own failure; the conversation has completed all the same.
        }
      }
    }
    liveRoots.delete(root.id)
    if (core.observed()) {
      const { detail, reason } = endings.of(root)
      core.publish(makeEvent(ThreadCompleted, { thread: root.id, time: core.now(), invocations: root.invocations, reason, detail }))
    }
    const waiting = requests.get(root.id)
    if (waiting !== undefined) {
      requests.delete(root.id)
      // The same words an agent hears when a peer leaves it without a reply.
      const reason = waiting.lastProblem === undefined
        ? `${waiting.to} answered nobody`
        : `${waiting.to} ended without a reply: ${waiting.lastProblem}`
      waiting.resolve(Exit.fail(new NoReply({ thread: root.id, reason })))
    }
  })

  // --- fibers ---------------------------------------------------------------------------
  yield* Effect.forkIn(
    Effect.forever(Effect.zipRight(Effect.sleep(Duration.millis(wheel.resolutionMs)), Effect.sync(() => wheel.sweep(core.now())))),
    scope
  )
  // After each chunk, I/O gets its turn once per slice when the host asks for it
  // (IoFairness.ts; internal/IoSlice.ts says why).
  const { sliceMs } = yield* IoFairness
  const ioSlice = sliceMs === undefined ? undefined : makeIoSlice(sliceMs)
  yield* Effect.forkIn(
    workers === undefined
      ? inlineIntake(inbox, delivery, ioSlice)
      : pipelinedIntake(inbox, delivery, workers, () => core.version, ioSlice ?? Effect.void),
    scope
  )

  // --- API ------------------------------------------------------------------------------
  /**
   * Waits for a producer's permit (interruptibly), then — no longer interruptible, so a permit
   * once granted is always given back — runs `use` with it.
   */
  const withPermit = <A, E>(use: () => Effect.Effect<A, E>, maxWait: Duration.DurationInput | undefined): Effect.Effect<A, E | PumpStopped | InboxFull> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend((): Effect.Effect<A, E | PumpStopped | InboxFull> => {
        if (core.stopped) return Effect.fail(new PumpStopped())
        // A free permit is taken on the spot: no fiber races a timer for it.
        if (permits.tryAcquire()) return use()
        const wait = maxWait === undefined ? permits.acquire : waitAtMost(maxWait)
        return Effect.zipRight(restore(wait), Effect.suspend(use))
      })
    )
  const waitAtMost = (maxWait: Duration.DurationInput) => {
    const duration = Duration.decode(maxWait)
    return Effect.timeoutFail(permits.acquire, { duration, onTimeout: () => new InboxFull({ waitedMs: Duration.toMillis(duration) }) })
  }

  const startConversation = (to: string, payload: PayloadValue, options: Pump.InjectOptions | undefined) =>
    withPermit((): Effect.Effect<ThreadNode, InjectError> => {
      // Encoded once the permit is held, in the wire form of the version that will judge it.
      const encoded = encodePayload(payload, core.version.settings.wire)
      if (Either.isLeft(encoded)) {
        permits.release()
        return Effect.fail(new PayloadNotEncodable({ reason: encoded.left }))
      }
      const from = options?.from ?? core.version.settings.injector
      const node = registry.unsafeStartRoot(from, to)
      liveRoots.set(node.root.id, node.root)
      if (core.observed()) core.publish(makeEvent(ThreadCreated, { thread: node.root.id, time: core.now(), injector: from, to }))
      // The caller holds the permit while the message is written, so it cannot be released
      // by a message that settles at once.
      const permit: Permit = { pending: 1 }
      lifecycle.emit(from, to, node, encoded.right, undefined, false, permit, undefined)
      lifecycle.permitDone(permit)
      return Effect.succeed(node)
    }, options?.maxWait)

  const inject: Pump.Service["inject"] = (to, payload, options) =>
    Effect.map(startConversation(to, payload, options), (node) => node.root.id)

  const request: Pump.Service["request"] = (to, payload, options) =>
    Effect.gen(function*() {
      const deferred = yield* Deferred.make<unknown, RequestError>()
      const node = yield* startConversation(to, payload, options)
      const id = node.root.id
      if (node.root.completed) return yield* new NoReply({ thread: id, reason: "the conversation ended" })
      requests.set(id, { resolve: (exit) => Deferred.unsafeDone(deferred, exit), lastProblem: undefined, to })
      const wait = Deferred.await(deferred)
      if (options?.timeout === undefined) return yield* wait
      return yield* Effect.timeoutFail(wait, {
        duration: options.timeout,
        onTimeout: () => {
          requests.delete(id)
          return new RequestTimedOut({ thread: id })
        }
      })
    })

  const decoder = new TextDecoder()
  const injectRaw: Pump.Service["injectRaw"] = (input, options) =>
    withPermit(() => {
      const permit: Permit = { pending: 1 }
      const hop = lifecycle.open(input, undefined, permit)
      if (core.observed()) {
        const text = typeof input === "string" ? input : decoder.decode(input)
        core.publish(makeEvent(RawReceived, { thread: null, time: core.now(), text: text.slice(0, 65536), size: input.length }))
      }
      inbox.unsafeOffer(hop)
      lifecycle.permitDone(permit)
      return Effect.void
    }, options?.maxWait)

  /**
   * Makes a new version the running one, in one step between two chunks: the pump's parts
   * read it from now on, and the registries take its limits. The budgets are validated
   * first (they are the one part that can refuse): a refused reload changes nothing.
   */
  const swap = (next: Version): Either.Either<void, ReloadRefused> => {
    const previous = core.version
    const refused = budgets.unsafeReconfigure(next.limits.budgets)
    if (Either.isLeft(refused)) return Either.left(new ReloadRefused({ key: refused.left.key, reason: refused.left.message }))
    core.version = next
    gateSet.apply(next.gateCapacity)
    context.unsafeReconfigure(next.limits.context)
    if (previous.settings.inboxCapacity !== next.settings.inboxCapacity) permits.resize(next.settings.inboxCapacity)
    // A higher global limit lets waiting jobs start now.
    dispatcher.promote()
    return Either.void
  }

  const reload: Pump.Service["reload"] = (next) =>
    Effect.gen(function*() {
      // Build first: a version whose schemas do not compile changes nothing.
      const version = yield* buildVersion(next)
      const diff = diffListeners(core.version.organism.listeners as ReadonlyArray<Listener>, next.listeners as ReadonlyArray<Listener>)
      const swapped = swap(version)
      if (Either.isLeft(swapped)) {
        if (core.observed()) {
          core.publish(
            makeEvent(ReloadEvent, {
              thread: null,
              time: core.now(),
              outcome: "rejected",
              ...diff,
              problems: [`${swapped.left.key}: ${swapped.left.reason}`]
            })
          )
        }
        return yield* swapped.left
      }
      if (core.observed()) {
        core.publish(makeEvent(ReloadEvent, { thread: null, time: core.now(), outcome: "applied", ...diff, problems: [] }))
      }
      return diff
    })

  /**
   * After a drain's deadline: whatever is still in flight ends now. Hops not yet judged are
   * stopped by the `shutdown` guard, suspended handlers are interrupted (their callers hear
   * it), jobs not yet started never start — and the books still add up.
   */
  const halt = (reason: string) =>
    Effect.suspend(() => {
      core.halting = reason
      dispatcher.cancelAll(reason)
      return FiberSet.clear(suspended)
    }).pipe(Effect.zipRight(books.awaitIdle))

  const cancel: Pump.Service["cancel"] = (thread, options) =>
    Effect.sync(() => {
      // A thread id of the conversation, or the start of its root id (as the console shows it).
      let root = registry.unsafeLookup(thread)?.root
      if (root === undefined && thread.length >= 4) {
        const matches = [...liveRoots.values()].filter((r) => r.id.startsWith(thread))
        if (matches.length === 1) root = matches[0]
      }
      if (root === undefined || root.completed) return false
      endings.note(root, "cancelled", `cancelled by ${options?.by ?? core.version.settings.injector}`)
      dispatcher.cancel(root)
      desk.cancel(root)
      return true
    })

  const service: Pump.Service = {
    get organism() {
      return core.version.organism
    },
    prompts: () => core.version.prompts,
    reload,
    cancel,
    inject,
    injectRaw,
    request,
    events: events.stream,
    subscribe: events.subscribe,
    awaitIdle: books.awaitIdle,
    approvals,
    counters: () => books.snapshot(),
    deadLetters: () => [...books.deadLetters],
    threads: registry.unsafeStats,
    drain: (deadline) =>
      Effect.suspend(() => {
        core.stopped = true
        desk.drain()
        return books.awaitIdle.pipe(
          Effect.as(true),
          Effect.timeoutTo({ duration: deadline, onSuccess: (b) => b, onTimeout: () => false }),
          Effect.flatMap((finished): Effect.Effect<Pump.Drained> => {
            if (finished) return Effect.succeed({ finished, interrupted: 0 })
            const interrupted = books.jobsOpen
            return Effect.as(halt(`not finished within ${Duration.format(Duration.decode(deadline))}`), { finished, interrupted })
          })
        )
      })
  }

  // Boot: `system.boot` hears Boot on its own root thread, then the configured messages go out.
  const boot = new Boot({
    organismName: core.version.settings.name,
    timestamp: new Date(core.now()).toISOString(),
    listenerCount: core.version.routes.listeners.size
  }, true)
  if (core.version.routes.listenerNamed("system.boot") !== undefined) yield* inject("system.boot", boot, { from: SYSTEM })
  for (const message of organism.boot) yield* inject(message.to, message.payload)
  return service
})

export class Pump extends Context.Tag("xml-organism/Pump")<Pump, Pump.Service>() {
  /**
   * Builds and starts a pump for an organism; it runs until the Scope closes. Handlers run
   * with the context this Effect runs in, so their requirements `R` come from here — all but
   * the Conversation, which the pump provides for each job.
   */
  static readonly make: <R>(
    organism: Organism<R>
  ) => Effect.Effect<
    Pump.Service,
    SchemaCompileError | RouteTableError | PromptError | InjectError,
    Exclude<R, Conversation> | PumpServices | Scope.Scope
  > = make as any

  static readonly layer = <R>(organism: Organism<R>) => Layer.scoped(Pump, Pump.make(organism))

  /** The embedded defaults the pump needs: XML engine, in-memory registries, events. */
  static readonly layerServices: Layer.Layer<PumpServices> = Layer.mergeAll(
    XmlEngine.layer,
    ThreadRegistry.layerMemory,
    Events.layer,
    ContextBuffer.layerMemory(),
    TodoRegistry.layerMemory(),
    BudgetRegistry.layerMemory()
  )

  /** The embedded defaults, configured from an organism's settings (budgets, history limits). */
  static readonly layerServicesFor = (organism: Organism<any>): Layer.Layer<PumpServices> =>
    Layer.mergeAll(
      XmlEngine.layer,
      ThreadRegistry.layerMemory,
      Events.layer,
      ContextBuffer.layerMemory(organism.settings.context),
      TodoRegistry.layerMemory(),
      BudgetRegistry.layerMemory(BudgetRegistry.configFor(organism))
    )
}
