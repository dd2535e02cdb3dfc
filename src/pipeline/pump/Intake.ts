/**
 * Intake: the fiber that reads the inbox in chunks and hands them to delivery. Without
 * ingress workers every chunk is judged and delivered at once (`processChunk`). With them, a
 * chunk of `threshold` messages or more has its libxml2 stages run by a worker thread while
 * this thread delivers the chunk before it: chunks are delivered strictly in the order they
 * left the inbox, each judged by the version that was running when it left (a reload lands
 * between two chunks, as before). A chunk too small to be worth moving, or one the workers
 * gave back, is judged inline when its turn comes.
 */
import { Effect, Option } from "effect"
import type { IngressOutcome } from "../Ingress.js"
import type { Front } from "../internal/IngressFront.js"
import type { Inbox } from "../internal/Inbox.js"
import type { Started, XmlWorkers } from "../internal/XmlWorkers.js"
import type { Hop } from "./Hop.js"
import type { Version } from "./Version.js"

/** The most messages taken from the inbox at once. */
const MAX_CHUNK = 1024

/** The largest piece a chunk is cut into for the workers. */
const MAX_PIECE = 64

/** A piece of the inbox on its way to delivery. */
interface Entry {
  readonly hops: ReadonlyArray<Hop>
  /** The version that judges it: the one running when it left the inbox. */
  readonly version: Version
  /** Judged inline at its turn (too small to move, or no worker could run it). */
  inline: boolean
  /** Its front stages' results, once known. */
  fronts: ReadonlyArray<Front> | undefined
  /** Sent to a worker. */
  started: Started | undefined
}

export interface IntakeDelivery {
  readonly processChunk: (hops: ReadonlyArray<Hop>) => void
  readonly deliverJudged: (hops: ReadonlyArray<Hop>, outcomes: ReadonlyArray<IngressOutcome>, version: Version) => void
}

/**
 * How much the inline intake delivers in one step of its fiber before it hands the thread
 * back to Effect's scheduler (other fibers: suspended handlers, subscribers, timers): about
 * what it did between two of the runtime's own yields when each chunk took several Effect
 * operations.
 */
const STEP_CHUNKS = 256
const STEP_MESSAGES = MAX_CHUNK

/**
 * Reads the inbox forever, chunk by chunk (inline: no workers). `afterChunk`, when given,
 * runs after each chunk is delivered (the host's I/O slice: IoFairness).
 *
 * Without it, the chunks already waiting are delivered in one synchronous step, up to
 * STEP_CHUNKS chunks or STEP_MESSAGES messages, then the fiber yields: with one conversation
 * every chunk holds one message (the reply the last chunk's handler wrote), and taking each
 * through Effect operations — `Stream.fromQueue` at first — cost more than the pump's own
 * bookkeeping for it. An empty inbox is waited for as an Effect (`Inbox.take`); a shut-down
 * one interrupts the fiber.
 */
export const inlineIntake = (inbox: Inbox<Hop>, delivery: IntakeDelivery, afterChunk: Effect.Effect<void> | undefined): Effect.Effect<never> => {
  // Loops are written out rather than `Effect.forever`, which yields to the scheduler after
  // every round: a scheduler turn per chunk of one message.
  if (afterChunk !== undefined) {
    const sliced: Effect.Effect<never> = Effect.flatMap(inbox.take(MAX_CHUNK), (hops) => {
      delivery.processChunk(hops)
      return Effect.flatMap(afterChunk, () => sliced)
    })
    return sliced
  }
  const step = Effect.flatMap(inbox.take(MAX_CHUNK), (first) => {
    delivery.processChunk(first)
    let messages = first.length
    for (let chunks = 1; chunks < STEP_CHUNKS && messages < STEP_MESSAGES; chunks++) {
      const hops = inbox.poll(MAX_CHUNK)
      // Nothing left: the next take waits for the inbox (other fibers run meanwhile).
      if (hops === undefined) return Effect.void
      delivery.processChunk(hops)
      messages += hops.length
    }
    return Effect.yieldNow()
  })
  const loop: Effect.Effect<never> = Effect.flatMap(step, () => loop)
  return loop
}

const inputsOf = (e: Entry) => e.hops.map((h) => h.input)
const knownOf = (e: Entry) => e.hops.map((h) => h.canonical)

/**
 * Reads the inbox forever, with the workers running the libxml2 stages of the larger chunks.
 * Larger chunks are cut into pieces; each worker holds at most two pieces at a time (one
 * running, one ready to run), and whenever this thread would otherwise wait for a worker it
 * runs the last piece not yet sent itself. Pieces are delivered strictly in order.
 */
export const pipelinedIntake = (
  inbox: Inbox<Hop>,
  delivery: IntakeDelivery,
  workers: XmlWorkers,
  currentVersion: () => Version,
  afterChunk: Effect.Effect<void>
): Effect.Effect<never> =>
  Effect.gen(function*() {
    const queue: Array<Entry> = []
    const threshold = Math.max(1, workers.threshold)
    const cap = 2 * workers.size

    const enqueue = (hops: ReadonlyArray<Hop>) => {
      const version = currentVersion()
      if (hops.length < threshold || version.workerVersion === undefined) {
        queue.push({ hops, version, inline: true, fronts: undefined, started: undefined })
        return
      }
      // Pieces small enough that this thread and the workers can share a chunk.
      const pieces = Math.max(1, Math.min(Math.floor(hops.length / threshold), Math.max(4, Math.ceil(hops.length / MAX_PIECE))))
      const size = Math.ceil(hops.length / pieces)
      for (let at = 0; at < hops.length; at += size) {
        queue.push({ hops: hops.slice(at, at + size), version, inline: false, fronts: undefined, started: undefined })
      }
    }

    /** Sends pieces, in order, while the workers have room. */
    const feed = () => {
      for (let i = 0; i < queue.length && workers.outstanding() < cap; i++) {
        const e = queue[i]!
        if (e.inline || e.fronts !== undefined || e.started !== undefined) continue
        e.started = workers.start(e.version.workerVersion!, inputsOf(e), knownOf(e))
      }
    }

    /** Runs the front stages of an entry here. */
    const runHere = (e: Entry) => {
      e.fronts = e.version.ingress.front(inputsOf(e), knownOf(e), e.version.workerVersion!.payloads)
    }

    /** Runs the last piece nobody has started; false when there is none. */
    const steal = (): boolean => {
      for (let i = queue.length - 1; i > 0; i--) {
        const e = queue[i]!
        if (!e.inline && e.fronts === undefined && e.started === undefined) {
          runHere(e)
          return true
        }
      }
      return false
    }

    while (true) {
      // Wait for messages only when nothing is left to deliver.
      const hops = queue.length === 0 ? yield* inbox.take(MAX_CHUNK) : inbox.poll(MAX_CHUNK)
      if (hops !== undefined) enqueue(hops)
      feed()
      const head = queue[0]
      if (head === undefined) continue
      if (!head.inline && head.fronts === undefined) {
        if (head.started === undefined) runHere(head)
        else {
          // This thread works too while the head's worker is busy.
          while (!head.started.done() && steal()) {
            // steal() did a piece
          }
          const fronts = yield* head.started.result
          if (Option.isSome(fronts)) head.fronts = fronts.value
          else head.inline = true
        }
      }
      queue.shift()
      // The workers get their next pieces before this thread turns to delivery.
      feed()
      const outcomes = head.inline
        ? head.version.ingress.runBatch(inputsOf(head), head.version.routes, knownOf(head))
        : head.version.ingress.finish(inputsOf(head), head.fronts!, head.version.routes, knownOf(head), head.version.workerVersion!.schemaId)
      delivery.deliverJudged(head.hops, outcomes, head.version)
      yield* afterChunk
    }
  })
