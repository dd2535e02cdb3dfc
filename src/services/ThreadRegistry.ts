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
 */
import { Clock, Context, Effect, Layer } from "effect"
import { makeThreadId, ownThreadId, type ThreadId } from "../domain/Ids.js"

/**
 * Wall time: the pump's thread wall-clock guard compares `createdAt` with the time it reads,
 * so both must come from the same clock (pass `now` to use another).
 */
const liveClock = Clock.make()

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

export declare namespace ThreadRegistry {
  export interface Service {
    /**
     * Starts a conversation: `injector` sends to `to`. Returns the node of `to` (depth 1),
     * whose id is the root id — `id` when given (a canonical id from outside), else fresh.
     * Without `to` (a broadcast from outside) it returns the injector's own node, which then
     * carries the root id.
     */
    readonly startRoot: (injector: string, to: string | undefined, id?: ThreadId) => ThreadNode
    readonly lookup: (id: string) => ThreadNode | undefined
    /** The chain extended by `name`: a new hop with a fresh id. */
    readonly extend: (node: ThreadNode, name: string) => ThreadNode
    /** The chain pruned by one hop; undefined at the injector. */
    readonly prune: (node: ThreadNode) => ThreadNode | undefined
    /** The names along the chain, injector first. */
    readonly chain: (node: ThreadNode) => ReadonlyArray<string>
    /** Holds a node (and its ancestors) live: a message travelling on it, an invocation. */
    readonly retain: (node: ThreadNode) => void
    /**
     * Releases one hold. A node whose branch has nothing live left runs its branch-end hooks
     * (which may retain again); the root completes when nothing is live in it at all.
     */
    readonly release: (node: ThreadNode) => void
    /** Runs `hook` once, the next time nothing is live at or below `node`. */
    readonly onBranchEnd: (node: ThreadNode, hook: (node: ThreadNode) => void) => void
    /** Registers a completion hook; returns a function that removes it. */
    readonly onComplete: (hook: CompletionHook) => () => void
    readonly stats: () => { readonly roots: number; readonly nodes: number }
  }
}

export const makeThreadRegistry = (now: () => number = () => liveClock.unsafeCurrentTimeMillis()): ThreadRegistry.Service => {
  const nodes = new Map<string, ThreadNode>()
  let roots = 0
  const hooks: Array<CompletionHook> = []

  const add = (root: RootThread, node: ThreadNode): ThreadNode => {
    nodes.set(node.id, node)
    root.nodes.push(node)
    return node
  }

  const child = (parent: ThreadNode, name: string, id: ThreadId): ThreadNode =>
    add(parent.root, { id, name, parent, root: parent.root, depth: parent.depth + 1, live: 0, branchEnd: undefined })

  const complete = (root: RootThread) => {
    root.completed = true
    roots--
    for (const node of root.nodes) nodes.delete(node.id)
    root.nodes.length = 0
    for (const hook of hooks) hook(root)
  }

  return {
    startRoot: (injector, to, id) => {
      const rootId = id !== undefined && !nodes.has(id) ? ownThreadId(id) : makeThreadId()
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
    },
    lookup: (id) => nodes.get(id),
    extend: (node, name) => child(node, name, makeThreadId()),
    prune: (node) => node.parent,
    chain: (node) => {
      const names: Array<string> = []
      for (let n: ThreadNode | undefined = node; n !== undefined; n = n.parent) names.push(n.name)
      return names.reverse()
    },
    retain: (node) => {
      for (let n: ThreadNode | undefined = node; n !== undefined; n = n.parent) n.live++
    },
    release: (node) => {
      for (let n: ThreadNode | undefined = node; n !== undefined; n = n.parent) {
        if (--n.live === 0 && n.branchEnd !== undefined) {
          const hooks = n.branchEnd
          n.branchEnd = undefined
          for (const hook of hooks) hook(n)
        }
      }
      const root = node.root
      if (root.top.live === 0 && !root.completed) complete(root)
    },
    onBranchEnd: (node, hook) => {
      ;(node.branchEnd ??= []).push(hook)
    },
    onComplete: (hook) => {
      hooks.push(hook)
      return () => {
        const i = hooks.indexOf(hook)
        if (i !== -1) hooks.splice(i, 1)
      }
    },
    stats: () => ({ roots, nodes: nodes.size })
  }
}

export class ThreadRegistry extends Context.Tag("xml-organism/ThreadRegistry")<
  ThreadRegistry,
  ThreadRegistry.Service
>() {
  static readonly make: Effect.Effect<ThreadRegistry.Service> = Effect.sync(() => makeThreadRegistry())
  /** The embedded, in-process registry. */
  static readonly layerMemory: Layer.Layer<ThreadRegistry> = Layer.effect(ThreadRegistry, ThreadRegistry.make)
}
