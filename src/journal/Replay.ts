/**
 * Replay: sends a journal's input again, through a fresh organism, and compares the new run
 * with the recorded one (`compareRuns`).
 *
 * Only input is sent — envelopes from an injector (`injected`) and raw envelopes (`raw`),
 * in their recorded order, to their recorded receivers and from their recorded senders.
 * Everything else (replies, SystemErrors, rejections) must come out of the handlers again.
 *
 * The organism's own start-up is not sent: the fresh organism boots by itself (Boot to
 * `system.boot`, then its `boot:` messages). A journal marks where start-up ended (its
 * `booted` record); input before the mark is boot. A journal written without the mark
 * (a library run that never called `markBooted`) falls back to: Boot from `system`, then
 * the leading input that equals what the fresh organism sent while booting.
 *
 * Pacing: an input that reached a recorded organism with nothing in flight (every earlier
 * conversation had completed — a person typing at the console) is sent once the replay is
 * idle too; input that arrived while work was in flight is sent at once. So conversations
 * that did not overlap in the recording do not overlap in the replay.
 */
import { Effect, type Scope } from "effect"
import type { Organism } from "../domain/Organism.js"
import type { InjectError } from "../domain/PumpError.js"
import { RawPayload } from "../domain/Reply.js"
import { type PromptError, Pump, type PumpServices, SYSTEM } from "../pipeline/Pump.js"
import type { RouteTableError } from "../pipeline/Router.js"
import { Journal, type JournalContents, type JournalError } from "../services/Journal.js"
import type { SchemaCompileError } from "../services/XmlEngine.js"
import { type Comparison, compareRuns } from "./Compare.js"
import { analyse, type Hop, type Run } from "./Conversations.js"

export interface ReplayOptions {
  /** Also record the replay in a journal of its own. */
  readonly journal?: Journal.Options | undefined
}

export interface ReplayResult {
  readonly organism: string
  readonly comparison: Comparison
  /** Inputs sent again. */
  readonly inputs: number
  /** Recorded inputs recognised as the organism's own start-up (not sent again). */
  readonly boot: number
  readonly warnings: ReadonlyArray<string>
}

const utf8 = new TextEncoder()

/** The payload of an injected input, as the pump will write it again. */
const payloadOf = (hop: Hop): RawPayload | undefined => {
  const tag = hop.payloadType
  const xml = hop.payload
  if (tag === null || xml === null) return undefined
  const open = `<${tag}>`
  const close = `</${tag}>`
  if (!xml.startsWith(open) || !xml.endsWith(close) || xml.length < open.length + close.length) return undefined
  return new RawPayload({ tag, inner: xml.slice(open.length, xml.length - close.length) })
}

const sameInput = (a: Hop, b: Hop) =>
  a.from === b.from && a.to === b.to && a.payloadType === b.payloadType && a.payload === b.payload

/** The recorded inputs that were the organism's own start-up. */
export const bootInputs = (recorded: Run, freshBoot: ReadonlyArray<Hop>): ReadonlySet<Hop> => {
  const booted = recorded.booted
  if (booted !== undefined) return new Set(recorded.inputs.filter((h) => h.seq < booted))
  const boot = new Set<Hop>()
  const isBootMessage = (h: Hop) => h.from === SYSTEM && h.to === "system.boot"
  const rest = recorded.inputs.filter((h) => (isBootMessage(h) ? (boot.add(h), false) : true))
  const own = freshBoot.filter((h) => !isBootMessage(h))
  for (let i = 0; i < own.length && i < rest.length && sameInput(rest[i]!, own[i]!); i++) boot.add(rest[i]!)
  return boot
}

/**
 * For each input seq: was the recorded organism idle when it arrived? Idle means every
 * conversation and raw envelope that arrived earlier had settled before it.
 */
export const idleBefore = (run: Run): ((seq: number) => boolean) => {
  const spans: Array<readonly [number, number]> = []
  for (const c of run.conversations) {
    spans.push([c.hops[0]?.seq ?? c.firstSeq, c.ended?.seq ?? Infinity])
  }
  for (const h of run.inputs) if (h.origin === "raw") spans.push([h.seq, h.settledAt ?? Infinity])
  spans.sort((a, b) => a[0] - b[0])
  // The latest end among the spans started so far: idle when it lies before `seq`.
  const latestEnd: Array<number> = []
  for (const [, end] of spans) latestEnd.push(Math.max(end, latestEnd.at(-1) ?? -Infinity))
  return (seq) => {
    let lo = 0
    let hi = spans.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (spans[mid]![0] < seq) lo = mid + 1
      else hi = mid
    }
    return lo === 0 || latestEnd[lo - 1]! < seq
  }
}

const make = Effect.fn("Journal.replay")(function*<R>(journal: JournalContents, organism: Organism<R>, options?: ReplayOptions) {
  const recorded = analyse(journal.records)
  const warnings: Array<string> = [...journal.warnings]
  const name = organism.settings.name
  if (journal.header.organism !== name) {
    warnings.push(`the journal was written by organism "${journal.header.organism}", replayed with "${name}"`)
  }
  // Both recordings start before the pump, so the fresh organism's start-up is recorded.
  const memory = yield* Journal.memory(name)
  const file = options?.journal !== undefined ? yield* Journal.make(options.journal) : undefined
  const pump = yield* Pump.make(organism)
  yield* memory.markBooted
  if (file !== undefined) yield* file.markBooted

  const freshBoot = analyse(memory.records()).inputs
  const boot = bootInputs(recorded, freshBoot)
  const idle = idleBefore(recorded)
  let sent = 0
  for (const input of recorded.inputs) {
    if (boot.has(input)) continue
    if (idle(input.seq)) yield* pump.awaitIdle
    if (input.origin === "raw") {
      if (utf8.encode(input.envelope).length < input.size) {
        warnings.push(`raw input at line ${input.seq + 1}: only its first ${input.envelope.length} characters were recorded; sent as recorded`)
      }
      yield* pump.injectRaw(input.envelope)
    } else {
      const payload = payloadOf(input)
      if (payload === undefined || input.to === null || input.from === null) {
        warnings.push(`input at line ${input.seq + 1}: its payload cannot be read back; not sent`)
        continue
      }
      yield* pump.inject(input.to, payload, { from: input.from })
    }
    sent++
  }
  yield* pump.awaitIdle

  const replayed = analyse(memory.records())
  const replayedBooted = replayed.booted ?? Infinity
  const comparison = compareRuns(
    recorded,
    replayed,
    boot,
    new Set(replayed.inputs.filter((h) => h.seq < replayedBooted))
  )
  if (file !== undefined) yield* file.close
  const result: ReplayResult = { organism: name, comparison, inputs: sent, boot: boot.size, warnings }
  return result
})

/**
 * Replays `journal` through a fresh pump of `organism` (built in the current context, which
 * provides the pump's services and the handlers' requirements) and compares the runs.
 */
export const replay: <R>(
  journal: JournalContents,
  organism: Organism<R>,
  options?: ReplayOptions
) => Effect.Effect<
  ReplayResult,
  SchemaCompileError | RouteTableError | PromptError | InjectError | JournalError,
  R | PumpServices | Scope.Scope
> = make
