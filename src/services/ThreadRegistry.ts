/**
 * ThreadRegistry: call chains ↔ opaque thread ids, and the liveness of every conversation.
 *
 * A chain is a path in a tree of nodes, one tree per root thread: forwarding extends the
 * chain by the target (a new child node — every forward is its own hop with its own id, so
 * parallel calls to the same listener stay distinguishable), responding prunes it by one hop
 * (the parent node). Chains are lists of names, so listener names may contain dots. The tree
 * is scoped to its root: two conversations never share a thread id.
 *
 * Every message and handler invocation holds its node "live", and with it every ancestor.
 * When a node's branch has nothing live left, its branch-end hooks run (a Sequence learns
 * that a step ended without replying); when nothing is live under the injector's node, the
 * root completes, its nodes are dropped, and the completion hooks run (the registries that
 * keep per-thread state join here to clean up).
 *
 * The service is Effect-shaped; the pump, which retains and releases nodes several times per
 * message, uses the synchronous `unsafe*` twins (like `Queue.unsafeOffer`).
 */
import { Context, Effect, Layer, Option, type Scope } from "effect"
import { makeThreadId, ownThreadId, type ThreadId } from "../domain/Ids.js"

export interface RootThread {
  readonly id: ThreadId
  /** Who injected the conversation (the console, an API caller, `system`). */
  readonly injector: string
  readonly createdAt: number
  /** The injector's node: every node of the conversation descends from it. */
  top: ThreadNode
  /** Handler invocations so far (the step guard reads this). */
  invocations: number
  /** Agent invocations so far (the agent step guard reads this). */
  agentSteps: number
  completed: boolean
  readonly nodes: Array<ThreadNode>
}

export interface ThreadNode {
  readonly id: ThreadId
  /** The last name of the chain: the listener (or injector) this thread addresses. */
  readonly name: string
  readonly parent: ThreadNode | undefined
  readonly root: RootThread
  /** Hops from the injector (the injector's own node is 0). */
  readonly depth: number
  /** Messages and invocations live at or below this node. */
  live: number
  /** Run once when `live` drops to 0 (see `onBranchEnd`). */
  branchEnd: Array<(node: ThreadNode) => void> | undefined
}

export type CompletionHook = (root: RootThread) => void

export interface ThreadStats {
  readonly roots: number
  readonly nodes: number
}

export declare namespace ThreadRegistry {
  export interface Service {
    /**
     * Starts a conversation: `injector` sends to `to`. Returns the node of `to` (depth 1),
     * whose id is the root id — `id` when given (a canonical id from outside), else fresh.
     * Without `to` (a broadcast from outside) it returns the injector's own node, which then
     * carries the root id.
     */
    readonly startRoot: (injector: string, to: string | undefined, id?: ThreadId) => Effect.Effect<ThreadNode>
    readonly lookup: (id: string) => Effect.Effect<Option.Option<ThreadNode>>
    /** The chain extended by `name`: a new hop with a fresh id. */
    readonly extend: (node: ThreadNode, name: string) => Effect.Effect<ThreadNode>
    /** The chain pruned by one hop; none at the injector. */
    readonly prune: (node: ThreadNode) => Effect.Effect<Option.Option<ThreadNode>>
    /** The names along the chain, injector first. */
    readonly chain: (node: ThreadNode) => Effect.Effect<ReadonlyArray<string>>
    /** Holds a node (and its ancestors) live: a message travelling on it, an invocation. */
    readonly retain: (node: ThreadNode) => Effect.Effect<void>
    /**
     * Releases one hold. A node whose branch has nothing live left runs its branch-end hooks
     * (which may retain again); the root completes when nothing is live in it at all.
     */
    readonly release: (node: ThreadNode) => Effect.Effect<void>
    /** Runs `hook` once, the next time nothing is live at or below `node`. */
    readonly onBranchEnd: (node: ThreadNode, hook: (node: ThreadNode) => void) => Effect.Effect<void>
    /** Registers a completion hook for the lifetime of the Scope. */
    readonly onComplete: (hook: CompletionHook) => Effect.Effect<void, never, Scope.Scope>
    readonly stats: Effect.Effect<ThreadStats>

    // The synchronous twins, for the pump's hot path.
    readonly unsafeStartRoot: (injector: string, to: string | undefined, id?: ThreadId) => ThreadNode
    readonly unsafeLookup: (id: string) => ThreadNode | undefined
    readonly unsafeExtend: (node: ThreadNode, name: string) => ThreadNode
    /** Undefined at the injector. */
    readonly unsafePrune: (node: ThreadNode) => ThreadNode | undefined
    readonly unsafeChain: (node: ThreadNode) => ReadonlyArray<string>
    readonly unsafeRetain: (node: ThreadNode) => void
    readonly unsafeRelease: (node: ThreadNode) => void
    readonly unsafeOnBranchEnd: (node: ThreadNode, hook: (node: ThreadNode) => void) => void
    /** Registers a completion hook; returns a function that removes it. */
    readonly unsafeOnComplete: (hook: CompletionHook) => () => void
    readonly unsafeStats: () => ThreadStats
  }
}

/** `now` gives the epoch ms a root is created at (the Clock, from `ThreadRegistry.make`). */
export const makeThreadRegistry = (now: () => number): ThreadRegistry.Service => {
  const nodes = new Map<string, ThreadNode>()
  // Nodes are indexed by id when an id is next looked up, not when they are made. The pump
  // hands its own messages their node, so a conversation among listeners looks nothing up,
  // and one Map entry per forward (a Map as large as every live conversation together) cost
  // more per hop than the rest of the registry. Per root with nodes not indexed yet: the
  // position in its `nodes` from which they are not.
  const unindexed = new Map<RootThread, number>()
  let nodeCount = 0
  let roots = 0
  const hooks: Array<CompletionHook> = []

  const add = (root: RootThread, node: ThreadNode): ThreadNode => {
    root.nodes.push(node)
    nodeCount++
    if (!unindexed.has(root)) unindexed.set(root, root.nodes.length - 1)
    return node
  }

  const find = (id: string): ThreadNode | undefined => {
    if (unindexed.size > 0) {
      for (const [root, from] of unindexed) {
        const list = root.nodes
        for (let i = from; i < list.length; i++) nodes.set(list[i]!.id, list[i]!)
      }
      unindexed.clear()
    }
    return nodes.get(id)
  }

  const child = (parent: ThreadNode, name: string, id: ThreadId): ThreadNode =>
    add(parent.root, { id, name, parent, root: parent.root, depth: parent.depth + 1, live: 0, branchEnd: undefined })

  const complete = (root: RootThread) => {
    root.completed = true
    roots--
    const list = root.nodes
    const indexed = unindexed.get(root) ?? list.length
    unindexed.delete(root)
    for (let i = 0; i < indexed; i++) nodes.delete(list[i]!.id)
    nodeCount -= list.length
    list.length = 0
    for (const hook of hooks) hook(root)
  }

  const unsafeStartRoot: ThreadRegistry.Service["unsafeStartRoot"] = (injector, to, id) => {
    const rootId = id !== undefined && find(id) === undefined ? ownThreadId(id) : makeThreadId()
    const root = {
      id: rootId,
      injector,
      createdAt: now(),
      invocations: 0,
      agentSteps: 0,
      completed: false,
      nodes: []
    } as unknown as RootThread
    roots++
    // The injector's own node exists so that responding from the first hop reaches it.
    const top: ThreadNode = {
      id: to === undefined ? rootId : makeThreadId(),
      name: injector,
      parent: undefined,
      root,
      depth: 0,
      live: 0,
      branchEnd: undefined
    }
    root.top = top
    add(root, top)
    return to === undefined ? top : child(top, to, rootId)
  }

  const unsafeLookup: ThreadRegistry.Service["unsafeLookup"] = find

  const unsafeExtend: ThreadRegistry.Service["unsafeExtend"] = (node, name) => child(node, name, makeThreadId())

  const unsafePrune: ThreadRegistry.Service["unsafePrune"] = (node) => node.parent

  const unsafeChain: ThreadRegistry.Service["unsafeChain"] = (node) => {
    const names: Array<string> = []
    for (let n: ThreadNode | undefined = node; n !== undefined; n = n.parent) names.push(n.name)
    return names.reverse()
  }

  const unsafeRetain: ThreadRegistry.Service["unsafeRetain"] = (node) => {
    for (let n: ThreadNode | undefined = node; n !== undefined; n = n.parent) n.live++
  }

  const unsafeRelease: ThreadRegistry.Service["unsafeRelease"] = (node) => {
    for (let n: ThreadNode | undefined = node; n !== undefined; n = n.parent) {
      if (--n.live === 0 && n.branchEnd !== undefined) {
        const hooks = n.branchEnd
        n.branchEnd = undefined
        for (const hook of hooks) hook(n)
      }
    }
    const root = node.root
    if (root.top.live === 0 && !root.completed) complete(root)
  }

  const unsafeOnBranchEnd: ThreadRegistry.Service["unsafeOnBranchEnd"] = (node, hook) => {
    ;(node.branchEnd ??= []).push(hook)
  }

  const unsafeOnComplete: ThreadRegistry.Service["unsafeOnComplete"] = (hook) => {
    hooks.push(hook)
    return () => {
      const i = hooks.indexOf(hook)
      if (i !== -1) hooks.splice(i, 1)
    }
  }

  const unsafeStats: ThreadRegistry.Service["unsafeStats"] = () => ({ roots, nodes: nodeCount })

  return {
    startRoot: (injector, to, id) => Effect.sync(() => unsafeStartRoot(injector, to, id)),
    lookup: (id) => Effect.sync(() => Option.fromNullable(unsafeLookup(id))),
    extend: (node, name) => Effect.sync(() => unsafeExtend(node, name)),
    prune: (node) => Effect.sync(() => Option.fromNullable(unsafePrune(node))),
    chain: (node) => Effect.sync(() => unsafeChain(node)),
    retain: (node) => Effect.sync(() => unsafeRetain(node)),
    release: (node) => Effect.sync(() => unsafeRelease(node)),
    onBranchEnd: (node, hook) => Effect.sync(() => unsafeOnBranchEnd(node, hook)),
    onComplete: (hook) =>
      Effect.acquireRelease(Effect.sync(() => unsafeOnComplete(hook)), (remove) => Effect.sync(remove)).pipe(Effect.asVoid),
    stats: Effect.sync(unsafeStats),
    unsafeStartRoot,
    unsafeLookup,
    unsafeExtend,
    unsafePrune,
    unsafeChain,
    unsafeRetain,
    unsafeRelease,
    unsafeOnBranchEnd,
    unsafeOnComplete,
    unsafeStats
  }
}

export class ThreadRegistry extends Context.Tag("xml-organism/ThreadRegistry")<
  ThreadRegistry,
  ThreadRegistry.Service
>() {
  /**
   * An in-memory registry. Roots are stamped with the Effect Clock, which the pump's
   * thread-duration guard reads too (so `TestClock` drives both).
   */
  static readonly make: Effect.Effect<ThreadRegistry.Service> = Effect.map(
    Effect.clock,
    (clock) => makeThreadRegistry(() => clock.unsafeCurrentTimeMillis())
  )
  /** The embedded, in-process registry. */
  static readonly layerMemory: Layer.Layer<ThreadRegistry> = Layer.effect(ThreadRegistry, ThreadRegistry.make)
}
