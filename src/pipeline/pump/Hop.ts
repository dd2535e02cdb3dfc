/**
 * A message in flight is a value: a `Hop`. It holds what it needs to travel — its input, the
 * node it travels on when the pump wrote it — and a `Lease` on what must be given back when
 * it ends: the thread node it keeps live and the producer's permit. Every hop ends in exactly
 * one `Outcome`, booked by `settle` (pump/Lifecycle.ts), the only place that gives a lease back.
 */
import { Data } from "effect"
import type { IngressError } from "../../domain/IngressError.js"
import type { RootThread, ThreadNode } from "../../services/ThreadRegistry.js"
import type { Seen } from "../Ingress.js"
import type { Permit } from "../internal/Permits.js"
import type { Job } from "./Job.js"

export type { Permit } from "../internal/Permits.js"

/** Where a message the pump wrote travels, and who hears if it is refused. */
export interface Origin {
  /** The node this message travels on (the receiver's end of the chain). */
  readonly node: ThreadNode
  /** Where a bounce goes if the message is rejected: the sending listener's node. */
  readonly senderNode: ThreadNode | undefined
  /** Written by the pump for itself (SystemErrors): never bounced. */
  readonly system: boolean
}

/**
 * What a hop holds until it settles. `node` is known from the start for a message the pump
 * wrote; a message from outside finds its thread while it is judged (`Lease.hold`).
 */
export interface Lease {
  node: ThreadNode | undefined
  readonly permit: Permit | undefined
  /**
   * The watched branch this message answers (a reply to the node it was forwarded from):
   * held live until the message settles, so that the branch cannot end before its answer
   * is known to have arrived (pump/Branches.ts).
   */
  branch?: ThreadNode | undefined
}

export interface Hop {
  /** Raw bytes from outside, or the envelope text the pump wrote. */
  readonly input: Uint8Array | string
  /** The input is known to be in canonical form (an envelope the pump wrote around canonical content). */
  readonly canonical: boolean
  /** Present when the pump wrote the envelope (trusted routing facts). */
  readonly origin: Origin | undefined
  readonly lease: Lease
}

/** How a hop ends. */
export type Outcome = Data.TaggedEnum<{
  /** Handed to its handler(s), or back to its injector. The jobs take over the hop's lease. */
  Delivered: { readonly jobs: ReadonlyArray<Job>; readonly answer: Answer | undefined }
  /** Refused by a stage: it becomes a dead letter, and its sender hears why. */
  Rejected: { readonly rejection: Rejection }
  /** Stopped by a guard: an event, and its sender hears which guard. */
  GuardStopped: {
    readonly guard: string
    readonly detail: string
    readonly listener: string | null
    /** What the sender is told, when more than the guard and its detail. */
    readonly notice: string | undefined
    /** For the loop guard: the edge that looped, `sender → target`. */
    readonly edge?: string | undefined
  }
}>

// Read once: `Data.taggedEnum` is a Proxy that builds a constructor on every property read,
// and every hop makes an Outcome.
const tagged = Data.taggedEnum<Outcome>()

export const Outcome: typeof tagged = {
  Delivered: tagged.Delivered,
  Rejected: tagged.Rejected,
  GuardStopped: tagged.GuardStopped,
  $is: tagged.$is,
  $match: tagged.$match
}

/** A payload that came back to a conversation's injector (it answers a waiting request). */
export interface Answer {
  readonly root: RootThread
  readonly payload: unknown
}

/** Why a hop was refused, with what was seen of it for the dead letter. */
export interface Rejection {
  readonly error: IngressError
  readonly seen: Seen
  /** The message as text (canonical when it got that far). */
  readonly text: string
  readonly diagnostics: ReadonlyArray<string>
}
