/**
 * ThreadRegistry: call chains ↔ opaque thread ids, and the liveness of every conversation.
 *
 * A chain is a path in a tree of nodes, one tree per root thread: forwarding extends the
 * chain by the target (a child node), responding prunes it by one hop (the parent node).
 * Chains are lists of names, so listener names may contain dots. The tree is scoped to its
 * root: two conversations through the same listeners never share a thread id.
 *
 * Every message and handler invocation of a root holds it "live"; when the last one is
 * released the root completes, its nodes are dropped, and the completion hooks run (the
 * registries that keep per-thread state join here to clean up).
 */
import { Context, Effect, Layer } from "effect"
import { makeThreadId, ownThreadId, type ThreadId } from "../domain/Ids.js"

export interface RootThread {
  readonly id: ThreadId
  /** Who injected the conversation (the console, an API caller, `system`). */
  readonly injector: string
  readonly createdAt: number
  /** Messages and invocations of this conversation still in flight. */
  live: number
  /** Handler invocations so far (the step guard reads this). */
  invocations: number
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
  /**
   * The hops made from here: the first in `child` (most nodes have one at most, and a Map
   * costs ≈ 430 bytes even for one entry), any further ones in `children`.
   */
  child: ThreadNode | undefined
  children: Map<string, ThreadNode> | undefined
}

export type CompletionHook = (root: RootThread) => void

export declare namespace ThreadRegistry {
  export interface Service {
    /**
     * Starts a conversation: `injector` sends to `to`. Returns the node of `to` (depth 1),
     * whose id is the root id — `id` when given (a canonical id from outside), else fresh.
     */
    readonly startRoot: (injector: string, to: string, id?: ThreadId) => ThreadNode
    readonly lookup: (id: string) => ThreadNode | undefined
    /** The chain extended by `name` (reused when that hop already exists). */
    readonly extend: (node: ThreadNode, name: string) => ThreadNode
    /** The chain pruned by one hop; undefined at the injector. */
    readonly prune: (node: ThreadNode) => ThreadNode | undefined
    /** The names along the chain, injector first. */
    readonly chain: (node: ThreadNode) => ReadonlyArray<string>
    readonly retain: (root: RootThread) => void
    /** Releases one hold; completes the root (running the hooks) when none is left. */
    readonly release: (root: RootThread) => void
    /** Registers a completion hook; returns a function that removes it. */
    readonly onComplete: (hook: CompletionHook) => () => void
    readonly stats: () => { readonly roots: number; readonly nodes: number }
  }
}

export const makeThreadRegistry = (): ThreadRegistry.Service => {
  const nodes = new Map<string, ThreadNode>()
  let roots = 0
  const hooks: Array<CompletionHook> = []

  const add = (root: RootThread, node: ThreadNode): ThreadNode => {
    nodes.set(node.id, node)
    root.nodes.push(node)
    return node
  }

  const child = (parent: ThreadNode, name: string, id: ThreadId): ThreadNode => {
    const node: ThreadNode = { id, name, parent, root: parent.root, depth: parent.depth + 1, child: undefined, children: undefined }
    if (parent.child === undefined) parent.child = node
    else (parent.children ??= new Map()).set(name, node)
    return add(parent.root, node)
  }

  const childNamed = (node: ThreadNode, name: string): ThreadNode | undefined =>
    node.child !== undefined && node.child.name === name ? node.child : node.children?.get(name)

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
      const root: RootThread = {
        id: rootId,
        injector,
        createdAt: Date.now(),
        live: 0,
        invocations: 0,
        completed: false,
        nodes: []
      }
      roots++
      // The injector's own node exists so that responding from the first hop reaches it.
      const top: ThreadNode = {
        id: makeThreadId(),
        name: injector,
        parent: undefined,
        root,
        depth: 0,
        child: undefined,
        children: undefined
      }
      add(root, top)
      return child(top, to, rootId)
    },
    lookup: (id) => nodes.get(id),
    extend: (node, name) => childNamed(node, name) ?? child(node, name, makeThreadId()),
    prune: (node) => node.parent,
    chain: (node) => {
      const names: Array<string> = []
      for (let n: ThreadNode | undefined = node; n !== undefined; n = n.parent) names.push(n.name)
      return names.reverse()
    },
    retain: (root) => {
      root.live++
    },
    release: (root) => {
      if (--root.live === 0 && !root.completed) complete(root)
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
  static readonly make: Effect.Effect<ThreadRegistry.Service> = Effect.sync(makeThreadRegistry)
  /** The embedded, in-process registry. */
  static readonly layerMemory: Layer.Layer<ThreadRegistry> = Layer.effect(ThreadRegistry, ThreadRegistry.make)
}
