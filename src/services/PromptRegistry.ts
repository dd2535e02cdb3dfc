/**
 * PromptRegistry: every agent's system prompt — its own prompt from config, followed by
 * usage instructions generated from its peers (description, example document and XSD of
 * the payload each accepts, and what calling and responding do to the call chain).
 *
 * Listeners are registered while the organism is assembled, then `freeze()` checks that
 * every agent's peers exist and renders each agent's prompt once. After that, prompts are
 * read-only (they are part of what makes a run reproducible) and registering fails with
 * {@link PromptRegistryFrozen}.
 *
 * The service is Effect-shaped; the pump reads prompts on every agent invocation through the
 * synchronous `unsafe*` twins (like `Queue.unsafeOffer`).
 */
import { Context, Effect, Either, Layer, Option } from "effect"
import { closest } from "../config/suggest.js"
import type { Listener } from "../domain/Listener.js"
import { DuplicateListener, PromptConfigError, PromptRegistryFrozen, UnknownPeer } from "./errors.js"
import { type PeerUsage, peerUsage, usageInstructions } from "./internal/usageInstructions.js"

export { DuplicateListener, PromptConfigError, PromptRegistryFrozen, UnknownPeer } from "./errors.js"
export type { PeerUsage } from "./internal/usageInstructions.js"

export interface AgentPrompt {
  readonly agent: string
  /** The agent's own prompt from config ("" when it has none). */
  readonly prompt: string
  /** The generated part: how to communicate, and each peer. */
  readonly usage: string
  /** `prompt` then `usage`: the system prompt to send. */
  readonly system: string
  readonly peers: ReadonlyArray<PeerUsage>
}

export declare namespace PromptRegistry {
  export interface Service {
    readonly register: (listener: Listener) => Effect.Effect<void, PromptRegistryFrozen | DuplicateListener>
    /** Checks every agent's peers and renders every agent's prompt; idempotent. */
    readonly freeze: () => Effect.Effect<void, PromptConfigError>
    readonly isFrozen: Effect.Effect<boolean>
    /**
     * The agent's prompt (none for unknown names and non-agents). Before `freeze` it is
     * rendered on each call, leaving out peers not registered yet.
     */
    readonly promptFor: (agent: string) => Effect.Effect<Option.Option<AgentPrompt>>
    /** Registered agents, in registration order. */
    readonly agents: Effect.Effect<ReadonlyArray<string>>

    // The synchronous twins.
    readonly unsafeRegister: (listener: Listener) => Either.Either<void, PromptRegistryFrozen | DuplicateListener>
    readonly unsafeIsFrozen: () => boolean
    /** Undefined for unknown names and non-agents. */
    readonly unsafePromptFor: (agent: string) => AgentPrompt | undefined
    readonly unsafeAgents: () => ReadonlyArray<string>
  }
}

const render = (agent: Listener, peers: ReadonlyArray<Listener>): AgentPrompt => {
  const usages = peers.map(peerUsage)
  const prompt = agent.prompt?.trim() ?? ""
  const usage = usageInstructions(agent, usages)
  return { agent: agent.name, prompt, usage, system: prompt === "" ? usage : `${prompt}\n\n${usage}`, peers: usages }
}

export const makePromptRegistry = (): PromptRegistry.Service => {
  const listeners = new Map<string, Listener>()
  let frozen: Map<string, AgentPrompt> | undefined

  const peersOf = (agent: Listener): Array<Listener> =>
    (agent.peers ?? []).flatMap((p) => {
      const l = listeners.get(p.toLowerCase())
      return l === undefined ? [] : [l]
    })

  const unsafeRegister: PromptRegistry.Service["unsafeRegister"] = (listener) => {
    if (frozen !== undefined) return Either.left(new PromptRegistryFrozen({ listener: listener.name }))
    const key = listener.name.toLowerCase()
    if (listeners.has(key)) return Either.left(new DuplicateListener({ listener: listener.name }))
    listeners.set(key, listener)
    return Either.void
  }

  const freeze = Effect.fn("PromptRegistry.freeze")(function*() {
    if (frozen !== undefined) return
    const names = [...listeners.values()].map((l) => l.name)
    const unknown: Array<UnknownPeer> = []
    for (const l of listeners.values()) {
      if (!l.agent) continue
      for (const peer of l.peers ?? []) {
        if (listeners.has(peer.toLowerCase())) continue
        const suggestion = closest(peer, names)
        unknown.push(new UnknownPeer({ agent: l.name, peer, ...(suggestion !== undefined ? { suggestion } : {}) }))
      }
    }
    if (unknown.length > 0) return yield* new PromptConfigError({ unknownPeers: unknown })
    const prompts = new Map<string, AgentPrompt>()
    for (const [key, l] of listeners) if (l.agent) prompts.set(key, render(l, peersOf(l)))
    frozen = prompts
  })

  const unsafePromptFor: PromptRegistry.Service["unsafePromptFor"] = (agent) => {
    const key = agent.toLowerCase()
    if (frozen !== undefined) return frozen.get(key)
    const l = listeners.get(key)
    return l === undefined || !l.agent ? undefined : render(l, peersOf(l))
  }

  const unsafeAgents: PromptRegistry.Service["unsafeAgents"] = () =>
    [...listeners.values()].filter((l) => l.agent).map((l) => l.name)

  return {
    register: (listener) => Effect.suspend(() => unsafeRegister(listener)),
    freeze,
    isFrozen: Effect.sync(() => frozen !== undefined),
    promptFor: (agent) => Effect.sync(() => Option.fromNullable(unsafePromptFor(agent))),
    agents: Effect.sync(unsafeAgents),
    unsafeRegister,
    unsafeIsFrozen: () => frozen !== undefined,
    unsafePromptFor,
    unsafeAgents
  }
}

export class PromptRegistry extends Context.Tag("xml-organism/PromptRegistry")<PromptRegistry, PromptRegistry.Service>() {
  /** An empty, unfrozen registry. */
  static readonly make: Effect.Effect<PromptRegistry.Service> = Effect.sync(makePromptRegistry)

  /** Registers the listeners and freezes: the registry an organism runs with. */
  static readonly fromListeners = Effect.fn("PromptRegistry.fromListeners")(function*(
    listeners: ReadonlyArray<Listener>
  ) {
    const registry = makePromptRegistry()
    for (const l of listeners) yield* registry.register(l)
    yield* registry.freeze()
    return registry
  })

  /** The embedded registry, empty and unfrozen. */
  static readonly layerMemory: Layer.Layer<PromptRegistry> = Layer.effect(PromptRegistry, PromptRegistry.make)

  /** The embedded registry built from an organism's listeners, frozen. */
  static readonly layerFromListeners = (
    listeners: ReadonlyArray<Listener>
  ): Layer.Layer<PromptRegistry, PromptConfigError | DuplicateListener | PromptRegistryFrozen> =>
    Layer.effect(PromptRegistry, PromptRegistry.fromListeners(listeners))
}
