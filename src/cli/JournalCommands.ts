/**
 * `organism trace` and `organism replay`: reading journals written by `organism run
 * --journal`. Exit codes: trace 0 (printed), 1 (no such thread); replay 0 (identical),
 * 1 (differs); both 2 for usage errors (unreadable or invalid journal, bad organism file).
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Either, Layer, Option } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { layerForOrganism } from "../config/layerForOrganism.js"
import { loadOrganism } from "../config/loadOrganism.js"
import { analyse, inputOf } from "../journal/Conversations.js"
import { type Divergence, makeOfflineModels } from "../journal/OfflineModels.js"
import { Pump } from "../pipeline/Pump.js"
import { LlmRouter } from "../services/LlmRouter.js"
import { replay } from "../journal/Replay.js"
import { findConversation, traceOf } from "../journal/Trace.js"
import { Journal, type JournalError } from "../services/Journal.js"
import { XmlEngine } from "../services/XmlEngine.js"
import { reportConfigError, reportLlmConfigError } from "./configErrors.js"
import { exportDurableJournal } from "./DurableCommands.js"
import { ExitWith, UsageError } from "./Exit.js"
import { renderReplay, renderTrace } from "./renderJournal.js"

const journalFile = Args.text({ name: "JOURNAL" }).pipe(Args.withDescription("a journal written by organism run --journal"))
const traceJournal = Args.text({ name: "JOURNAL" }).pipe(
  Args.withDescription("a journal written by organism run --journal (with --database: a durable conversation's id or envelope id)")
)
const json = Options.boolean("json").pipe(Options.withDescription("print one JSON object"))

const readJournal = (path: string) =>
  Journal.read(path).pipe(Effect.mapError((e: JournalError) => new UsageError({ message: `journal ${e.path}: ${e.message}` })))

const thread = Args.text({ name: "THREAD" }).pipe(
  Args.withDescription("a root thread id or any hop's thread id (a unique prefix of 8 characters or more); none: list the conversations"),
  Args.optional
)

const database = Options.text("database").pipe(
  Options.withDescription("read a durable conversation from this Postgres: JOURNAL is then its conversation or envelope id"),
  Options.optional
)
const exportTo = Options.text("export").pipe(
  Options.withDescription("with --database: also write the conversation's journal to this file"),
  Options.optional
)

/** A durable conversation's journal, written to a file (`--export`, or a temporary one) and read back. */
const durableJournal = (url: string, id: string, exportFile: Option.Option<string>) =>
  Effect.gen(function*() {
    const file = Option.getOrElse(exportFile, () => join(mkdtempSync(join(tmpdir(), "organism-trace-")), "journal.jsonl"))
    yield* exportDurableJournal(url, id, file)
    const contents = yield* readJournal(file)
    if (Option.isNone(exportFile)) rmSync(dirname(file), { recursive: true, force: true })
    return contents
  })

export const traceCommand = Command.make(
  "trace",
  { journal: traceJournal, thread, json, database, export: exportTo },
  (opts) =>
    Effect.gen(function*() {
      if (Option.isSome(opts.export) && Option.isNone(opts.database)) {
        return yield* new UsageError({ message: "--export writes a durable conversation's journal: give --database too" })
      }
      const contents = Option.isSome(opts.database)
        ? yield* durableJournal(opts.database.value, opts.journal, opts.export)
        : yield* readJournal(opts.journal)
      const run = analyse(contents.records)
      if (Option.isNone(opts.thread)) {
        const list = run.conversations.map((c) => {
          const input = inputOf(c) ?? c.hops[0]
          return {
            root: c.root,
            from: input?.from ?? null,
            to: input?.to ?? null,
            payloadType: input?.payloadType ?? null,
            messages: c.hops.length,
            completed: c.ended !== undefined
          }
        })
        yield* Console.log(
          opts.json
            ? JSON.stringify(list)
            : list.map((c) =>
              `${c.root}  ${c.from ?? "?"} → ${c.to ?? "*"}  ${c.payloadType ?? "?"}  ` +
              `${c.messages} message${c.messages === 1 ? "" : "s"}${c.completed ? "" : ", not completed"}`
            ).join("\n")
        )
        return
      }
      const found = findConversation(run, opts.thread.value)
      if (Either.isLeft(found)) {
        if (found.left.startsWith("no thread")) {
          yield* Console.error(`organism: ${found.left}`)
          return yield* new ExitWith({ code: 1 })
        }
        return yield* new UsageError({ message: found.left })
      }
      const trace = traceOf(run, found.right)
      yield* Console.log(opts.json ? JSON.stringify(trace) : renderTrace(trace))
    })
).pipe(Command.withDescription("Print one conversation of a journal as a tree of hops with timings"))

const organismFile = Options.text("organism").pipe(Options.withDescription("the organism to replay the journal with"))
const record = Options.text("journal").pipe(Options.withDescription("also record the replay in this journal"), Options.optional)
const offline = Options.boolean("offline").pipe(
  Options.withDescription("answer model calls from the journal's recorded exchanges: no model, no network; exit 1 at a request that differs")
)
const limit = Options.integer("limit").pipe(Options.withDescription("differences to list"), Options.withDefault(10))

const renderDivergence = (d: Divergence) =>
  `first divergence: ${d.agent}'s model call ${d.call} is not the recorded one — ${d.part}` +
  (d.recorded === undefined
    ? ` (replayed request ${d.replayed.requestHash.slice(0, 12)})`
    : ` (recorded request ${d.recorded.requestHash.slice(0, 12)} [${d.recorded.messageHashes.join(" ")}], ` +
      `replayed ${d.replayed.requestHash.slice(0, 12)} [${d.replayed.messageHashes.join(" ")}])`)

export const replayCommand = Command.make(
  "replay",
  { journal: journalFile, organism: organismFile, json, record, limit, offline },
  (opts) =>
    Effect.gen(function*() {
      const contents = yield* readJournal(opts.journal)
      const loaded = yield* loadOrganism(opts.organism).pipe(Effect.catchTag("OrganismConfigError", reportConfigError(2)))
      const run = replay(contents, loaded.organism, {
        journal: Option.isSome(opts.record)
          ? { path: opts.record.value, organism: loaded.organism.settings.name, source: opts.organism }
          : undefined
      }).pipe(Effect.catchTag("JournalError", (e) => new UsageError({ message: `journal ${e.path}: ${e.message}` })))
      let divergence: Divergence | undefined
      const result = opts.offline
        ? yield* Effect.gen(function*() {
          // The organism's own services, and the journal's answers in place of its models.
          const models = yield* makeOfflineModels(contents.records, {
            maxOutputTokens: loaded.llm?.max_output_tokens ?? 0,
            // Nothing is sent: the backends only tell the agents their context windows.
            backends: (loaded.llm?.backends ?? []).map((b) => ({
              name: b.name,
              provider: b.provider,
              models: b.models,
              inFlight: 0,
              waiting: 0,
              healthy: true,
              requests: 0,
              failures: 0,
              baseUrl: "",
              contextWindow: b.context_window
            }))
          })
          const r = yield* run.pipe(Effect.provide(Layer.succeed(LlmRouter, models.router)))
          divergence = models.divergence()
          return r
        }).pipe(Effect.scoped, Effect.provide(Pump.layerServicesFor(loaded.organism)))
        : yield* run.pipe(
          Effect.scoped,
          Effect.provide(layerForOrganism(loaded)),
          Effect.catchTag("LlmConfigError", reportLlmConfigError(opts.organism))
        )
      if (opts.json) {
        yield* Console.log(JSON.stringify({
          identical: result.comparison.identical,
          organism: result.organism,
          inputs: result.inputs,
          boot: result.boot,
          recorded: result.comparison.recorded,
          replayed: result.comparison.replayed,
          differences: result.comparison.differences,
          ...(opts.offline ? { divergence: divergence ?? null } : {}),
          warnings: result.warnings
        }))
      } else {
        for (const w of result.warnings) yield* Console.error(`organism: ${w}`)
        if (divergence !== undefined) yield* Console.log(renderDivergence(divergence))
        yield* Console.log(renderReplay(result, Math.max(1, opts.limit)))
      }
      if (!result.comparison.identical || divergence !== undefined) return yield* new ExitWith({ code: 1 })
    }).pipe(Effect.provide(XmlEngine.layer))
).pipe(
  Command.withDescription(
    "Send a journal's input again through a fresh organism and compare the runs: exit 0 identical, 1 different"
  )
)
