/**
 * Loop control of an agent, per conversation: when to stop (`stopWhen`), what counts as
 * going round in circles (`loopDetection`), and how often it may call each peer
 * (`peerLimits`). The LLM agent applies them to every answer of its model
 * (pipeline/agents/AgentLimits.ts); YAML spells them `stop_when`, `loop_detection`,
 * `peer_limits`.
 */
import { type Effect, Schema } from "effect"
import type { PayloadType } from "./Payload.js"

/** One payload of an answer, as it is sent. */
export interface AgentOutput {
  /** The payload's element name (`Search`, `TextOutput`). */
  readonly payloadType: string
  /** The peer it goes to, or `caller` for a response. */
  readonly to: string
  /** The payload element as XML. */
  readonly xml: string
}

/** What a stop condition sees after each answer of the agent's model. */
export interface StopContext {
  readonly agent: string
  /** The conversation (root thread). */
  readonly root: string
  /** The agent's answers in this conversation so far, this one included (from 1). */
  readonly step: number
  /** Tokens this agent spent in this conversation so far (every model call, retries included). */
  readonly usage: { readonly promptTokens: number; readonly completionTokens: number; readonly totalTokens: number }
  /** What this answer sends (empty when it sends nothing). */
  readonly lastOutputs: ReadonlyArray<AgentOutput>
  /** The model's answer as text. */
  readonly text: string
}

/** A stop condition of your own: true stops the agent. It may fail or throw: the agent then stops. */
export type StopHandler = (context: StopContext) => boolean | Effect.Effect<boolean, unknown>

/** Built-in conditions; given together, any one of them stops the agent. */
export interface StopWhenBuiltIn {
  /** An answer sends a payload of this type (or of one of these). */
  readonly produced?: string | PayloadType<any> | ReadonlyArray<string | PayloadType<any>> | undefined
  /** The agent has answered this many times in the conversation. */
  readonly steps?: number | undefined
  /** The agent has spent this many tokens (prompt + completion) in the conversation. */
  readonly tokens?: number | undefined
}

export type StopCondition = StopWhenBuiltIn | StopHandler

export interface LoopDetection {
  /** How many times in a row the same answer (or the same cycle of answers) makes a loop (default 3, at least 2). */
  readonly repeats?: number | undefined
  /** The longest cycle recognised: 1 is one answer repeated, 2 also A B A B… (default 2). */
  readonly maxPeriod?: number | undefined
  /**
   * `warn` (default): the repeating answer is not sent and the agent gets a SystemError
   * saying it repeats itself; `stop`: nothing more of the agent in this conversation.
   */
  readonly action?: "stop" | "warn" | undefined
}

export interface AgentLimits {
  readonly stopWhen?: StopCondition | ReadonlyArray<StopCondition> | undefined
  readonly loopDetection?: LoopDetection | undefined
  /** Peer name → the most calls to it per conversation; the next ones are refused (the agent hears why). */
  readonly peerLimits?: Readonly<Record<string, number>> | undefined
}

/** A stop handler that failed, threw or died: the agent stops with this as its reason. */
export class StopConditionFailed extends Schema.TaggedError<StopConditionFailed>()("StopConditionFailed", {
  agent: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `the stop condition of ${this.agent} failed: ${this.detail}`
  }
}
