/**
 * An organism's own pipeline stage: code that sees every message at a named point of the
 * pipeline, typed by its payload, and lets it pass, replaces its payload (redaction), or drops
 * it with a reason. A dropped message is rejected like any other (`StageRejected`): a dead
 * letter, an event, and its sender hears why.
 *
 * - `after-decode`: every message once it is decoded, before guards and history.
 * - `before-dispatch`: a message that passed the guards, before it is recorded and handed to
 *   its listeners (`to` lists them).
 * - `before-reply`: every payload a handler replies with, before the pump writes it.
 */
import { Effect, Schema } from "effect"

export const StagePoint = Schema.Literal("after-decode", "before-dispatch", "before-reply")
export type StagePoint = typeof StagePoint.Type

/** What a stage sees of a message. */
export interface StageMessage {
  readonly from: string
  /** The receiver; several for a broadcast or a message with several listeners. */
  readonly to: ReadonlyArray<string>
  /** The thread the message travels on. */
  readonly thread: string
  readonly payloadType: string
  /** The typed payload (an instance of its `Payload.Class`, or a RawPayload). */
  readonly payload: unknown
}

/** A stage refuses a message: it is rejected with this reason. */
export class StageDrop extends Schema.TaggedError<StageDrop>()("StageDrop", { reason: Schema.String }) {}

export interface CustomStage {
  readonly name: string
  readonly at: StagePoint
  /**
   * Returns the payload to carry on with (the same value, or a replacement of the same
   * type), or fails with `StageDrop`. It must complete synchronously: a stage runs inside the
   * pump's loop, between two messages.
   */
  readonly run: (message: StageMessage) => Effect.Effect<unknown, StageDrop>
}

export const CustomStage = {
  make: (options: CustomStage): CustomStage => options,
  /**
   * A stage from a plain function (what an organism file names): it returns the payload to
   * carry on with, or an Effect of it; a `StageDrop` failure (or a thrown one) drops.
   */
  fromFunction: (name: string, at: StagePoint, f: (message: StageMessage) => unknown): CustomStage => ({
    name,
    at,
    run: (message) =>
      Effect.suspend(() => {
        const result = f(message)
        return Effect.isEffect(result) ? (result as Effect.Effect<unknown, StageDrop>) : Effect.succeed(result)
      })
  }),
  /** A stage that only looks (an audit log): every message passes unchanged. */
  tap: (name: string, at: StagePoint, f: (message: StageMessage) => void): CustomStage => ({
    name,
    at,
    run: (message) => Effect.sync(() => (f(message), message.payload))
  }),
  /** Drops with `reason` the messages for which `refuse` returns a reason. */
  drop: (name: string, at: StagePoint, refuse: (message: StageMessage) => string | undefined): CustomStage => ({
    name,
    at,
    run: (message) =>
      Effect.suspend(() => {
        const reason = refuse(message)
        return reason === undefined ? Effect.succeed(message.payload) : Effect.fail(new StageDrop({ reason }))
      })
  })
} as const
