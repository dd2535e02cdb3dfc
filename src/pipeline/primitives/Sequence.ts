/**
 * `system.sequence`: runs steps in order, each step's reply becoming the next step's input,
 * and answers SequenceComplete (every step's reply) or SequenceError (which step, why).
 *
 * Every SequenceStart arrives on a hop of its own, so the run is keyed by that thread: each
 * step is forwarded from it and responds back to it. A step that fails comes back as a
 * SystemError; a step that ends its branch without replying is noticed when nothing is live
 * below the run's thread any more.
 */
import { Effect, Either } from "effect"
import type { ThreadId } from "../../domain/Ids.js"
import { type HandlerMetadata, Listener } from "../../domain/Listener.js"
import { SequenceComplete, SequenceError, SequenceStart } from "../../domain/PrimitivePayloads.js"
import { type PayloadValue, Reply } from "../../domain/Reply.js"
import { SystemError } from "../../domain/SystemPayloads.js"
import { Conversation } from "../Conversation.js"
import { payloadFromXml } from "./payloadFromXml.js"

export const SEQUENCE = "system.sequence"

interface Run {
  readonly steps: ReadonlyArray<string>
  readonly returnTo: string | undefined
  index: number
  readonly results: Array<string>
  active: boolean
}

export const sequenceListener = () => {
  const runs = new Map<ThreadId, Run>()

  const finish = (run: Run, thread: ThreadId, result: SequenceComplete | SequenceError): Reply => {
    run.active = false
    runs.delete(thread)
    return run.returnTo === undefined ? Reply.respond(result) : Reply.forward(run.returnTo, result)
  }

  const start = (request: SequenceStart, meta: HandlerMetadata) =>
    Effect.gen(function*() {
      const first = payloadFromXml(request.payload)
      const run: Run = { steps: request.steps, returnTo: request.returnTo, index: 0, results: [], active: true }
      if (Either.isLeft(first)) {
        return finish(run, meta.thread, new SequenceError({ failedStep: "", index: -1, error: `payload: ${first.left}` }))
      }
      const conversation = yield* Conversation
      runs.set(meta.thread, run)
      yield* conversation.onComplete(() => runs.delete(meta.thread))
      yield* conversation.onBranchEnd((reply) => {
        if (!run.active) return
        const step = run.steps[run.index]!
        reply(finish(run, meta.thread, new SequenceError({ failedStep: step, index: run.index, error: `${step} ended without a reply` })))
      })
      return Reply.forward(run.steps[0]!, first.right)
    })

  const step = (payload: PayloadValue, meta: HandlerMetadata) => Effect.map(Conversation, (conversation) => stepWith(payload, meta, conversation))

  const stepWith = (payload: PayloadValue, meta: HandlerMetadata, conversation: Conversation.Service): Reply => {
    const run = runs.get(meta.thread)
    if (run === undefined || !run.active) return Reply.none // a late reply after the run ended
    const current = run.steps[run.index]!
    if (payload instanceof SystemError) {
      return finish(run, meta.thread, new SequenceError({ failedStep: current, index: run.index, error: payload.message }))
    }
    run.results.push(conversation.xmlOf(payload))
    run.index++
    if (run.index === run.steps.length) return finish(run, meta.thread, new SequenceComplete({ results: run.results }))
    return Reply.forward(run.steps[run.index]!, payload)
  }

  return Listener.make({
    name: SEQUENCE,
    payload: SequenceStart,
    acceptsAny: true,
    description: "Runs steps in order; each step's reply is the next step's input. Replies SequenceComplete or SequenceError.",
    handler: (payload, meta) => (payload instanceof SequenceStart ? start(payload, meta) : step(payload, meta)),
    onSystem: (error, meta) => step(error, meta)
  })
}
