/**
 * Intake: the fiber that reads the inbox in chunks and hands them to delivery. Without
 * ingress workers every chunk is judged and delivered at once (`processChunk`). With them, a
 * chunk of `threshold` messages or more has its libxml2 stages run by a worker thread while
 * this thread delivers the chunk before it: chunks are delivered strictly in the order they
 * left the inbox, each judged by the version that was running when it left (a reload lands
 * between two chunks, as before). A chunk too small to be worth moving, or one the workers
 * gave back, is judged inline when its turn comes.
 */
import { Chunk, Effect, Option, Queue, Stream } from "effect"
import type { IngressOutcome } from "../Ingress.js"
import type { Front } from "../internal/IngressFront.js"
import type { XmlWorkers } from "../internal/XmlWorkers.js"
import type { Hop } from "./Hop.js"
import type { Version } from "./Version.js"

/** The most messages taken from the inbox at once. */
const MAX_CHUNK = 1024

interface Entry {
  readonly hops: ReadonlyArray<Hop>
  readonly version: Version
  /** The worker's results, when the chunk went to one. */
  readonly fronts: Effect.Effect<Option.Option<ReadonlyArray<Front>>> | undefined
}

export interface IntakeDelivery {
  readonly processChunk: (chunk: Chunk.Chunk<Hop>) => void
  readonly deliverJudged: (hops: ReadonlyArray<Hop>, outcomes: ReadonlyArray<IngressOutcome>, version: Version) => void
}

/** Reads the inbox forever, chunk by chunk (inline: no workers). */
export const inlineIntake = (inbox: Queue.Dequeue<Hop>, delivery: IntakeDelivery): Effect.Effect<void> =>
  Stream.fromQueue(inbox, { maxChunkSize: MAX_CHUNK }).pipe(
    Stream.runForEachChunk((chunk) => Effect.sync(() => delivery.processChunk(chunk)))
  )

const judgeInline = (e: Entry): ReadonlyArray<IngressOutcome> =>
  e.version.ingress.runBatch(e.hops.map((h) => h.input), e.version.routes, e.hops.map((h) => h.canonical))

/** Reads the inbox forever, with the workers judging the larger chunks. */
export const pipelinedIntake = (
  inbox: Queue.Dequeue<Hop>,
  delivery: IntakeDelivery,
  workers: XmlWorkers,
  currentVersion: () => Version
): Effect.Effect<never> =>
  Effect.gen(function*() {
    const queue: Array<Entry> = []
    const threshold = Math.max(1, workers.threshold)

    /** Sends a piece to a worker (it runs while this fiber goes on). */
    const submit = (hops: ReadonlyArray<Hop>, version: Version): Entry => ({
      hops,
      version,
      fronts: workers.start(version.workerVersion!, hops.map((h) => h.input), hops.map((h) => h.canonical))
    })

    const take = (hops: ReadonlyArray<Hop>) =>
      Effect.sync(() => {
        const version = currentVersion()
        if (hops.length < threshold || version.workerVersion === undefined) {
          queue.push({ hops, version, fronts: undefined })
          return
        }
        // Nothing else to deliver meanwhile: two pieces, so that this thread delivers the
        // first while a worker still works on the second.
        if (queue.length === 0 && hops.length >= 2 * threshold) {
          const half = Math.ceil(hops.length / 2)
          queue.push(submit(hops.slice(0, half), version))
          queue.push(submit(hops.slice(half), version))
          return
        }
        queue.push(submit(hops, version))
      })

    while (true) {
      // Wait for messages only when nothing is left to deliver.
      const chunk = queue.length === 0 ? yield* Queue.takeBetween(inbox, 1, MAX_CHUNK) : yield* Queue.takeUpTo(inbox, MAX_CHUNK)
      if (Chunk.size(chunk) > 0) yield* take(Chunk.toReadonlyArray(chunk))
      const head = queue.shift()
      if (head === undefined) continue
      let outcomes: ReadonlyArray<IngressOutcome>
      if (head.fronts === undefined) outcomes = judgeInline(head)
      else {
        const fronts = yield* head.fronts
        outcomes = Option.isSome(fronts)
          ? head.version.ingress.finish(
            head.hops.map((h) => h.input),
            fronts.value,
            head.version.routes,
            head.hops.map((h) => h.canonical),
            head.version.workerVersion!.schemaId
          )
          : judgeInline(head)
      }
      delivery.deliverJudged(head.hops, outcomes, head.version)
    }
  })
