/**
 * The limits of the conversation history (the ContextBuffer service): plain values, so the
 * organism (domain) can carry them without depending on the service that enforces them.
 */
import { Duration } from "effect"

export type ContextFullPolicy = "reject" | "drop-oldest"

export interface ContextBufferConfig {
  readonly maxSlotsPerThread: number
  readonly maxThreads: number
  readonly onFull: ContextFullPolicy
  /** Completed conversations kept queryable (0: dropped as soon as they complete). */
  readonly retainCompleted: number
  /** How long a completed conversation stays queryable. */
  readonly retainFor: Duration.Duration
}

export const defaultContextBufferConfig: ContextBufferConfig = {
  maxSlotsPerThread: 10_000,
  maxThreads: 1_000,
  // Refusing is loud; dropping would silently lose the start of a conversation (its task).
  // The step guard (1,000 invocations) normally stops a conversation long before 10,000.
  onFull: "reject",
  retainCompleted: 100,
  retainFor: Duration.hours(1)
}
