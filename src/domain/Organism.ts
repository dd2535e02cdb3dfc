/**
 * An organism in code: settings, listeners, and the messages sent when it boots.
 * Build one with `Organism.make`, or load one from YAML with `loadOrganism`.
 */
import { Duration } from "effect"
import type { ContextBufferConfig } from "./ContextBufferConfig.js"
import type { CustomStage } from "./CustomStage.js"
import { defaultIngressConfig, type IngressConfig } from "./IngressConfig.js"
import { Listener } from "./Listener.js"
import type { WireMode } from "./Payload.js"
import type { PayloadValue } from "./Reply.js"
import { Boot } from "./SystemPayloads.js"

export interface Guards {
  /** Hops a chain may grow to before a forward is stopped. */
  readonly maxChainDepth: number
  /** Handler invocations per root thread (the step cap for all listeners). */
  readonly maxInvocationsPerThread: number
  /** Agent invocations per root thread (the agent step cap). */
  readonly maxAgentSteps: number
  /** An agent sending an identical payload to the same target this many times in a row is stopped. */
  readonly loopThreshold: number
  /** Wall-clock limit of a root thread: later deliveries are stopped. */
  readonly maxThreadDuration: Duration.Duration
}

export interface OrganismSettings {
  readonly name: string
  /** The name console lines, `inject` and `request` send from by default. */
  readonly injector: string
  /** Handlers running at once, organism-wide. */
  readonly maxConcurrentHandlers: number
  /** Concurrent invocations of one agent (unless the listener sets its own). */
  readonly maxConcurrentPerAgent: number
  /** External messages (inject, injectRaw) in flight before producers wait. */
  readonly inboxCapacity: number
  /** Per-invocation deadline of a handler that sets none. */
  readonly handlerTimeout: Duration.Duration
  readonly guards: Guards
  readonly ingress: IngressConfig
  /** Rejected messages kept for inspection. */
  readonly deadLetterCapacity: number
  /** Token budget of one conversation, shared by its agents (Infinity: unlimited). */
  readonly maxTokensPerThread: number
  /** Limits of the conversation history (see ContextBuffer). */
  readonly context: Partial<ContextBufferConfig>
  /**
   * How payloads are written and read: `native`, or `xmlify` to exchange envelopes with a
   * Python xml-pipeline organism. A payload type declared with its own `wire` keeps it.
   */
  readonly wire: WireMode
}

export const defaultSettings: OrganismSettings = {
  name: "organism",
  injector: "console",
  maxConcurrentHandlers: 32,
  maxConcurrentPerAgent: 5,
  inboxCapacity: 1000,
  handlerTimeout: Duration.seconds(30),
  guards: {
    maxChainDepth: 50,
    maxInvocationsPerThread: 1000,
    maxAgentSteps: 25,
    loopThreshold: 3,
    maxThreadDuration: Duration.minutes(10)
  },
  ingress: defaultIngressConfig,
  deadLetterCapacity: 1000,
  maxTokensPerThread: 100_000,
  context: {},
  wire: "native"
}

/** A message the organism sends (from its injector) once it has started. */
export interface BootMessage {
  readonly to: string
  readonly payload: PayloadValue
}

export interface Organism<R = never> {
  readonly settings: OrganismSettings
  readonly listeners: ReadonlyArray<Listener<any, R>>
  readonly boot: ReadonlyArray<BootMessage>
  /** The organism's own pipeline stages (redaction, audit, policy), in order. */
  readonly stages: ReadonlyArray<CustomStage>
}

/** The listener that receives `Boot` at start; it ends the boot thread. */
export const bootListener: Listener<Boot> = Listener.make({
  name: "system.boot",
  payload: Boot,
  description: "receives Boot when the organism starts",
  handler: () => undefined
})

export interface OrganismOptions<R> {
  readonly name?: string
  readonly settings?: Partial<Omit<OrganismSettings, "guards" | "ingress">> & {
    readonly guards?: Partial<Guards>
    readonly ingress?: Partial<IngressConfig>
  }
  readonly listeners: ReadonlyArray<Listener<any, R>>
  readonly boot?: ReadonlyArray<BootMessage>
  readonly stages?: ReadonlyArray<CustomStage>
}

export const Organism = {
  make: <R = never>(options: OrganismOptions<R>): Organism<R> => {
    const s = options.settings ?? {}
    const settings: OrganismSettings = {
      ...defaultSettings,
      ...s,
      name: options.name ?? s.name ?? defaultSettings.name,
      guards: { ...defaultSettings.guards, ...s.guards },
      ingress: { ...defaultSettings.ingress, ...s.ingress }
    }
    const listeners = options.listeners.some((l) => l.name === bootListener.name)
      ? options.listeners
      : [...options.listeners, bootListener as Listener<any, R>]
    return { settings, listeners, boot: options.boot ?? [], stages: options.stages ?? [] }
  }
} as const
