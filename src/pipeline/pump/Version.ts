/**
 * The running version of an organism: one immutable value holding everything the pump
 * derives from an organism — its settings, its listeners as the pump runs them, the route
 * table, the prompts, the ingress, the concurrency gates, its own stages and the limits of
 * the registries. A hot reload builds a whole new version and swaps it in one step between
 * two chunks; every part of the pump reads the current version and keeps no copy of it.
 */
import { type BudgetConfig, BudgetRegistry } from "../../services/BudgetRegistry.js"
import { type ContextBufferConfig, defaultContextBufferConfig } from "../../services/ContextBuffer.js"
import type { CustomStage, StagePoint } from "../../domain/CustomStage.js"
import type { Listener } from "../../domain/Listener.js"
import type { Organism, OrganismSettings } from "../../domain/Organism.js"
import type { PayloadType } from "../../domain/Payload.js"
import type { OutputVocabulary } from "../agents/AgentOutput.js"
import type { PromptRegistry } from "../../services/PromptRegistry.js"
import type { Ingress } from "../Ingress.js"
import type { Gate } from "../internal/Gate.js"
import type { WorkerVersion } from "../internal/XmlWorkers.js"
import type { ListenerEntry, Router } from "../Router.js"

/** The registries' limits a version asks for (applied when the version is swapped in). */
export interface Limits {
  readonly context: ContextBufferConfig
  readonly budgets: BudgetConfig
}

export interface Version {
  readonly organism: Organism<any>
  readonly settings: OrganismSettings
  /** The organism's listeners plus the built-in ones, agents bound to the model. */
  readonly listeners: ReadonlyArray<Listener>
  readonly routes: Router
  readonly prompts: PromptRegistry.Service
  readonly ingress: Ingress
  /** This version's schemas as the ingress workers compiled them (undefined: no workers). */
  readonly workerVersion: WorkerVersion | undefined
  /** The gates each listener's jobs pass (its own limit, its category). */
  readonly gates: ReadonlyMap<ListenerEntry, ReadonlyArray<Gate>>
  /** The capacity of every gate under this version. */
  readonly gateCapacity: ReadonlyMap<Gate, number>
  /** The organism's own stages, by the point they run at, in order. */
  readonly stages: Readonly<Record<StagePoint, ReadonlyArray<CustomStage>>>
  readonly limits: Limits
  /** What each agent can address (peer payload tags): derived on demand, once per version. */
  readonly vocabulary: (agent: string) => OutputVocabulary
}

/**
 * The registries' limits as an organism's settings and listeners ask for them: whole
 * configurations, so that a key a new version drops goes back to its default.
 */
export const limitsOf = (organism: Organism<any>): Limits => ({
  context: { ...defaultContextBufferConfig, ...organism.settings.context },
  budgets: BudgetRegistry.configFor(organism)
})

export const stagesByPoint = (stages: ReadonlyArray<CustomStage>): Version["stages"] => ({
  "after-decode": stages.filter((s) => s.at === "after-decode"),
  "before-dispatch": stages.filter((s) => s.at === "before-dispatch"),
  "before-reply": stages.filter((s) => s.at === "before-reply")
})

/** An agent's vocabulary under a route table: which peers take which payload tags. */
export const vocabularyOf = (routes: Router) => {
  const memo = new Map<string, OutputVocabulary>()
  return (agent: string): OutputVocabulary => {
    const key = agent.toLowerCase()
    let v = memo.get(key)
    if (v === undefined) {
      const peersByTag = new Map<string, Array<string>>()
      const typesByTag = new Map<string, PayloadType>()
      const peers: Array<string> = []
      for (const name of routes.listenerNamed(agent)?.listener.peers ?? []) {
        const peer = routes.listenerNamed(name)
        if (peer === undefined) continue
        peers.push(peer.listener.name)
        for (const tag of peer.types.keys()) peersByTag.set(tag, [...(peersByTag.get(tag) ?? []), peer.listener.name])
        for (const type of [peer.listener.payload, ...(peer.listener.accepts ?? [])]) typesByTag.set(type.payloadTag.toLowerCase(), type)
      }
      memo.set(key, v = { peers, peersByTag, typesByTag })
    }
    return v
  }
}
