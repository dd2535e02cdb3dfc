/**
 * TodoRegistry: "raise an eyebrow". An agent registers a watcher on its conversation for a
 * payload type (optionally only from one sender); the first matching message raises it; from
 * then on every invocation of that agent in that conversation carries a nudge listing its
 * raised todos, until the agent closes them.
 *
 * Watchers are scoped to the conversation (root thread) they were registered on: a message
 * elsewhere never raises them, and they are dropped with the conversation (`cleanup`).
 * Matching is on payload type names (case-insensitive, like route keys) and sender names
 * (case-insensitive, like listener names). Only messages observed after registration count.
 *
 * `observe` runs on every delivered message and is O(1) for a conversation without
 * watchers. The service is Effect-shaped; the pump uses the synchronous `unsafe*` twins
 * (like `Queue.unsafeOffer`): the in-memory registry has nothing to wait for.
 */
import { Clock, Context, Effect, Either, Layer, Option } from "effect"
import type { ThreadId } from "../domain/Ids.js"
import { TodoClosed, type TodoComplete, TodoRegistered, type TodoUntil } from "../domain/TodoPayloads.js"
import { TodoNotFound, TodoRefused } from "./errors.js"

export { TodoNotFound, TodoRefused } from "./errors.js"

/** Wall time for the synchronous constructor; `make` reads the Effect's Clock instead. */
const liveClock = Clock.make()

export interface TodoConfig {
  /** Open todos per conversation, all agents together. */
  readonly maxPerThread: number
}

export const defaultTodoConfig: TodoConfig = { maxPerThread: 100 }

export interface TodoWatcher {
  readonly id: string
  /** The agent that registered it (and is nudged). */
  readonly agent: string
  readonly root: ThreadId
  /** The hop it was registered from. */
  readonly thread: ThreadId
  readonly waitFor: string
  readonly fromListener: string | undefined
  readonly description: string
  readonly createdAt: number
  /** The message that raised it, once one did. */
  readonly raisedBy: TodoRaise | undefined
}

export interface TodoRaise {
  readonly payloadType: string
  readonly from: string
  readonly thread: ThreadId
  readonly time: number
}

/** A delivered message, as far as watchers care. */
export interface ObservedMessage {
  readonly root: ThreadId
  readonly thread: ThreadId
  readonly from: string
  readonly payloadType: string
}

export interface TodoNudge {
  /** The agent's raised, still open todos, oldest first. */
  readonly todos: ReadonlyArray<TodoWatcher>
  /** Ready to put in front of the agent's next model call. */
  readonly text: string
}

export interface TodoRequester {
  readonly agent: string
  readonly root: ThreadId
  readonly thread: ThreadId
}

export interface TodoRequest {
  readonly waitFor: string
  readonly fromListener?: string | undefined
  readonly description: string
}

export interface TodoStats {
  /** Conversations with open todos. */
  readonly threads: number
  readonly open: number
  readonly raised: number
}

export declare namespace TodoRegistry {
  export interface Service {
    readonly register: (requester: TodoRequester, todo: TodoRequest) => Effect.Effect<TodoWatcher, TodoRefused>
    /** A message was delivered on `root`: the watchers it raised now. */
    readonly observe: (message: ObservedMessage) => Effect.Effect<ReadonlyArray<TodoWatcher>>
    /** Closes the agent's todo on that conversation; the closed watcher. */
    readonly close: (requester: TodoRequester, id: string) => Effect.Effect<TodoWatcher, TodoNotFound>
    /** The agent's raised, open todos on the conversation, with the nudge text, if it has any. */
    readonly nudgeFor: (agent: string, root: ThreadId) => Effect.Effect<Option.Option<TodoNudge>>
    /** The agent's open todos on the conversation, raised or not. */
    readonly openFor: (agent: string, root: ThreadId) => Effect.Effect<ReadonlyArray<TodoWatcher>>
    /** Drops the conversation's watchers (the completion hook). */
    readonly cleanup: (root: ThreadId) => Effect.Effect<void>
    readonly stats: Effect.Effect<TodoStats>

    // The synchronous twins, for the pump's hot path.
    readonly unsafeRegister: (requester: TodoRequester, todo: TodoRequest) => Either.Either<TodoWatcher, TodoRefused>
    readonly unsafeObserve: (message: ObservedMessage) => ReadonlyArray<TodoWatcher>
    readonly unsafeClose: (requester: TodoRequester, id: string) => Either.Either<TodoWatcher, TodoNotFound>
    /** Undefined when the agent has no raised todo there (the common case: no allocation). */
    readonly unsafeNudgeFor: (agent: string, root: ThreadId) => TodoNudge | undefined
    readonly unsafeOpenFor: (agent: string, root: ThreadId) => ReadonlyArray<TodoWatcher>
    readonly unsafeCleanup: (root: ThreadId) => void
    readonly unsafeStats: () => TodoStats
  }
}

interface Watcher extends TodoWatcher {
  readonly waitForKey: string
  readonly fromKey: string | undefined
  raisedBy: TodoRaise | undefined
}

interface Todos {
  readonly open: Array<Watcher>
  /** The last id number given out on this conversation. */
  next: number
}

const NONE: ReadonlyArray<TodoWatcher> = []

const same = (a: string, b: string) => a === b || a.toLowerCase() === b.toLowerCase()

const view = (w: Watcher): TodoWatcher => ({
  id: w.id,
  agent: w.agent,
  root: w.root,
  thread: w.thread,
  waitFor: w.waitFor,
  fromListener: w.fromListener,
  description: w.description,
  createdAt: w.createdAt,
  raisedBy: w.raisedBy
})

/** The nudge: what arrived, and the exact XML that closes each todo. */
export const nudgeText = (todos: ReadonlyArray<TodoWatcher>): string => {
  const lines = todos.map((t) => {
    const what = t.fromListener === undefined ? t.waitFor : `${t.waitFor} from ${t.fromListener}`
    const arrived = t.raisedBy === undefined ? "" : ` — a ${t.raisedBy.payloadType} from ${t.raisedBy.from} has arrived`
    return `- ${t.id}: ${t.description} (waiting for ${what})${arrived}.\n  Close it with: <TodoComplete><Id>${t.id}</Id></TodoComplete>`
  })
  const head = todos.length === 1
    ? "Reminder: the message one of your todos was waiting for has arrived."
    : `Reminder: the messages ${todos.length} of your todos were waiting for have arrived.`
  return [
    head,
    ...lines,
    "Deal with each one, then close it by sending its TodoComplete to system.todo-complete. You will be reminded until you do."
  ].join("\n")
}

export const makeTodoRegistry = (options: Partial<TodoConfig> = {}, now: () => number = () => liveClock.unsafeCurrentTimeMillis()): TodoRegistry.Service => {
  const config: TodoConfig = { ...defaultTodoConfig, ...options }
  // Ids are numbered per conversation: short for a model to copy, and they reveal nothing
  // about other conversations. The counter lives as long as the conversation, so an id is
  // never reused within it (a stale TodoComplete cannot close a newer todo).
  const byRoot = new Map<string, Todos>()

  const ownedBy = (agent: string, root: ThreadId) => (byRoot.get(root)?.open ?? []).filter((w) => same(w.agent, agent))

  const unsafeRegister: TodoRegistry.Service["unsafeRegister"] = (requester, todo) => {
    const waitFor = todo.waitFor.trim()
    if (waitFor === "") {
      return Either.left(new TodoRefused({ agent: requester.agent, reason: "WaitFor must name a payload type" }))
    }
    let todos = byRoot.get(requester.root)
    if (todos !== undefined && todos.open.length >= config.maxPerThread) {
      return Either.left(
        new TodoRefused({
          agent: requester.agent,
          reason: `this conversation already has ${config.maxPerThread} open todos; close some first`
        })
      )
    }
    const from = todo.fromListener?.trim()
    const fromListener = from === undefined || from === "" ? undefined : from
    if (todos === undefined) byRoot.set(requester.root, todos = { open: [], next: 0 })
    const w: Watcher = {
      id: `todo-${++todos.next}`,
      agent: requester.agent,
      root: requester.root,
      thread: requester.thread,
      waitFor,
      fromListener,
      description: todo.description,
      createdAt: now(),
      raisedBy: undefined,
      waitForKey: waitFor.toLowerCase(),
      fromKey: fromListener?.toLowerCase()
    }
    todos.open.push(w)
    return Either.right(view(w))
  }

  const unsafeObserve: TodoRegistry.Service["unsafeObserve"] = (message) => {
    const watchers = byRoot.get(message.root)?.open
    if (watchers === undefined || watchers.length === 0) return NONE
    let typeKey: string | undefined
    let fromKey: string | undefined
    let raised: Array<TodoWatcher> | undefined
    for (const w of watchers) {
      if (w.raisedBy !== undefined) continue
      if (w.waitForKey !== (typeKey ??= message.payloadType.toLowerCase())) continue
      if (w.fromKey !== undefined && w.fromKey !== (fromKey ??= message.from.toLowerCase())) continue
      w.raisedBy = { payloadType: message.payloadType, from: message.from, thread: message.thread, time: now() }
      ;(raised ??= []).push(view(w))
    }
    return raised ?? NONE
  }

  const unsafeClose: TodoRegistry.Service["unsafeClose"] = (requester, id) => {
    const watchers = byRoot.get(requester.root)?.open
    const i = watchers === undefined ? -1 : watchers.findIndex((w) => w.id === id.trim() && same(w.agent, requester.agent))
    // Someone else's todo, or another conversation's, is "not found": no one learns of it.
    if (i === -1) return Either.left(new TodoNotFound({ id, agent: requester.agent }))
    const [w] = watchers!.splice(i, 1)
    return Either.right(view(w!))
  }

  const unsafeNudgeFor: TodoRegistry.Service["unsafeNudgeFor"] = (agent, root) => {
    const watchers = byRoot.get(root)?.open
    if (watchers === undefined) return undefined
    let todos: Array<TodoWatcher> | undefined
    for (const w of watchers) if (w.raisedBy !== undefined && same(w.agent, agent)) (todos ??= []).push(view(w))
    return todos === undefined ? undefined : { todos, text: nudgeText(todos) }
  }

  const unsafeOpenFor: TodoRegistry.Service["unsafeOpenFor"] = (agent, root) => ownedBy(agent, root).map(view)

  const unsafeCleanup: TodoRegistry.Service["unsafeCleanup"] = (root) => {
    byRoot.delete(root)
  }

  const unsafeStats: TodoRegistry.Service["unsafeStats"] = () => {
    let open = 0
    let raised = 0
    let threads = 0
    for (const { open: watchers } of byRoot.values()) {
      if (watchers.length > 0) threads++
      open += watchers.length
      for (const w of watchers) if (w.raisedBy !== undefined) raised++
    }
    return { threads, open, raised }
  }

  return {
    register: (requester, todo) => Effect.suspend(() => unsafeRegister(requester, todo)),
    observe: (message) => Effect.sync(() => unsafeObserve(message)),
    close: (requester, id) => Effect.suspend(() => unsafeClose(requester, id)),
    nudgeFor: (agent, root) => Effect.sync(() => Option.fromNullable(unsafeNudgeFor(agent, root))),
    openFor: (agent, root) => Effect.sync(() => unsafeOpenFor(agent, root)),
    cleanup: (root) => Effect.sync(() => unsafeCleanup(root)),
    stats: Effect.sync(unsafeStats),
    unsafeRegister,
    unsafeObserve,
    unsafeClose,
    unsafeNudgeFor,
    unsafeOpenFor,
    unsafeCleanup,
    unsafeStats
  }
}

/**
 * `system.todo`: registers the requesting agent's watcher on its conversation and answers
 * with the id to close it with. The pump knows who asked: it passes the requester.
 */
export const handleTodoUntil = Effect.fn("TodoRegistry.handleTodoUntil")(function*(
  registry: TodoRegistry.Service,
  request: TodoUntil,
  requester: TodoRequester
) {
  const w = yield* registry.register(requester, request)
  return new TodoRegistered({ id: w.id, waitFor: w.waitFor, description: w.description })
})

/** `system.todo-complete`: closes one of the requesting agent's todos. */
export const handleTodoComplete = Effect.fn("TodoRegistry.handleTodoComplete")(function*(
  registry: TodoRegistry.Service,
  request: TodoComplete,
  requester: TodoRequester
) {
  const w = yield* registry.close(requester, request.id)
  return new TodoClosed({ id: w.id, wasRaised: w.raisedBy !== undefined })
})

export class TodoRegistry extends Context.Tag("xml-organism/TodoRegistry")<TodoRegistry, TodoRegistry.Service>() {
  /** An in-memory registry reading time from the Clock. */
  static readonly make = (config: Partial<TodoConfig> = {}): Effect.Effect<TodoRegistry.Service> =>
    Effect.map(Effect.clock, (clock) => makeTodoRegistry(config, () => clock.unsafeCurrentTimeMillis()))

  /** The embedded, in-process registry. */
  static readonly layerMemory = (config: Partial<TodoConfig> = {}): Layer.Layer<TodoRegistry> =>
    Layer.effect(TodoRegistry, TodoRegistry.make(config))
}
