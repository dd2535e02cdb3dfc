/**
 * Runs an organism's own stages (domain/CustomStage.ts) at one point of the pipeline. A stage
 * passes the payload on, replaces it with another value of the same payload type, or drops
 * the message; a stage that fails otherwise, throws, suspends, or returns a value of another
 * type is a rejection that names it. The result is a value, never an exception: the caller
 * settles a rejection like any other.
 */
import { Cause, Context, Effect, Either, Exit, Layer, Option } from "effect"
import type { CustomStage, StageMessage } from "../../domain/CustomStage.js"
import { InternalError, type Stage, StageRejected } from "../../domain/IngressError.js"
import { typeOfValue } from "../../domain/Payload.js"
import { RawPayload } from "../../domain/Reply.js"

const sameType = (a: unknown, b: unknown): boolean =>
  a instanceof RawPayload ? b instanceof RawPayload && a.tag === b.tag : typeOfValue(a) === typeOfValue(b)

/**
 * The payload after every stage, or why a stage refused it; `at` is the pipeline stage a
 * refusal is booked at ("stage" for messages, "outbox" for replies not yet written).
 */
export const runStages = (
  stages: ReadonlyArray<CustomStage>,
  message: StageMessage,
  at: Stage
): Either.Either<unknown, StageRejected | InternalError> => {
  let payload = message.payload
  for (const stage of stages) {
    let exit: Exit.Exit<unknown, unknown>
    try {
      exit = Effect.runSyncExit(stage.run(payload === message.payload ? message : { ...message, payload }))
    } catch (thrown) {
      exit = Exit.die(thrown)
    }
    if (Exit.isSuccess(exit)) {
      if (!sameType(exit.value, payload)) {
        return Either.left(
          new StageRejected({
            diagnostics: [],
            stage: at,
            name: stage.name,
            reason: `the stage returned a value that is not a <${message.payloadType}> payload`
          })
        )
      }
      payload = exit.value
      continue
    }
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure) && (failure.value as { _tag?: string })._tag === "StageDrop") {
      return Either.left(
        new StageRejected({ diagnostics: [], stage: at, name: stage.name, reason: (failure.value as { reason: string }).reason })
      )
    }
    // A stage that suspends ends here too: runSyncExit reports it as a defect.
    const detail = Cause.pretty(exit.cause).split("\n")[0] ?? "failed"
    return Either.left(new InternalError({ diagnostics: [], stage: at, detail: `stage ${stage.name}: ${detail}` }))
  }
  return Either.right(payload)
}

/** Stages provided from a Layer: they run before the organism's own, at each point. */
export class CustomStages extends Context.Tag("xml-organism/CustomStages")<CustomStages, ReadonlyArray<CustomStage>>() {
  static readonly layer = (stages: ReadonlyArray<CustomStage>): Layer.Layer<CustomStages> => Layer.succeed(CustomStages, stages)
}
