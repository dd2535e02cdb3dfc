/**
 * Journal: an append-only JSON-lines file of every message's lifecycle — received,
 * dispatched, acknowledged, failed, threads created and completed, model calls — with the envelopes'
 * text, thread and root ids, times and listeners (see `JournalRecord`). A header comes
 * first, a `booted` line once the organism has started, a `closed` line last.
 *
 * Durability. Each record is written with one `writeSync` on the file descriptor, from
 * inside the pump's `publish` (`Events.observe`), before the pump goes on. Nothing waits in
 * a buffer or a queue, so a process that dies — a crash, `kill -9`, running out of memory —
 * loses at most the record being written, and a reader recognises and drops a cut last
 * line. The price is a system call per record on the pump's path (a few µs), paid only
 * while a journal is open. There is no fsync per record: what `writeSync` returned is in the
 * operating system's cache and survives the process; only an OS crash or power cut can lose
 * the last seconds, and an fsync per message (≈ milliseconds on a disk) would bound the whole
 * organism by the disk. The file is fsynced once, when the journal is closed.
 */
import { Context, Effect, Layer, ParseResult, Schema, type Scope } from "effect"
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs"
import { readFile } from "node:fs/promises"
import {
  Acknowledged,
  Booted,
  Closed,
  Dispatched,
  GuardStop,
  HandlerFailure,
  Header,
  JOURNAL_FORMAT,
  JOURNAL_VERSION,
  micros,
  ModelCallCompleted,
  ModelCallFailed,
  ModelCallStarted,
  type JournalRecord,
  Received,
  recordOf,
  Rejected,
  ThreadEnded,
  ThreadStarted
} from "../domain/JournalRecord.js"
import type { PumpEvent } from "../domain/PumpEvent.js"
import { Events } from "./Events.js"

export class JournalError extends Schema.TaggedError<JournalError>()("JournalError", {
  path: Schema.String,
  message: Schema.String
}) {}

/** What `Journal.read` found: the records in order, whether the run closed the journal. */
export interface JournalContents {
  readonly path: string
  readonly header: Header
  readonly records: ReadonlyArray<JournalRecord>
  /** A `closed` record ends the file: the run finished writing it. */
  readonly complete: boolean
  readonly warnings: ReadonlyArray<string>
}

export declare namespace Journal {
  export interface Options {
    readonly path: string
    /** The organism's name, for the header. */
    readonly organism: string
    /** The organism file the run was started from, for the header. */
    readonly source?: string | undefined
  }

  export interface Service {
    readonly path: string
    /**
     * Marks the end of the organism's own start-up (Boot, the `boot:` messages): call it
     * when `Pump.make` has returned, before sending anything. Replays skip what came before.
     */
    readonly markBooted: Effect.Effect<void>
    /** Lines written so far, the header included. */
    readonly written: () => number
    /**
     * Writes the `closed` line, syncs and closes the file; later events are not recorded.
     * Fails when a write failed (the journal is incomplete). Closing twice does nothing.
     */
    readonly close: Effect.Effect<void, JournalError>
    /**
     * Closes the journal of a run stopped with work in flight: the `closed` line says why
     * (`stopped`), so readers know that what has no outcome was interrupted.
     */
    readonly closeStopped: (reason: string) => Effect.Effect<void, JournalError>
  }
}

/** Epoch milliseconds with a fraction, on the same clock as the pump's event times. */
const clockMillis = Effect.map(Effect.clock, (clock) => () => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000)

/**
 * Numbers records and hands each to `write` as it happens: the header at once, then every
 * lifecycle event inside `publish`. Shared by the file journal and in-memory recordings.
 */
const record = (organism: string, source: string | undefined, write: (record: JournalRecord) => void) =>
  Effect.gen(function*() {
    const events = yield* Events
    const now = yield* clockMillis
    let seq = 0
    const started = now()
    write(
      new Header({
        type: "header",
        seq: seq++,
        time: micros(started),
        format: JOURNAL_FORMAT,
        version: JOURNAL_VERSION,
        organism,
        startedAt: new Date(started).toISOString(),
        source: source ?? null
      }, true)
    )
    yield* events.observe((event: PumpEvent) => {
      const r = recordOf(seq, event)
      if (r === undefined) return
      seq++
      write(r)
    })
    return {
      booted: () => write(new Booted({ type: "booted", seq: seq++, time: micros(now()) }, true)),
      closed: (stopped?: string) =>
        write(new Closed({ type: "closed", seq: seq++, time: micros(now()), ...(stopped === undefined ? {} : { stopped }) }, true))
    }
  })

const writeAll = (fd: number, text: string) => {
  const bytes = Buffer.from(text)
  for (let offset = 0; offset < bytes.length;) offset += writeSync(fd, bytes, offset, bytes.length - offset)
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e))

const make = Effect.fn("Journal.make")(function*(options: Journal.Options) {
  const path = options.path
  const fd = yield* Effect.try({
    try: () => openSync(path, "w"),
    catch: (e) => new JournalError({ path, message: `cannot open: ${messageOf(e)}` })
  })
  let open = true
  let failure: JournalError | undefined
  let lines = 0
  const write = (r: JournalRecord) => {
    if (!open || failure !== undefined) return
    try {
      writeAll(fd, `${JSON.stringify(r)}\n`)
      lines++
    } catch (e) {
      // Never thrown into the pump: the journal stops and `close` reports it.
      failure = new JournalError({ path, message: `write failed after ${lines} lines: ${messageOf(e)}` })
    }
  }
  const recorder = yield* record(options.organism, options.source, write)

  const closeWith = (stopped: string | undefined): Effect.Effect<void, JournalError> => Effect.suspend(() => {
    if (!open) return failure === undefined ? Effect.void : Effect.fail(failure)
    recorder.closed(stopped)
    open = false
    try {
      fsyncSync(fd)
      closeSync(fd)
    } catch (e) {
      failure ??= new JournalError({ path, message: `cannot close: ${messageOf(e)}` })
    }
    return failure === undefined ? Effect.void : Effect.fail(failure)
  })
  const close = closeWith(undefined)
  // Whatever way the scope ends (Ctrl-C included), the last records are on disk.
  yield* Effect.addFinalizer(() => Effect.ignore(close))

  const service: Journal.Service = {
    path,
    markBooted: Effect.sync(recorder.booted),
    written: () => lines,
    close,
    closeStopped: closeWith
  }
  return service
})

/** A recording kept in memory (replay compares one with a journal read from a file). */
export interface MemoryRecording {
  readonly records: () => ReadonlyArray<JournalRecord>
  readonly markBooted: Effect.Effect<void>
}

const memory = (organism: string): Effect.Effect<MemoryRecording, never, Events | Scope.Scope> =>
  Effect.gen(function*() {
    const records: Array<JournalRecord> = []
    const recorder = yield* record(organism, undefined, (r) => records.push(r))
    return { records: () => records, markBooted: Effect.sync(recorder.booted) }
  })

// --- reading ---------------------------------------------------------------------------

const schemaOf = (value: unknown): Schema.Schema<any, any> | string => {
  const v = value as { type?: unknown; failure?: unknown; step?: unknown }
  switch (v?.type) {
    case "header":
      return Header
    case "booted":
      return Booted
    case "received":
      return Received
    case "dispatched":
      return Dispatched
    case "acknowledged":
      return Acknowledged
    case "failed":
      return v.failure === "rejected"
        ? Rejected
        : v.failure === "handler"
        ? HandlerFailure
        : v.failure === "guard"
        ? GuardStop
        : `a "failed" record needs failure "rejected", "handler" or "guard", got ${JSON.stringify(v.failure)}`
    case "thread-created":
      return ThreadStarted
    case "thread-completed":
      return ThreadEnded
    case "model-call":
      return v.step === "started"
        ? ModelCallStarted
        : v.step === "completed"
        ? ModelCallCompleted
        : v.step === "failed"
        ? ModelCallFailed
        : `a "model-call" record needs step "started", "completed" or "failed", got ${JSON.stringify(v.step)}`
    case "closed":
      return Closed
    default:
      return `unknown record type ${JSON.stringify(v?.type)}`
  }
}

/** Decodes one line; Left with a readable problem. */
const decodeLine = (line: string): { readonly record?: JournalRecord; readonly problem?: string } => {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (e) {
    return { problem: `not JSON (${messageOf(e)})` }
  }
  const schema = schemaOf(value)
  if (typeof schema === "string") return { problem: schema }
  const decoded = Schema.decodeUnknownEither(schema)(value, { onExcessProperty: "ignore" })
  if (decoded._tag === "Right") return { record: decoded.right as JournalRecord }
  const issues = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
  return {
    problem: `not a valid "${(value as { type: string }).type}" record: ` +
      issues.slice(0, 3).map((i) => `${i.path.length > 0 ? `${i.path.join(".")}: ` : ""}${i.message}`).join("; ")
  }
}

/**
 * Reads and validates a journal. A last line without its newline is what a run that died
 * while writing leaves behind: it is dropped with a warning. Any other bad line is an error.
 */
const read = Effect.fn("Journal.read")(function*(path: string) {
  const text = yield* Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (e) => new JournalError({ path, message: `cannot read: ${messageOf(e)}` })
  })
  const lines = text.split("\n")
  const cut = lines.pop()
  const warnings: Array<string> = []
  if (cut !== undefined && cut !== "") {
    const last = decodeLine(cut)
    if (last.record !== undefined) lines.push(cut)
    else warnings.push(`line ${lines.length + 1} was cut short (the run stopped while writing it): ignored`)
  }
  const records: Array<JournalRecord> = []
  for (let i = 0; i < lines.length; i++) {
    const { problem, record } = decodeLine(lines[i]!)
    if (record === undefined) return yield* new JournalError({ path, message: `line ${i + 1}: ${problem}` })
    records.push(record)
  }
  const header = records[0]
  if (header === undefined || header.type !== "header") {
    return yield* new JournalError({ path, message: `not a journal: the first line must be a "header" record` })
  }
  // `seq` is the line number from 0: a repeated or out-of-order one means lines were
  // duplicated, reordered or spliced from another journal, and the tree would be wrong.
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!
    if (record.seq === i) continue
    const previous = records[i - 1]?.seq ?? -1
    const what = record.seq === previous
      ? `seq ${record.seq} is repeated (line ${i} has it too)`
      : record.seq < previous
      ? `seq ${record.seq} comes after seq ${previous} (out of order)`
      : `seq ${record.seq} where ${i} was expected (seq numbers the lines from 0)`
    return yield* new JournalError({ path, message: `line ${i + 1}: ${what}` })
  }
  const complete = records[records.length - 1]?.type === "closed"
  if (!complete) warnings.push(`the journal has no "closed" record: the run did not finish writing it`)
  const contents: JournalContents = { path, header, records, complete, warnings }
  return contents
})

export class Journal extends Context.Tag("xml-organism/Journal")<Journal, Journal.Service>() {
  /** Opens (truncates) `path`, writes the header and records every event from now on. */
  static readonly make: (options: Journal.Options) => Effect.Effect<Journal.Service, JournalError, Events | Scope.Scope> =
    make
  static readonly layer = (options: Journal.Options) => Layer.scoped(Journal, make(options))
  /** The same records, kept in memory. */
  static readonly memory = memory
  static readonly read: (path: string) => Effect.Effect<JournalContents, JournalError> = read
}
