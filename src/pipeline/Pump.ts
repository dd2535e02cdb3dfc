/**
 * The message pump: bounded inbox → ingress stages → route → dispatch → the pump writes the
 * reply envelopes → re-inject. Every message — injected, replied, or a SystemError the pump
 * itself sends — takes the same path, and ends in exactly one outcome: delivered, rejected,
 * or stopped by a guard. Counters for the three always add up to what was injected.
 *
 * Shape of the machinery (and why):
 * - The inbox is one unbounded queue read as a Stream in chunks; each chunk runs through the
 *   ingress stages synchronously (they are libxml2 calls — no fiber per stage or message).
 * - External producers (inject, injectRaw) hold a permit from a bounded pool until their
 *   message is fully handled: that is the backpressure. Replies never wait for a permit, so
 *   a handler can never deadlock against a full inbox.
 * - Dispatch runs a handler where the message is routed, on the pump's own fiber, as long as
 *   it completes synchronously (most handlers do: they compute a reply). Only a handler that
 *   suspends — I/O, a model call, a sleep — becomes a fiber of its own. Handing every job to
 *   a worker fiber instead costs two scheduler hops per message, more than the libxml2 work.
 * - The global handler limit and per-listener / per-category gates are counters with FIFO
 *   queues: a job that cannot start waits outside, never occupying a slot it cannot use.
 * - Deadlines of suspended handlers come from a timer wheel; a timed-out fiber is
 *   interrupted and its job settled with a SystemError to the caller.
 */
import {
  Cause,
  Chunk,
  Context,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  type Fiber,
  FiberId,
  FiberSet,
  Layer,
  Option,
  Queue,
  Runtime,
  Scope,
  Stream
} from "effect"
import { builtinPayloads } from "../config/builtins.js"
import { writeEnvelope } from "../domain/Envelope.js"
import type { ThreadId } from "../domain/Ids.js"
import type { IngressError } from "../domain/IngressError.js"
import type { HandlerMetadata, Listener } from "../domain/Listener.js"
import type { Organism } from "../domain/Organism.js"
import { specOf, typeOfValue } from "../domain/Payload.js"
import {
  AgentState,
  GuardTripped,
  HandlerCompleted,
  HandlerFailed,
  MessageReceived,
  MessageRejected,
  MessageSent,
  type PumpEvent,
  RawReceived,
  ReloadEvent,
  ThreadCompleted,
  ThreadCreated
} from "../domain/PumpEvent.js"
import {
  type InjectError,
  NoReply,
  PayloadNotEncodable,
  PumpStopped,
  RequestFailed,
  type RequestError,
  RequestTimedOut
} from "../domain/PumpError.js"
import { isReply, type PayloadValue, RawPayload, type Reply } from "../domain/Reply.js"
import { Boot, SystemError, SystemErrors } from "../domain/SystemPayloads.js"
import { BudgetRegistry } from "../services/BudgetRegistry.js"
import { ContextBuffer } from "../services/ContextBuffer.js"
import { Events } from "../services/Events.js"
import {
  type DuplicateListener,
  type PromptConfigError,
  PromptRegistry,
  type PromptRegistryFrozen
} from "../services/PromptRegistry.js"
import { TodoRegistry } from "../services/TodoRegistry.js"
import { type RootThread, type ThreadNode, ThreadRegistry } from "../services/ThreadRegistry.js"
import { type SchemaCompileError, XmlEngine } from "../services/XmlEngine.js"
import { Ingress, type IngressOutcome, type Rejected } from "./Ingress.js"
import { diffListeners, type ListenerDiff } from "./ListenerDiff.js"
import { enterAll, Gate, leaveAll } from "./internal/Gate.js"
import { Permits } from "./internal/Permits.js"
import { type Timer, TimeoutWheel } from "./internal/TimeoutWheel.js"
import type { PrimitiveContext } from "./primitives/PrimitiveContext.js"
import { primitiveListeners, withPrimitives } from "./primitives/withPrimitives.js"
import { type AgentSupport, llmAgentHandlers } from "./agents/LlmAgent.js"
import type { OutputVocabulary } from "../llm/AgentOutput.js"
import { type ListenerEntry, makeRouter, type RouteTableError } from "./Router.js"
import type { RouteTarget } from "./stages/validatePayload.js"

/** The services a pump needs besides its handlers' own requirements. */
export type PumpServices = XmlEngine | ThreadRegistry | Events | ContextBuffer | TodoRegistry | BudgetRegistry

export type PromptError = PromptConfigError | DuplicateListener | PromptRegistryFrozen

/** The sender name of messages the pump writes on its own behalf. */
export const SYSTEM = "system"

export declare namespace Pump {
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

interface Origin {
  /** The node this message travels on (the receiver's end of the chain). */
  readonly node: ThreadNode
  /** Where a bounce goes if the message is rejected: the sending listener's node. */
  readonly senderNode: ThreadNode | undefined
  /** Written by the pump for itself (SystemErrors): never bounced, not a step. */
  readonly system: boolean
}

interface InboxItem {
  /** Raw bytes from outside, or the envelope text the pump wrote. */
  readonly input: Uint8Array | string
  /** Present when the pump wrote the envelope (trusted routing facts). */
  readonly origin: Origin | undefined
  readonly permit: Permit | undefined
}

/** An external producer's permit, returned when its message and its deliveries are done. */
interface Permit {
  pending: number
}

interface Job {
  readonly entry: ListenerEntry
  readonly payload: unknown
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

const TEXT_LIMIT = 4096
const decoder = new TextDecoder()

const clip = (s: string) => (s.length > TEXT_LIMIT ? `${s.slice(0, TEXT_LIMIT)}…` : s)

const payloadXmlOf = (tag: string, inner: string) => `<${tag}>${inner}</${tag}>`

const make = Effect.fn("Pump.make")(function*<R>(organism: Organism<R>) {
  // Replaced as a whole by a hot reload (`reload`); in-flight jobs keep what they started with.
  let settings = organism.settings
  const registry = yield* ThreadRegistry
  const engine = yield* XmlEngine
  const context = yield* ContextBuffer
  const todos = yield* TodoRegistry
  const budgets = yield* BudgetRegistry
  const events = yield* Events
  const clock = yield* Effect.clock
  const scope = yield* Effect.scope
  let ingress = yield* Ingress.make(settings.ingress)

  // The orchestration primitives every organism has (unless it defines its own under the
  // same names). Their context reaches pump internals defined further down; it is only
  // called once messages flow.
  const rootHooks = new Map<string, Array<() => void>>()
  const primitives: PrimitiveContext = {
    onBranchEnd: (thread, hook) => {
      const node = registry.lookup(thread)
      if (node !== undefined) registry.onBranchEnd(node, hook)
    },
    reply: (listener, thread, reply) => {
      const node = registry.lookup(thread)
      const entry = router.listenerNamed(listener)
      if (node !== undefined && entry !== undefined) replyAs(entry, node, reply)
    },
    xmlOf: (payload) => {
      const encoded = encodePayload(payload as PayloadValue)
      return Either.isRight(encoded) ? payloadXmlOf(encoded.right.tag, encoded.right.inner) : String(payload)
    },
    onRootComplete: (root, hook) => {
      const hooks = rootHooks.get(root)
      if (hooks === undefined) rootHooks.set(root, [hook])
      else hooks.push(hook)
    },
    rootOf: (thread) => registry.lookup(thread)?.root.id,
    callerThread: (thread) => registry.lookup(thread)?.parent?.id
  }
  const builtIn = primitiveListeners(primitives, todos)

  // LLM agents get their handler here: it needs the pump's history, prompts and routes.
  let vocabularies = new Map<string, OutputVocabulary>()
  const support: AgentSupport = {
    engine,
    context,
    prompts: () => prompts,
    vocabulary: (agent) => {
      const key = agent.toLowerCase()
      let v = vocabularies.get(key)
      if (v === undefined) {
        const peersByTag = new Map<string, Array<string>>()
        const peers: Array<string> = []
        for (const name of router.listenerNamed(agent)?.listener.peers ?? []) {
          const peer = router.listenerNamed(name)
          if (peer === undefined) continue
          peers.push(peer.listener.name)
          for (const tag of peer.types.keys()) peersByTag.set(tag, [...(peersByTag.get(tag) ?? []), peer.listener.name])
        }
        vocabularies.set(key, v = { peers, peersByTag })
      }
      return v
    },
    notify: (agent, thread, payload) => {
      const node = registry.lookup(thread)
      const encoded = encodePayload(payload)
      if (node !== undefined && Either.isRight(encoded)) send(SYSTEM, agent, node, encoded.right, undefined, true)
    },
    guard: (agent, thread, guard, detail) => {
      const node = registry.lookup(thread)
      noteProblem(node?.root, `guard ${guard}: ${detail}`)
      if (observed()) {
        publish(new GuardTripped({ thread, root: node?.root.id ?? null, time: now(), guard, listener: agent, detail }, true))
      }
    },
    onRootComplete: primitives.onRootComplete
  }
  const prepare = (listeners: ReadonlyArray<Listener>): ReadonlyArray<Listener> =>
    withPrimitives(listeners, builtIn).map((l) => {
      if (l.llm === undefined) return l
      const { handler, onSystem } = llmAgentHandlers(l, l.llm, support)
      return { ...l, handler, onSystem }
    })

  let current: Organism<R> = organism
  const initial = prepare(organism.listeners as ReadonlyArray<Listener>)
  // The framework's own payload types are always known, so an injector gets them typed.
  const knownTypes = Object.values(builtinPayloads)
  let router = yield* makeRouter(initial, registry, knownTypes)
  // Agent prompts and usage instructions, rebuilt with every version of the organism.
  let prompts = yield* PromptRegistry.fromListeners(initial)
  const inbox = yield* Effect.acquireRelease(Queue.unbounded<InboxItem>(), Queue.shutdown)
  const permits = new Permits(settings.inboxCapacity)
  // Deadlines are checked every 100 ms: handler timeouts are seconds, not milliseconds.
  const wheel = new TimeoutWheel(100, clock.unsafeCurrentTimeMillis())

  // --- accounting -------------------------------------------------------------------
  let injected = 0
  let delivered = 0
  let rejected = 0
  let guardStopped = 0
  let invocations = 0
  let running = 0
  let jobsOpen = 0
  const rejectedBy: Record<string, number> = {}
  const deadLetters: Array<Pump.DeadLetter> = []
  let idleWaiters: Array<() => void> = []
  let stopped = false

  const inFlight = () => injected - delivered - rejected - guardStopped + jobsOpen
  const checkIdle = () => {
    if (idleWaiters.length > 0 && inFlight() === 0) {
      const waiters = idleWaiters
      idleWaiters = []
      for (const w of waiters) w()
    }
  }

  // Call sites test `events.active()` before building an event: with nobody listening,
  // no event object (nor a closure to build one) is allocated per message.
  const publish = (event: PumpEvent) => events.publish(event)
  const observed = events.active
  // Epoch milliseconds with a sub-millisecond fraction: a hop takes tens of microseconds, so
  // whole milliseconds would make event times and handler durations (journal traces) all 0.
  const now = () => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000

  const permitDone = (permit: Permit | undefined) => {
    if (permit !== undefined && --permit.pending === 0) permits.release()
  }

  // --- requests waiting for a reply at the injector ---------------------------------
  interface Waiting {
    readonly resolve: (exit: Exit.Exit<unknown, RequestError>) => void
    lastProblem: string | undefined
  }
  const requests = new Map<string, Waiting>()

  registry.onComplete((root) => {
    context.complete(root.id)
    todos.cleanup(root.id)
    budgets.cleanup(root.id)
    const hooks = rootHooks.get(root.id)
    if (hooks !== undefined) {
      rootHooks.delete(root.id)
      for (const hook of hooks) hook()
    }
    if (observed()) publish(new ThreadCompleted({ thread: root.id, time: now(), invocations: root.invocations }, true))
    const waiting = requests.get(root.id)
    if (waiting !== undefined) {
      requests.delete(root.id)
      waiting.resolve(Exit.fail(new NoReply({ thread: root.id, reason: waiting.lastProblem ?? "the conversation ended" })))
    }
  })

  const noteProblem = (root: RootThread | undefined, problem: string) => {
    if (root === undefined) return
    const waiting = requests.get(root.id)
    if (waiting !== undefined) waiting.lastProblem = problem
  }

  // --- writing envelopes --------------------------------------------------------------
  interface Encoded {
    readonly tag: string
    readonly inner: string
  }

  /** Encodes a payload value; Left with a readable reason when it cannot be written. */
  const encodePayload = (value: PayloadValue): Either.Either<Encoded, string> => {
    if (value instanceof RawPayload) return Either.right({ tag: value.tag, inner: value.inner })
    const type = typeOfValue(value)
    if (type === undefined) {
      return Either.left(`${String((value as object)?.constructor?.name ?? value)} is not a payload (declare it with Payload.Class)`)
    }
    const spec = specOf(type)
    router.learn(type)
    try {
      return Either.right({ tag: spec.tag, inner: spec.encodeInner(value) })
    } catch (e) {
      return Either.left(e instanceof Error ? e.message : String(e))
    }
  }

  /** Writes an envelope and puts it in the inbox; the root is held until it settles. */
  const send = (
    from: string,
    to: string,
    node: ThreadNode,
    payload: Encoded,
    senderNode: ThreadNode | undefined,
    system: boolean,
    permit?: Permit,
    job?: Job
  ) => {
    const xml = writeEnvelope({ from, to, thread: node.id, payloadTag: payload.tag, payloadInner: payload.inner })
    registry.retain(node)
    injected++
    if (permit !== undefined) permit.pending++
    if (observed()) {
      job?.replies?.push(payload.tag)
      publish(
        new MessageSent({
          thread: node.id,
          root: node.root.id,
          parent: node.parent?.id ?? null,
          time: now(),
          from,
          to,
          payloadType: payload.tag,
          payload: payloadXmlOf(payload.tag, payload.inner),
          origin: system ? "system" : job === undefined ? "injected" : "reply",
          envelope: xml
        }, true)
      )
    }
    inbox.unsafeOffer({ input: xml, origin: { node, senderNode, system }, permit })
  }

  const systemErrorPayload = (error: SystemError): Encoded => ({ tag: "SystemError", inner: specOf(SystemError).encodeInner(error) })

  /** A SystemError from the pump to `to` on `node` (never bounced if it fails itself). */
  const sendSystemError = (to: string, node: ThreadNode, error: SystemError) =>
    send(SYSTEM, to, node, systemErrorPayload(error), undefined, true)

  // --- outcomes -----------------------------------------------------------------------
  const recordRejection = (
    stage: string,
    kind: string,
    reason: string,
    diagnostics: ReadonlyArray<string>,
    seen: { from?: string | undefined; to?: string | undefined; thread?: string | undefined; payloadType?: string | undefined },
    text: string,
    rootId: string | null
  ) => {
    rejected++
    const key = `${stage}/${kind}`
    rejectedBy[key] = (rejectedBy[key] ?? 0) + 1
    const letter: Pump.DeadLetter = {
      time: now(),
      stage,
      kind,
      reason,
      diagnostics,
      from: seen.from ?? null,
      to: seen.to ?? null,
      thread: seen.thread ?? null,
      payloadType: seen.payloadType ?? null,
      text: clip(text)
    }
    deadLetters.push(letter)
    if (deadLetters.length > settings.deadLetterCapacity) deadLetters.shift()
    if (observed()) publish(new MessageRejected(
        {
          thread: letter.thread,
          root: rootId,
          time: letter.time,
          stage,
          kind,
          reason,
          diagnostics: [...diagnostics],
          from: letter.from,
          to: letter.to,
          payloadType: letter.payloadType,
          payload: letter.text
        },
        true
      )
    )
  }

  const bounceFor = (error: IngressError): SystemError => {
    switch (error._tag) {
      case "PayloadInvalid":
      case "DecodeFailed": {
        // The sender (often a model) gets what was wrong and what was expected.
        const expected = router.types.get(error.payloadTag.toLowerCase())?.spec.example
        const detail = error.diagnostics.map(String).join("; ") || error.message
        return SystemErrors.invalid(expected === undefined ? detail : `${detail}\nExpected <${error.payloadTag}> like:\n${expected}`)
      }
      case "UnknownRoute":
        return SystemErrors.routing()
      default:
        return SystemErrors.invalid(error.message)
    }
  }

  const reject = (item: InboxItem, outcome: Rejected) => {
    const { error, seen } = outcome
    recordRejection(
      error.stage,
      error._tag,
      error.message,
      [...error.diagnostics.map(String), ...outcome.diagnostics.map(String)],
      { ...seen, payloadType: seen.payloadTag },
      outcome.canonical ??
        (typeof item.input === "string" ? item.input.slice(0, TEXT_LIMIT) : decoder.decode(item.input.subarray(0, TEXT_LIMIT))),
      item.origin?.node.root.id ?? null
    )
    const origin = item.origin
    if (origin !== undefined) {
      noteProblem(origin.node.root, error.message)
      // Bounce to the sending listener, unless the pump itself sent it.
      if (!origin.system && origin.senderNode !== undefined && origin.senderNode.parent !== undefined) {
        sendSystemError(origin.senderNode.name, origin.senderNode, bounceFor(error))
      }
      registry.release(origin.node)
    }
    permitDone(item.permit)
    checkIdle()
  }

  const guardStop = (item: InboxItem, node: ThreadNode, guard: string, detail: string, listener: string | null) => {
    guardStopped++
    if (observed()) publish(new GuardTripped({ thread: node.id, root: node.root.id, time: now(), guard, listener, detail }, true))
    noteProblem(node.root, `guard ${guard}: ${detail}`)
    const origin = item.origin
    if (origin !== undefined && !origin.system && origin.senderNode !== undefined && origin.senderNode.parent !== undefined) {
      sendSystemError(origin.senderNode.name, origin.senderNode, SystemErrors.guard(`Stopped by the ${guard} guard: ${detail}`))
    }
    registry.release(node)
    permitDone(item.permit)
    checkIdle()
  }

  let messageSeq = 0

  // --- dispatch -----------------------------------------------------------------------
  // Gates are kept by name across reloads, so an exclusive listener stays exclusive while
  // jobs of its old and new versions overlap in time.
  const categoryGates = new Map<string, Gate>()
  const listenerGates = new Map<string, Gate>()
  let gatesOf = new Map<ListenerEntry, ReadonlyArray<Gate>>()
  const buildGates = () => {
    const next = new Map<ListenerEntry, ReadonlyArray<Gate>>()
    for (const entry of router.listeners.values()) {
      const l = entry.listener
      const gates: Array<Gate> = []
      const own = l.concurrency._tag === "Exclusive"
        ? 1
        : l.maxConcurrent ?? (l.agent ? settings.maxConcurrentPerAgent : undefined)
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
  buildGates()

  // Jobs wait in two places: a gate's queue (listener or category busy), then `waiting` for
  // a global slot. `runnable` is a trampoline: starting a job can finish one, which can wake
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
        if (running >= settings.maxConcurrentHandlers) waiting.push(job)
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
    jobsOpen++
    if (job.gates.length === 0) ready(job)
    else enterAll(job.gates, () => ready(job))
  }

  /** A global slot is free: the longest-waiting job takes it. */
  const promote = () => {
    if (waitingHead < waiting.length && running < settings.maxConcurrentHandlers) {
      const job = waiting[waitingHead]!
      waiting[waitingHead++] = undefined as never
      if (waitingHead === waiting.length) {
        waiting.length = 0
        waitingHead = 0
      }
      ready(job)
    }
  }

  const deliver = (
    item: InboxItem,
    node: ThreadNode,
    from: string,
    targets: ReadonlyArray<{ target: RouteTarget; payload: unknown }>,
    broadcast: boolean,
    payloadTag: string,
    payloadXml: string,
    diagnostics: ReadonlyArray<string>,
    envelope: string
  ) => {
    const system = item.origin?.system === true
    const root = node.root
    // Guards: the chain depth of the hop being made, and the step cap of the conversation.
    const depth = broadcast ? node.depth + 1 : node.depth
    const first = targets[0]!.target
    if (depth > settings.guards.maxChainDepth) {
      return guardStop(item, node, "max-chain-depth", `chain depth ${depth} exceeds ${settings.guards.maxChainDepth}`, first.name ?? null)
    }
    if (!system) {
      let handlers = 0
      let agents = 0
      for (const t of targets) {
        const entry = t.target.entry as ListenerEntry | undefined
        if (entry === undefined) continue
        handlers++
        if (entry.listener.agent) agents++
      }
      const guards = settings.guards
      if (handlers > 0 && root.invocations + handlers > guards.maxInvocationsPerThread) {
        return guardStop(item, node, "max-invocations", `${guards.maxInvocationsPerThread} handler invocations reached on this thread`, first.name ?? null)
      }
      if (agents > 0 && root.agentSteps + agents > guards.maxAgentSteps) {
        return guardStop(item, node, "max-agent-steps", `${guards.maxAgentSteps} agent steps reached on this thread`, first.name ?? null)
      }
      if (handlers > 0 && Date.now() - root.createdAt > Duration.toMillis(guards.maxThreadDuration)) {
        return guardStop(
          item,
          node,
          "max-thread-duration",
          `the thread has run longer than ${Duration.format(guards.maxThreadDuration)}`,
          first.name ?? null
        )
      }
    }
    // The conversation's history records each message once, whatever its fan-out.
    const appended = context.append({
      id: String(++messageSeq),
      root: root.id,
      thread: node.id,
      from,
      to: broadcast ? "" : first.name ?? "",
      payloadType: payloadTag,
      payload: targets[0]!.payload,
      xml: payloadXml
    })
    // A full history stops a message — except the pump's own SystemErrors, which must still
    // reach their listener (to say, for one, that its history is full).
    if (Either.isLeft(appended) && !system) {
      return guardStop(item, node, "context-full", appended.left.message, first.name ?? null)
    }
    todos.observe({ root: root.id, thread: node.id, from, payloadType: payloadTag })
    delivered++
    for (const { payload, target } of targets) {
      const entry = target.entry as ListenerEntry | undefined
      const jobNode = broadcast && target.name !== undefined ? registry.extend(node, target.name) : node
      if (observed()) {
        publish(
          new MessageReceived({
            thread: jobNode.id,
            root: root.id,
            parent: jobNode.parent?.id ?? null,
            time: now(),
            from,
            to: target.name ?? "",
            payloadType: payloadTag,
            payload: payloadXml,
            diagnostics: [...diagnostics],
            envelope
          }, true)
        )
      }
      if (entry === undefined) {
        // Back at the injector: it answers a pending request, if any.
        const waiting = requests.get(root.id)
        if (waiting !== undefined) {
          requests.delete(root.id)
          waiting.resolve(
            payload instanceof SystemError
              ? Exit.fail(new RequestFailed({ thread: root.id, error: payload }))
              : Exit.succeed(payload)
          )
        }
        continue
      }
      // A payload every listener accepts implicitly (SystemError, BudgetWarning, todo
      // replies) that this one did not declare goes to its onSystem handler.
      const tag = payloadTag.toLowerCase()
      const isSystemPayload = !entry.types.has(tag) && entry.system.has(tag)
      if (isSystemPayload && entry.listener.onSystem === undefined) continue
      root.invocations++
      if (entry.listener.agent) root.agentSteps++
      registry.retain(jobNode)
      if (item.permit !== undefined) item.permit.pending++
      schedule({
        entry,
        payload,
        system: isSystemPayload,
        node: jobNode,
        from,
        permit: item.permit,
        gates: gatesOf.get(entry) ?? [],
        settled: false,
        timer: undefined,
        fiber: undefined,
        startedAt: 0,
        replies: undefined
      })
    }
    registry.release(node)
    permitDone(item.permit)
    checkIdle()
  }

  const processItem = (item: InboxItem, outcome: IngressOutcome) => {
    if (outcome._tag === "Rejected") return reject(item, outcome)
    const { envelope } = outcome
    const decoded = outcome.decoded!
    let node: ThreadNode
    if (item.origin !== undefined) {
      node = item.origin.node
    } else {
      const known = registry.lookup(outcome.thread.thread)
      const to = envelope.to
      if (known !== undefined) {
        node = to === undefined || known.name === to ? known : registry.extend(known, to)
      } else {
        // A broadcast from outside is delivered on hops below the sender's own node.
        node = registry.startRoot(envelope.from, to, outcome.thread.replaced ? undefined : outcome.thread.thread)
        const created = node
        if (observed()) publish(new ThreadCreated({ thread: created.root.id, time: now(), injector: envelope.from, to: to ?? null }, true))
      }
      registry.retain(node)
    }
    deliver(
      item,
      node,
      envelope.from,
      decoded.deliveries,
      envelope.to === undefined,
      envelope.payloadTag,
      envelope.payloadXml,
      outcome.diagnostics.length === 0 ? [] : outcome.diagnostics.map(String),
      outcome.canonical
    )
  }

  // --- replies ------------------------------------------------------------------------
  const peerAllowed = (listener: Listener, to: string) =>
    listener.peers === undefined || listener.peers.some((p) => p.toLowerCase() === to.toLowerCase())

  const refuse = (job: Job, to: string, tag: string, kind: string, reason: string, error: SystemError) => {
    // The reply is counted as injected and rejected, so it is accounted for like any message.
    injected++
    recordRejection("route", kind, reason, [], { from: job.entry.listener.name, to, thread: job.node.id, payloadType: tag }, "", job.node.root.id)
    noteProblem(job.node.root, reason)
    sendSystemError(job.entry.listener.name, job.node, error)
  }

  const sendReply = (job: Job, reply: Reply) => {
    const listener = job.entry.listener
    const name = listener.name
    switch (reply._tag) {
      case "None":
        return
      case "All":
        for (const r of reply.replies) sendReply(job, r)
        return
      case "Forward": {
        for (const value of reply.payloads) {
          const encoded = encodeOrReport(job, value)
          if (encoded === undefined) continue
          if (!peerAllowed(listener, reply.to)) {
            refuse(job, reply.to, encoded.tag, "PeerViolation", `${name} may not send to ${reply.to} (not a peer)`, SystemErrors.forbidden())
            continue
          }
          if (listener.agent && looping(job, reply.to, encoded)) continue
          send(name, reply.to, registry.extend(job.node, reply.to), encoded, job.node, false, job.permit, job)
        }
        return
      }
      case "Respond": {
        const parent = job.node.parent
        if (parent === undefined) return
        for (const value of reply.payloads) {
          const encoded = encodeOrReport(job, value)
          if (encoded !== undefined) send(name, parent.name, parent, encoded, job.node, false, job.permit, job)
        }
        return
      }
      case "Broadcast": {
        for (const value of reply.payloads) {
          const encoded = encodeOrReport(job, value)
          if (encoded === undefined) continue
          const targets = router.broadcastTargets(encoded.tag).filter((t) => peerAllowed(listener, t.name!))
          if (targets.length === 0) {
            refuse(job, "*", encoded.tag, "UnknownRoute", `no broadcast listener for ${encoded.tag} that ${name} may reach`, SystemErrors.routing())
            continue
          }
          for (const t of targets) {
            if (listener.agent && looping(job, t.name!, encoded)) continue
            send(name, t.name!, registry.extend(job.node, t.name!), encoded, job.node, false, job.permit, job)
          }
        }
        return
      }
    }
  }

  // Loop detection: what each agent last sent to each target in a conversation, and how many
  // times in a row. Kept per root, dropped with it.
  const lastSends = new WeakMap<RootThread, Map<string, { xml: string; count: number }>>()

  /** True (and the send is stopped) when an agent repeats itself to the same target. */
  const looping = (job: Job, to: string, encoded: Encoded): boolean => {
    const root = job.node.root
    let memory = lastSends.get(root)
    if (memory === undefined) lastSends.set(root, memory = new Map())
    const key = `${job.entry.listener.name}\u0000${to.toLowerCase()}`
    const xml = payloadXmlOf(encoded.tag, encoded.inner)
    // One invocation fanning out identical items is not a loop: count it once.
    const seenKey = `${key}\u0000${xml}`
    if (job.loopSeen?.has(seenKey)) return false
    ;(job.loopSeen ??= new Set()).add(seenKey)
    const last = memory.get(key)
    const count = last !== undefined && last.xml === xml ? last.count + 1 : 1
    memory.set(key, { xml, count })
    if (count < settings.guards.loopThreshold) return false
    // Accounted like any message: written (injected), then stopped by a guard.
    injected++
    guardStopped++
    const detail = `${job.entry.listener.name} sent the same <${encoded.tag}> to ${to} ${count} times in a row`
    if (observed()) {
      publish(new GuardTripped({ thread: job.node.id, root: root.id, time: now(), guard: "loop", listener: job.entry.listener.name, detail }, true))
    }
    noteProblem(root, `guard loop: ${detail}`)
    sendSystemError(
      job.entry.listener.name,
      job.node,
      SystemErrors.guard(`You sent the same <${encoded.tag}> to ${to} ${count} times in a row; it was not sent again. Try something different.`)
    )
    return true
  }

  /** Sends a reply on behalf of a listener outside one of its invocations (primitives). */
  const replyAs = (entry: ListenerEntry, node: ThreadNode, reply: Reply) =>
    sendReply({
      entry,
      payload: undefined,
      system: false,
      node,
      from: entry.listener.name,
      permit: undefined,
      gates: [],
      settled: true,
      timer: undefined,
      fiber: undefined,
      startedAt: now(),
      replies: undefined
    }, reply)

  const encodeOrReport = (job: Job, value: PayloadValue): Encoded | undefined => {
    const encoded = encodePayload(value)
    if (Either.isRight(encoded)) return encoded.right
    const listener = job.entry.listener.name
    if (observed()) publish(new HandlerFailed({ thread: job.node.id, root: job.node.root.id, time: now(), listener, reason: "invalid-reply", detail: encoded.left }, true)
    )
    noteProblem(job.node.root, encoded.left)
    sendSystemError(listener, job.node, SystemErrors.invalid(encoded.left))
    return undefined
  }

  const failJob = (job: Job, reason: "failed" | "died" | "timed-out", detail: string) => {
    const listener = job.entry.listener.name
    if (observed()) publish(new HandlerFailed({ thread: job.node.id, root: job.node.root.id, time: now(), listener, reason, detail }, true))
    noteProblem(job.node.root, `${listener} ${reason}: ${detail}`)
    // The caller path hears about it: a SystemError travels back one hop.
    const parent = job.node.parent
    if (parent !== undefined && !job.system) {
      sendSystemError(parent.name, parent, reason === "timed-out" ? SystemErrors.timeout() : SystemErrors.failed())
    }
  }

  const finishJob = (job: Job) => {
    if (job.timer !== undefined) wheel.disarm(job.timer)
    job.fiber = undefined
    running--
    jobsOpen--
    if (job.entry.listener.agent) {
      if (observed()) publish(new AgentState({ thread: job.node.id, root: job.node.root.id, time: now(), listener: job.entry.listener.name, state: "idle" }, true)
      )
    }
    leaveAll(job.gates)
    registry.release(job.node)
    permitDone(job.permit)
    promote()
    checkIdle()
  }

  const completeJob = (job: Job, exit: Exit.Exit<unknown, unknown>) => {
    if (job.settled) return
    job.settled = true
    if (Exit.isSuccess(exit)) {
      const value = exit.value
      if (observed()) job.replies = []
      if (value !== undefined && value !== null) {
        if (isReply(value)) sendReply(job, value)
        else {
          const detail = `handler returned ${typeof value === "object" ? (value as object).constructor?.name : typeof value}, not a Reply`
          if (observed()) publish(new HandlerFailed({ thread: job.node.id, root: job.node.root.id, time: now(), listener: job.entry.listener.name, reason: "invalid-reply", detail }, true)
          )
          noteProblem(job.node.root, detail)
        }
      }
      if (observed()) {
        publish(
          new HandlerCompleted({
            thread: job.node.id,
            root: job.node.root.id,
            time: now(),
            listener: job.entry.listener.name,
            replies: job.replies ?? [],
            durationMs: now() - job.startedAt
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
    failJob(job, "timed-out", `no reply within ${Duration.format(job.entry.listener.timeout ?? settings.handlerTimeout)}`)
    const fiber = job.fiber
    finishJob(job)
    fiber?.unsafeInterruptAsFork(FiberId.none)
  }

  const armTimeout = (job: Job) => {
    const timeout = Duration.toMillis(job.entry.listener.timeout ?? settings.handlerTimeout)
    if (Number.isFinite(timeout)) job.timer = wheel.arm(now() + timeout, () => timeOut(job))
  }

  const runtime = yield* Effect.runtime<R>()
  const runSync = Runtime.runSyncExit(runtime)
  const suspended = yield* FiberSet.make<unknown, unknown>()
  // Registered after the FiberSet, so it runs before it: handlers interrupted by shutdown
  // are not reported as failures of the organism.
  let closing = false
  yield* Effect.addFinalizer(() => Effect.sync(() => void (closing = true)))

  /** Runs an Effect on the spot; if it suspends, it continues as its own fiber. */
  const runEffect = (job: Job, effect: Effect.Effect<unknown, unknown, R>) => {
    const exit = runSync(effect)
    if (Exit.isFailure(exit) && Cause.isDieType(exit.cause) && Runtime.isAsyncFiberException(exit.cause.defect)) {
      const fiber = exit.cause.defect.fiber as Fiber.RuntimeFiber<unknown, unknown>
      job.fiber = fiber
      FiberSet.unsafeAdd(suspended, fiber)
      armTimeout(job)
      fiber.addObserver((done) => {
        if (closing) return
        completeJob(job, done)
        drain()
      })
      return
    }
    completeJob(job, exit)
  }

  const start = (job: Job) => {
    running++
    invocations++
    job.startedAt = now()
    const l = job.entry.listener
    if (l.agent) {
      if (observed()) publish(new AgentState({ thread: job.node.id, root: job.node.root.id, time: now(), listener: l.name, state: "running" }, true))
    }
    const handler = (job.system ? l.onSystem! : l.handler) as (p: unknown, m: unknown) => unknown
    const root = job.node.root.id
    const meta: HandlerMetadata = l.agent
      ? {
        thread: job.node.id,
        from: job.from,
        self: l.name,
        isSelfCall: job.from === l.name,
        root,
        nudge: todos.nudgeFor(l.name, root)?.text,
        instructions: prompts.promptFor(l.name)?.system
      }
      : { thread: job.node.id, from: job.from, self: l.name, isSelfCall: job.from === l.name, root }
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

  // --- fibers ---------------------------------------------------------------------------
  yield* Effect.forkIn(
    Effect.forever(Effect.zipRight(Effect.sleep(Duration.millis(wheel.resolutionMs)), Effect.sync(() => wheel.sweep(now())))),
    scope
  )

  yield* Effect.forkIn(
    Stream.fromQueue(inbox, { maxChunkSize: 1024 }).pipe(
      Stream.runForEachChunk((chunk) =>
        Effect.sync(() => {
          const items = Chunk.toReadonlyArray(chunk)
          const outcomes = ingress.runBatch(items.map((i) => i.input), router)
          for (let i = 0; i < items.length; i++) processItem(items[i]!, outcomes[i]!)
        })
      )
    ),
    scope
  )

  // --- API ----------------------------------------------------------------------------
  const startConversation = (to: string, payload: PayloadValue, options: Pump.InjectOptions | undefined) =>
    Effect.suspend((): Effect.Effect<Encoded, InjectError> => {
      if (stopped) return Effect.fail(new PumpStopped())
      const encoded = encodePayload(payload)
      if (Either.isLeft(encoded)) return Effect.fail(new PayloadNotEncodable({ reason: encoded.left }))
      return Effect.as(permits.acquire, encoded.right)
    }).pipe(
      Effect.map((encoded) => {
        const from = options?.from ?? settings.injector
        const node = registry.startRoot(from, to)
        if (observed()) publish(new ThreadCreated({ thread: node.root.id, time: now(), injector: from, to }, true))
        const permit: Permit = { pending: 1 }
        send(from, to, node, encoded, undefined, false, permit)
        permitDone(permit)
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

  const injectRaw: Pump.Service["injectRaw"] = (input) =>
    Effect.suspend(() => (stopped ? Effect.fail(new PumpStopped()) : permits.acquire)).pipe(
      Effect.map(() => {
        injected++
        if (observed()) {
          const text = typeof input === "string" ? input : decoder.decode(input)
          publish(new RawReceived({ thread: null, time: now(), text: text.slice(0, 65536), size: input.length }, true))
        }
        inbox.unsafeOffer({ input, origin: undefined, permit: { pending: 1 } })
      })
    )

  const awaitIdle: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (inFlight() === 0) return resume(Effect.void)
    const waiter = () => resume(Effect.void)
    idleWaiters.push(waiter)
    return Effect.sync(() => {
      idleWaiters = idleWaiters.filter((w) => w !== waiter)
    })
  })

  const reload: Pump.Service["reload"] = (next) =>
    Effect.gen(function*() {
      // Compile first: a version whose schemas do not compile changes nothing.
      const nextListeners = prepare(next.listeners as ReadonlyArray<Listener>)
      const nextRouter = yield* Scope.extend(makeRouter(nextListeners, registry, knownTypes), scope)
      const nextPrompts = yield* PromptRegistry.fromListeners(nextListeners)
      const nextIngress = yield* Scope.extend(Ingress.make(next.settings.ingress), scope)
      const diff = diffListeners(current.listeners as ReadonlyArray<Listener>, next.listeners as ReadonlyArray<Listener>)
      // One synchronous swap between two chunks: a message is routed entirely by the old
      // tables or entirely by the new ones; jobs already dispatched keep their listener.
      current = next as Organism<R>
      settings = next.settings
      router = nextRouter
      prompts = nextPrompts
      vocabularies = new Map()
      ingress = nextIngress
      buildGates()
      while (running < settings.maxConcurrentHandlers && waitingHead < waiting.length) promote()
      if (observed()) {
        publish(new ReloadEvent({ thread: null, time: now(), outcome: "applied", ...diff, problems: [] }, true))
      }
      return diff
    }).pipe(Effect.provideService(XmlEngine, engine))

  const service: Pump.Service = {
    get organism() {
      return current
    },
    prompts: () => prompts,
    reload,
    inject,
    injectRaw,
    request,
    events: events.stream,
    awaitIdle,
    counters: () => ({
      injected,
      delivered,
      rejected,
      guardStopped,
      inFlight: inFlight(),
      invocations,
      running,
      rejectedBy: { ...rejectedBy }
    }),
    deadLetters: () => [...deadLetters],
    threads: registry.stats,
    drain: (deadline) =>
      Effect.suspend(() => {
        stopped = true
        return awaitIdle.pipe(Effect.as(true), Effect.timeoutTo({ duration: deadline, onSuccess: (b) => b, onTimeout: () => false }))
      })
  }

  // Boot: `system.boot` hears Boot on its own root thread, then the configured messages go out.
  const boot = new Boot({
    organismName: settings.name,
    timestamp: new Date(now()).toISOString(),
    listenerCount: router.listeners.size
  }, true)
  if (router.listenerNamed("system.boot") !== undefined) yield* inject("system.boot", boot, { from: SYSTEM })
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
