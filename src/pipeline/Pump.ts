/**
 * The message pump: bounded inbox → ingress stages → route → dispatch → the pump writes the
 * reply envelopes → re-inject. Every message — injected, replied, or a SystemError the pump
 * itself sends — takes the same path, and ends in exactly one outcome: delivered, rejected,
 * or stopped by a guard. Counters for the three always add up to what was injected.
 *
 * Shape of the machinery (and why):
 * - The inbox is one unbounded queue read as a Stream in chunks; each chunk runs through the
 *   ingress stages synchronously, stage by stage (they are libxml2 calls — no fiber per stage
 *   or message), then through delivery (pump/Delivery.ts).
 * - External producers (inject, injectRaw) hold a permit from a bounded pool until their
 *   message is fully handled: that is the backpressure. Replies never wait for a permit, so
 *   a handler can never deadlock against a full inbox.
 * - Handlers run inline while they complete synchronously, under counters and FIFO gates for
 *   the concurrency limits (pump/Dispatcher.ts); the outbox writes every envelope
 *   (pump/Outbox.ts); the platform's own listeners are bound in pump/BuiltIns.ts.
 *
 * This file wires the parts around a shared core (pump/Core.ts) and exposes the API.
 */
import { Context, Deferred, Duration, Effect, Either, Exit, FiberSet, Layer, Queue, Scope, Stream } from "effect"
import { builtinPayloads } from "../domain/BuiltinPayloads.js"
import type { ThreadId } from "../domain/Ids.js"
import type { Listener } from "../domain/Listener.js"
import type { Organism } from "../domain/Organism.js"
import { type PumpEvent, RawReceived, ReloadEvent, ThreadCompleted, ThreadCreated } from "../domain/PumpEvent.js"
import {
  type InjectError,
  NoReply,
  PayloadNotEncodable,
  PumpStopped,
  type RequestError,
  RequestTimedOut
} from "../domain/PumpError.js"
import type { PayloadValue } from "../domain/Reply.js"
import { Boot } from "../domain/SystemPayloads.js"
import { BudgetRegistry } from "../services/BudgetRegistry.js"
import { ContextBuffer } from "../services/ContextBuffer.js"
import { Events } from "../services/Events.js"
import {
  type DuplicateListener,
  type PromptConfigError,
  PromptRegistry,
  type PromptRegistryFrozen
} from "../services/PromptRegistry.js"
import { ThreadRegistry } from "../services/ThreadRegistry.js"
import { TodoRegistry } from "../services/TodoRegistry.js"
import { type SchemaCompileError, XmlEngine } from "../services/XmlEngine.js"
import { Ingress } from "./Ingress.js"
import { Permits } from "./internal/Permits.js"
import { TimeoutWheel } from "./internal/TimeoutWheel.js"
import { diffListeners, type ListenerDiff } from "./ListenerDiff.js"
import { makeBuiltIns } from "./pump/BuiltIns.js"
import {
  Accounting,
  type Counters as CoreCounters,
  type DeadLetter as CoreDeadLetter,
  type Encoded,
  type InboxItem,
  type Permit,
  type PumpCore,
  SYSTEM,
  type Waiting
} from "./pump/Core.js"
import { makeDelivery } from "./pump/Delivery.js"
import { makeDispatcher } from "./pump/Dispatcher.js"
import { makeOutbox } from "./pump/Outbox.js"
import { makeRouter, type RouteTableError, type Router } from "./Router.js"

export { SYSTEM } from "./pump/Core.js"

/** The services a pump needs besides its handlers' own requirements. */
export type PumpServices = XmlEngine | ThreadRegistry | Events | ContextBuffer | TodoRegistry | BudgetRegistry

export type PromptError = PromptConfigError | DuplicateListener | PromptRegistryFrozen

export declare namespace Pump {
  export type Counters = CoreCounters
  export type DeadLetter = CoreDeadLetter

  export interface InjectOptions {
    /** The injector's name (default: the organism's `injector`, "console"). */
    readonly from?: string
  }

  export interface RequestOptions extends InjectOptions {
    readonly timeout?: Duration.DurationInput
  }

  export interface Service {
    readonly organism: Organism<any>
    /** Sends a payload to a listener on a new root thread; returns that thread's id. */
    readonly inject: (to: string, payload: PayloadValue, options?: InjectOptions) => Effect.Effect<ThreadId, InjectError>
    /** Feeds raw envelope bytes from outside (untrusted: every check applies). */
    readonly injectRaw: (bytes: Uint8Array | string) => Effect.Effect<void, PumpStopped>
    /** Injects and waits for the first payload that comes back to the injector. */
    readonly request: (to: string, payload: PayloadValue, options?: RequestOptions) => Effect.Effect<unknown, RequestError>
    /** Every pump event from the moment the stream is run. */
    readonly events: Stream.Stream<PumpEvent>
    /** Waits until the inbox is empty and no handler is running. */
    readonly awaitIdle: Effect.Effect<void>
    readonly counters: () => Counters
    readonly deadLetters: () => ReadonlyArray<DeadLetter>
    readonly threads: () => { readonly roots: number; readonly nodes: number }
    /**
     * Stops taking external messages and waits for in-flight work to finish, up to
     * `deadline`; true when everything finished in time.
     */
    readonly drain: (deadline: Duration.DurationInput) => Effect.Effect<boolean>
    /**
     * Hot reload: swaps in another version of the organism (listeners, settings). Messages
     * already dispatched finish on the version they started with; the next message routes on
     * the new one. Publishes a ReloadEvent; returns what was added, removed and updated.
     */
    readonly reload: (organism: Organism<any>) => Effect.Effect<ListenerDiff, SchemaCompileError | RouteTableError | PromptError>
    /** The agents' prompts and usage instructions of the running version. */
    readonly prompts: () => PromptRegistry.Service
  }
}

const make = Effect.fn("Pump.make")(function*<R>(organism: Organism<R>) {
  const registry = yield* ThreadRegistry
  const engine = yield* XmlEngine
  const events = yield* Events
  const clock = yield* Effect.clock
  const scope = yield* Effect.scope
  const inbox = yield* Effect.acquireRelease(Queue.unbounded<InboxItem>(), Queue.shutdown)
  const permits = new Permits(organism.settings.inboxCapacity)
  const rootHooks = new Map<string, Array<() => void>>()
  const requests = new Map<string, Waiting>()

  // Filled in below: the router, prompts and listeners depend on the built-ins, which need
  // the core. Nothing reads them before the first message.
  const core: PumpCore = {
    registry,
    engine,
    context: yield* ContextBuffer,
    todos: yield* TodoRegistry,
    budgets: yield* BudgetRegistry,
    events,
    settings: organism.settings,
    router: undefined as unknown as Router,
    prompts: undefined as unknown as PromptRegistry.Service,
    ingress: yield* Ingress.make(organism.settings.ingress),
    listeners: [],
    counts: new Accounting(),
    inbox,
    permits,
    requests,
    stopped: false,
    closing: false,
    // A hop takes tens of microseconds: whole milliseconds would make durations all 0.
    now: () => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000,
    observed: events.active,
    publish: events.publish,
    permitDone: (permit) => {
      if (permit !== undefined && --permit.pending === 0) permits.release()
    },
    noteProblem: (root, problem) => {
      if (root === undefined) return
      const waiting = requests.get(root.id)
      if (waiting !== undefined) waiting.lastProblem = problem
    },
    onRootComplete: (root, hook) => {
      const hooks = rootHooks.get(root)
      if (hooks === undefined) rootHooks.set(root, [hook])
      else hooks.push(hook)
    }
  }
  const { counts } = core

  const outbox = makeOutbox(core)
  const builtIns = makeBuiltIns(core, outbox)
  // The framework's own payload types are always known, so an injector gets them typed.
  const knownTypes = Object.values(builtinPayloads)
  core.listeners = builtIns.prepare(organism.listeners as ReadonlyArray<Listener>)
  core.router = yield* makeRouter(core.listeners, registry, knownTypes)
  // Agent prompts and usage instructions, rebuilt with every version of the organism.
  core.prompts = yield* PromptRegistry.fromListeners(core.listeners)
  let current: Organism<R> = organism

  // Deadlines are checked every 100 ms: handler timeouts are seconds, not milliseconds.
  const wheel = new TimeoutWheel(100, clock.unsafeCurrentTimeMillis())
  const suspended = yield* FiberSet.make<unknown, unknown>()
  // Registered after the FiberSet, so it runs before it: handlers interrupted by shutdown
  // are not reported as failures of the organism.
  yield* Effect.addFinalizer(() => Effect.sync(() => void (core.closing = true)))
  const dispatcher = makeDispatcher(core, outbox, wheel, yield* Effect.runtime<R>(), suspended)
  dispatcher.buildGates()
  const delivery = makeDelivery(core, outbox, dispatcher)

  registry.onComplete((root) => {
    core.context.complete(root.id)
    core.todos.cleanup(root.id)
    core.budgets.cleanup(root.id)
    const hooks = rootHooks.get(root.id)
    if (hooks !== undefined) {
      rootHooks.delete(root.id)
      for (const hook of hooks) hook()
    }
    if (core.observed()) core.publish(new ThreadCompleted({ thread: root.id, time: core.now(), invocations: root.invocations }, true))
    const waiting = requests.get(root.id)
    if (waiting !== undefined) {
      requests.delete(root.id)
      waiting.resolve(Exit.fail(new NoReply({ thread: root.id, reason: waiting.lastProblem ?? "the conversation ended" })))
    }
  })

  // --- fibers ---------------------------------------------------------------------------
  yield* Effect.forkIn(
    Effect.forever(Effect.zipRight(Effect.sleep(Duration.millis(wheel.resolutionMs)), Effect.sync(() => wheel.sweep(core.now())))),
    scope
  )
  yield* Effect.forkIn(
    Stream.fromQueue(inbox, { maxChunkSize: 1024 }).pipe(
      Stream.runForEachChunk((chunk) => Effect.sync(() => delivery.processChunk(chunk)))
    ),
    scope
  )

  // --- API ------------------------------------------------------------------------------
  const startConversation = (to: string, payload: PayloadValue, options: Pump.InjectOptions | undefined) =>
    Effect.suspend((): Effect.Effect<Encoded, InjectError> => {
      if (core.stopped) return Effect.fail(new PumpStopped())
      const encoded = outbox.encodePayload(payload)
      if (Either.isLeft(encoded)) return Effect.fail(new PayloadNotEncodable({ reason: encoded.left }))
      return Effect.as(permits.acquire, encoded.right)
    }).pipe(
      Effect.map((encoded) => {
        const from = options?.from ?? core.settings.injector
        const node = registry.startRoot(from, to)
        if (core.observed()) core.publish(new ThreadCreated({ thread: node.root.id, time: core.now(), injector: from, to }, true))
        const permit: Permit = { pending: 1 }
        outbox.send(from, to, node, encoded, undefined, false, permit)
        core.permitDone(permit)
        return node
      })
    )

  const inject: Pump.Service["inject"] = (to, payload, options) =>
    Effect.map(startConversation(to, payload, options), (node) => node.root.id)

  const request: Pump.Service["request"] = (to, payload, options) =>
    Effect.gen(function*() {
      const deferred = yield* Deferred.make<unknown, RequestError>()
      const node = yield* startConversation(to, payload, options)
      const id = node.root.id
      if (node.root.completed) return yield* new NoReply({ thread: id, reason: "the conversation ended" })
      requests.set(id, { resolve: (exit) => Deferred.unsafeDone(deferred, exit), lastProblem: undefined })
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
  const injectRaw: Pump.Service["injectRaw"] = (input) =>
    Effect.suspend(() => (core.stopped ? Effect.fail(new PumpStopped()) : permits.acquire)).pipe(
      Effect.map(() => {
        counts.injected++
        if (core.observed()) {
          const text = typeof input === "string" ? input : decoder.decode(input)
          core.publish(new RawReceived({ thread: null, time: core.now(), text: text.slice(0, 65536), size: input.length }, true))
        }
        inbox.unsafeOffer({ input, origin: undefined, permit: { pending: 1 } })
      })
    )

  const reload: Pump.Service["reload"] = (next) =>
    Effect.gen(function*() {
      // Compile first: a version whose schemas do not compile changes nothing.
      const listeners = builtIns.prepare(next.listeners as ReadonlyArray<Listener>)
      const router = yield* Scope.extend(makeRouter(listeners, registry, knownTypes), scope)
      const prompts = yield* PromptRegistry.fromListeners(listeners)
      const ingress = yield* Scope.extend(Ingress.make(next.settings.ingress), scope)
      const diff = diffListeners(current.listeners as ReadonlyArray<Listener>, next.listeners as ReadonlyArray<Listener>)
      // One synchronous swap between two chunks: a message is routed entirely by the old
      // tables or entirely by the new ones; jobs already dispatched keep their listener.
      current = next as Organism<R>
      core.settings = next.settings
      core.listeners = listeners
      core.router = router
      core.prompts = prompts
      core.ingress = ingress
      builtIns.resetVocabularies()
      dispatcher.buildGates()
      dispatcher.promote()
      if (core.observed()) {
        core.publish(new ReloadEvent({ thread: null, time: core.now(), outcome: "applied", ...diff, problems: [] }, true))
      }
      return diff
    }).pipe(Effect.provideService(XmlEngine, engine))

  const service: Pump.Service = {
    get organism() {
      return current
    },
    prompts: () => core.prompts,
    reload,
    inject,
    injectRaw,
    request,
    events: events.stream,
    awaitIdle: counts.awaitIdle,
    counters: () => counts.snapshot(),
    deadLetters: () => [...counts.deadLetters],
    threads: registry.stats,
    drain: (deadline) =>
      Effect.suspend(() => {
        core.stopped = true
        return counts.awaitIdle.pipe(Effect.as(true), Effect.timeoutTo({ duration: deadline, onSuccess: (b) => b, onTimeout: () => false }))
      })
  }

  // Boot: `system.boot` hears Boot on its own root thread, then the configured messages go out.
  const boot = new Boot({
    organismName: core.settings.name,
    timestamp: new Date(core.now()).toISOString(),
    listenerCount: core.router.listeners.size
  }, true)
  if (core.router.listenerNamed("system.boot") !== undefined) yield* inject("system.boot", boot, { from: SYSTEM })
  for (const message of organism.boot) yield* inject(message.to, message.payload)
  return service
})

export class Pump extends Context.Tag("xml-organism/Pump")<Pump, Pump.Service>() {
  /**
   * Builds and starts a pump for an organism; it runs until the Scope closes. Handlers run
   * with the context this Effect runs in, so their requirements `R` come from here.
   */
  static readonly make: <R>(
    organism: Organism<R>
  ) => Effect.Effect<
    Pump.Service,
    SchemaCompileError | RouteTableError | PromptError | InjectError,
    R | PumpServices | Scope.Scope
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
      BudgetRegistry.layerMemory({
        maxTokensPerThread: organism.settings.maxTokensPerThread,
        perListener: Object.fromEntries(
          organism.listeners.flatMap((l) => (l.maxTokensPerThread === undefined ? [] : [[l.name, l.maxTokensPerThread]]))
        )
      })
    )
}
