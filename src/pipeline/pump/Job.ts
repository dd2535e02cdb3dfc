/**
 * One handler invocation, from routing to completion. A job holds its own lease — the node
 * its handler runs on and the producer's permit — from the moment its message settles as
 * delivered until the job finishes (pump/Dispatcher.ts), however it finishes.
 */
import type { Fiber } from "effect"
import type { Gate } from "../internal/Gate.js"
import type { Timer } from "../internal/TimeoutWheel.js"
import type { ListenerEntry } from "../Router.js"
import type { ThreadNode } from "../../services/ThreadRegistry.js"
import type { Permit } from "../internal/Permits.js"
import type { Version } from "./Version.js"

export interface Job {
  readonly entry: ListenerEntry
  /** The version of the organism the job was routed by; it finishes on it. */
  readonly version: Version
  readonly payload: unknown
  /** A payload the listener accepts implicitly (SystemError…): its onSystem handler runs. */
  readonly system: boolean
  readonly node: ThreadNode
  readonly from: string
  /** The message's diagnostics (repairs, a replaced thread id), for the handler. */
  readonly diagnostics: ReadonlyArray<string>
  readonly permit: Permit | undefined
  readonly gates: ReadonlyArray<Gate>
  /** Finished (completed, failed or timed out): the first of these wins. */
  done: boolean
  timer: Timer | undefined
  /** The fiber of a handler that suspended. */
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  startedAt: number
  /** Payload types written for this job's reply (only kept while events are observed). */
  replies: Array<string> | undefined
  /** (target, payload) pairs this invocation already counted for loop detection. */
  loopSeen: Set<string> | undefined
  /** The sending listener's hop, when the pump wrote the message (a reply: the hop it answers from). */
  readonly sender: ThreadNode | undefined
}

export const makeJob = (
  entry: ListenerEntry,
  version: Version,
  payload: unknown,
  system: boolean,
  node: ThreadNode,
  from: string,
  diagnostics: ReadonlyArray<string>,
  permit: Permit | undefined,
  gates: ReadonlyArray<Gate>,
  sender?: ThreadNode | undefined
): Job => ({
  sender,
  entry,
  version,
  payload,
  system,
  node,
  from,
  diagnostics,
  permit,
  gates,
  done: false,
  timer: undefined,
  fiber: undefined,
  startedAt: 0,
  replies: undefined,
  loopSeen: undefined
})
