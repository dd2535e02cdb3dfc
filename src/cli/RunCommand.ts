import { Args, Command, Options } from "@effect/cli"
import { Cause, Console, Deferred, Duration, Effect, Either, ExecutionStrategy, Exit, Fiber, Option, Scope, Stream } from "effect"
import { createInterface } from "node:readline"
import { layerForOrganism } from "../config/layerForOrganism.js"
import { type LoadedOrganism, loadOrganism, parsePayloadXml } from "../config/loadOrganism.js"
import { eventToJson, type PumpEvent } from "../domain/PumpEvent.js"
import { parseDuration } from "../domain/OrganismConfig.js"
import type { PayloadValue } from "../domain/Reply.js"
import { TextInput } from "../domain/SystemPayloads.js"
import { Pump } from "../pipeline/Pump.js"
import { tracingOptions } from "../observability/TracingConfig.js"
import { Events } from "../services/Events.js"
import { Journal, type JournalError } from "../services/Journal.js"
import { LlmRouter } from "../services/LlmRouter.js"
import { XmlEngine } from "../services/XmlEngine.js"
import { approvalCommand } from "./approvalCommands.js"
import { reportConfigError, reportConfigWarnings, reportLlmConfigError } from "./configErrors.js"
import { ExitWith, UsageError } from "./Exit.js"
import { reportToStderr, withStackReports } from "./handlerStacks.js"
import { makeOutput } from "./output.js"
import { packageJson } from "./packageInfo.js"
import { renderEvent } from "./renderEvent.js"
import { statusLine } from "./statusLine.js"
import { unknownTargetHint } from "./targets.js"
import { watchOrganism } from "./watchOrganism.js"
import { keepMcpTools, withMcpTools } from "../mcp/McpTools.js"

const file = Args.text({ name: "organism.yaml" }).pipe(Args.withDescription("the organism to run"))
const json = Options.boolean("json").pipe(Options.withDescription("print events as JSON lines"))
const send = Options.text("send").pipe(
  Options.withDescription("send 'listener=<Payload>…</Payload>' once started (repeatable)"),
  Options.repeated
)
const untilIdle = Options.boolean("until-idle").pipe(
  Options.withDescription("exit once the organism is idle (after boot and --send messages)")
)
const strict = Options.boolean("strict").pipe(
  Options.withDescription("exit with 1 if any message was rejected or stopped by a guard")
)
const verbose = Options.boolean("verbose").pipe(
  Options.withDescription("also show envelopes written, agent states, and a failing handler's stack (on stderr)")
)
const watch = Options.boolean("watch").pipe(
  Options.withDescription("hot-reload the organism when its file or a module it names changes")
)
const drainTimeout = Options.text("drain-timeout").pipe(
  Options.withDescription("on Ctrl-C, how long in-flight work may take to finish"),
  Options.withDefault("10s")
)
const journal = Options.text("journal").pipe(
  Options.withDescription("record every message's lifecycle in this file (JSON lines; replay and trace read it)"),
  Options.optional
)

const otel = Options.text("otel").pipe(
  Options.withDescription("send OpenTelemetry traces to this OTLP/HTTP endpoint (like OTEL_EXPORTER_OTLP_ENDPOINT)"),
  Options.optional
)

const journalProblem = (e: JournalError) => `journal ${e.path}: ${e.message}`

const HELP = `Type a line to send it:
  @listener some text            sends TextInput{text} to the listener
  @listener <Payload>…</Payload>  sends that payload
  !cancel ID                     cancels a conversation (its id, or the start the console shows)
  !approvals                     lists the messages waiting for approval
  !approve ID / !deny ID REASON  decides one (its id, or a start of it)
End input (Ctrl-D) to finish once idle; Ctrl-C drains and stops.`

/** Reads `@listener text` / `@listener <Xml/>` into a target and payload. */
export const parseConsoleLine = (
  engine: XmlEngine.Service,
  line: string
): Either.Either<{ readonly to: string; readonly payload: PayloadValue }, string> => {
  const m = /^@(\S+)\s*([\s\S]*)$/.exec(line.trim())
  if (m === null) return Either.left(`expected "@listener text" or "@listener <Payload/>"`)
  const to = m[1]!
  const rest = m[2]!
  if (rest.startsWith("<")) {
    return Either.map(parsePayloadXml(engine, rest), (payload) => ({ to, payload }))
  }
  return Either.right({ to, payload: new TextInput({ text: rest, source: "console", user: "" }) })
}

const parseSend = (engine: XmlEngine.Service, spec: string) => {
  const eq = spec.indexOf("=")
  if (eq <= 0) return Either.left(`--send expects listener=<Payload>…</Payload>, got ${JSON.stringify(spec)}`)
  return Either.mapLeft(
    parseConsoleLine(engine, `@${spec.slice(0, eq)} ${spec.slice(eq + 1)}`),
    (e) => `--send ${spec.slice(0, eq)}: ${e}`
  )
}

export const runCommand = Command.make(
  "run",
  { file, json, send, untilIdle, strict, verbose, watch, drainTimeout, journal, otel },
  (opts) =>
    Effect.gen(function*() {
      const deadline = parseDuration(opts.drainTimeout)
      if (Either.isLeft(deadline)) return yield* new UsageError({ message: `--drain-timeout: ${deadline.left}` })
      const engine = yield* XmlEngine
      const sends = opts.send.map((s) => parseSend(engine, s))
      for (const s of sends) if (Either.isLeft(s)) return yield* new UsageError({ message: s.left })

      // The MCP servers of its mcp: section start here, in this command's scope: they stop
      // after the pump has drained.
      const loaded = yield* loadOrganism(opts.file).pipe(
        Effect.flatMap(withMcpTools),
        Effect.catchTag("OrganismConfigError", reportConfigError(2))
      )
      yield* reportConfigWarnings(loaded.warnings)
      yield* runLoaded({ ...opts, drainTimeout: deadline.right }, loaded, engine, sends.flatMap((s) => (Either.isRight(s) ? [s.right] : []))).pipe(
        Effect.provide(layerForOrganism(loaded)),
        Effect.catchTag("LlmConfigError", reportLlmConfigError(opts.file))
      )
    }).pipe(Effect.scoped, Effect.provide(XmlEngine.layer))
).pipe(Command.withDescription("Run an organism, printing its events"))

interface RunOptions {
  readonly file: string
  readonly json: boolean
  readonly untilIdle: boolean
  readonly strict: boolean
  readonly verbose: boolean
  readonly watch: boolean
  readonly journal: Option.Option<string>
  readonly otel: Option.Option<string>
  readonly drainTimeout: Duration.Duration
}

/**
 * Events waiting to be printed, at most: beyond, a reader too slow for the organism makes
 * the run skip events (and say so) rather than hold them all in memory. The journal, if
 * any, still has every record.
 */
const MAX_BACKLOG = 20_000

/** After the drain deadline, how long the interrupted handlers get to wind down. */
const GRACE = Duration.seconds(2)

/**
 * Runs an Effect on a fiber of its own, interruptibly, and waits for it. Shutdown runs in a
 * finalizer, where everything is uninterruptible: a timeout there would wait for the very
 * work it is meant to cut short.
 */
const detached = <A, E>(effect: Effect.Effect<A, E>) => Effect.flatMap(Effect.fork(Effect.interruptible(effect)), Fiber.join)

/** The run itself, inside the organism's own services (its registries, its model router). */
const runLoaded = (
  opts: RunOptions,
  loaded: LoadedOrganism,
  engine: XmlEngine.Service,
  sends: ReadonlyArray<{ readonly to: string; readonly payload: PayloadValue }>
) =>
  Effect.gen(function*() {
      const organism = loaded.organism
      const injector = organism.settings.injector
      const events = yield* Events
      const output = yield* makeOutput(process.stdout)
      const textOf = (chunk: Iterable<PumpEvent>) => {
        let text = ""
        for (const e of chunk) {
          if (opts.json) text += `${JSON.stringify(eventToJson(e))}\n`
          else {
            const line = renderEvent(e, injector, opts.verbose)
            if (line !== undefined) text += `${line}\n`
          }
        }
        return text
      }
      // Events wait here for the printer. While standard output's reader is behind (a write
      // waits for it), at most MAX_BACKLOG wait: a slow reader costs skipped events, counted
      // and reported, never unbounded memory. Taken inside `publish`, so the bound holds even
      // while the pump keeps the printer from running.
      let pending: Array<PumpEvent> = []
      let skipped = 0
      let wake: (() => void) | undefined
      yield* events.observe((e) => {
        if (pending.length >= MAX_BACKLOG && output.isBlocked()) {
          if (skipped++ === 0) {
            process.stderr.write(`organism: standard output is read too slowly for this organism: skipping events (the journal, if any, has them all)\n`)
          }
          return
        }
        pending.push(e)
        if (wake !== undefined) {
          const w = wake
          wake = undefined
          w()
        }
      })
      const takePending = () => {
        const chunk = pending
        pending = []
        return chunk
      }
      const waitForEvents = Effect.async<void>((resume) => {
        if (pending.length > 0) return resume(Effect.void)
        wake = () => resume(Effect.void)
        return Effect.sync(() => void (wake = undefined))
      })
      const printer = yield* Effect.fork(
        Effect.forever(Effect.zipRight(waitForEvents, Effect.suspend(() => output.write(textOf(takePending())))))
      )
      const flush = Effect.gen(function*() {
        yield* Fiber.interrupt(printer)
        yield* output.write(textOf(takePending()))
      })
      // Opened before the pump starts, so the organism's start-up is recorded too.
      const recording = Option.isSome(opts.journal)
        ? yield* Journal.make({ path: opts.journal.value, organism: organism.settings.name, source: opts.file }).pipe(
          Effect.mapError((e) => new UsageError({ message: journalProblem(e) }))
        )
        : undefined
      // Tracing, when asked for (--otel or OTEL_EXPORTER_OTLP_ENDPOINT): an observer of the
      // events from before the pump starts; its spans are sent when the run's scope closes.
      const tracing = yield* tracingOptions({
        otel: Option.getOrUndefined(opts.otel),
        serviceName: organism.settings.name,
        serviceVersion: packageJson.version
      }).pipe(Effect.mapError((e) => new UsageError({ message: `OpenTelemetry: ${e}` })))
      if (Option.isSome(tracing)) {
        // Loaded only when on: a run without tracing never imports the exporter.
        const Tracing = yield* Effect.promise(() => import("../observability/Tracing.js"))
        yield* Tracing.observe(tracing.value)
      }
      const prepare = (next: typeof organism) => {
        const o = keepMcpTools(organism, next)
        return opts.verbose ? withStackReports(o, reportToStderr) : o
      }
      // The pump in a scope of its own: at the drain deadline, closing it interrupts the
      // handlers still running, before the journal is closed.
      const pumpScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
      const pump = yield* Pump.make(prepare(organism)).pipe(Scope.extend(pumpScope))
      const listenerNames = organism.listeners.map((l) => l.name)
      const hint = (to: string) => {
        const text = unknownTargetHint(to, listenerNames)
        return text === undefined ? Effect.void : Console.error(text)
      }
      if (recording !== undefined) yield* recording.markBooted
      const models = yield* LlmRouter
      if (!opts.json && process.stderr.isTTY === true) yield* statusLine(pump, models, events)
      // Once standard output is gone, what is left to say goes to standard error.
      const say = (line: string) => (opts.json || output.isGone() ? Console.error(line) : Console.log(line))
      const summary = Effect.suspend(() => {
        const c = pump.counters()
        const u = models.usage().totals
        const line = `${organism.settings.name}: ${c.injected} injected, ${c.delivered} delivered, ` +
          `${c.rejected} rejected, ${c.guardStopped} stopped by guards, ${c.invocations} handler invocations` +
          (u.requests === 0
            ? ""
            : `; models: ${u.requests} calls, ${u.promptTokens} prompt + ${u.completionTokens} completion tokens` +
              (u.costUsd > 0 ? `, $${u.costUsd.toFixed(4)}` : ""))
        return Effect.zipRight(
          skipped === 0 ? Effect.void : Console.error(`organism: ${skipped} events were not printed (standard output was read too slowly)`),
          say(line)
        )
      })

      /**
       * Stops the run in order (Ctrl-C, SIGTERM, standard output gone): no more input, the
       * work in flight gets --drain-timeout to finish; what is left then is interrupted and
       * the journal's closing record says so. Prints the summary.
       */
      let stopped = false
      const stop = (why: string) =>
        Effect.gen(function*() {
          if (stopped) return
          stopped = true
          const drained = yield* detached(pump.drain(opts.drainTimeout))
          let problem: string | undefined
          if (!drained.finished) {
            const left = drained.interrupted
            problem = `${why}; --drain-timeout ${Duration.format(opts.drainTimeout)} elapsed with ${left} ` +
              `handler job${left === 1 ? "" : "s"} still in flight, interrupted`
            yield* detached(Effect.ignore(Effect.timeout(Scope.close(pumpScope, Exit.void), GRACE)))
          }
          yield* detached(Effect.ignore(Effect.timeout(flush, GRACE)))
          if (recording !== undefined) {
            yield* (problem === undefined ? recording.close : recording.closeStopped(problem)).pipe(
              Effect.catchAll((e) => Console.error(`organism: ${journalProblem(e)}`))
            )
          }
          if (problem !== undefined) yield* Console.error(`organism: ${problem}`)
          yield* summary
        })
      // Ctrl-C and SIGTERM interrupt the run. The interruption arrives combined with others
      // (a Sequential cause), not as a bare one.
      yield* Effect.addFinalizer((exit) =>
        Exit.isFailure(exit) && Cause.isInterrupted(exit.cause) ? stop("stopped by a signal") : Effect.void
      )

      if (opts.watch) yield* Effect.forkScoped(watchOrganism(opts.file, loaded.config, pump, events, prepare))

      // Input that cannot become a message (a control character typed at the console, a BEL
      // in --send) is reported on its own line; the run goes on.
      let badInput = 0
      const send = (where: string, to: string, payload: PayloadValue) =>
        Effect.zipRight(
          hint(to),
          pump.inject(to, payload).pipe(
            Effect.asVoid,
            Effect.catchAll((e) =>
              Effect.zipRight(Effect.sync(() => void badInput++), Console.error(`organism: ${where}: not sent to ${to}: ${e.message}`))
            )
          )
        )

      const work = Effect.gen(function*() {
        for (const s of sends) yield* send(`--send ${s.to}`, s.to, s.payload)
        if (!opts.untilIdle) {
          if (!opts.json && process.stdin.isTTY) yield* Console.error(HELP)
          const lines = Stream.fromAsyncIterable(createInterface({ input: process.stdin, terminal: false }), (e) => e)
          let lineNumber = 0
          yield* Stream.runForEach(lines, (line) => {
            lineNumber++
            if (line.trim() === "") return Effect.void
            if (line.trim() === "help" || line.trim() === "?") return Console.error(HELP)
            const cancel = /^!cancel\s+(\S+)\s*$/.exec(line.trim())
            if (cancel !== null) {
              return Effect.flatMap(pump.cancel(cancel[1]!), (found) =>
                found
                  ? Console.error(`organism: cancelling ${cancel[1]}`)
                  : Effect.zipRight(
                    Effect.sync(() => void badInput++),
                    Console.error(`organism: input line ${lineNumber}: no running conversation ${cancel[1]}`)
                  ))
            }
            const approval = approvalCommand(pump, line.trim(), organism.settings.injector)
            if (approval !== undefined) {
              return Effect.flatMap(approval, (answer) =>
                answer.ok
                  ? Console.error(`organism: ${answer.text}`)
                  : Effect.zipRight(Effect.sync(() => void badInput++), Console.error(`organism: input line ${lineNumber}: ${answer.text}`)))
            }
            const parsed = parseConsoleLine(engine, line)
            if (Either.isLeft(parsed)) {
              badInput++
              return Console.error(`organism: input line ${lineNumber}: ${parsed.left}`)
            }
            return send(`input line ${lineNumber}`, parsed.right.to, parsed.right.payload)
          }).pipe(Effect.orDie)
          // Watching: input has ended, but the organism keeps running until Ctrl-C.
          if (opts.watch) return yield* Effect.never
        }
        yield* pump.awaitIdle
        // Idle with messages still waiting for a person: the run ends, so they are stopped
        // (the unapproved guard; their senders hear it) before the summary.
        const waiting = pump.counters().pendingApprovals
        if (waiting > 0) {
          yield* Console.error(`organism: ${waiting} message${waiting === 1 ? "" : "s"} still waiting for approval at the end of the run: stopped undecided`)
          yield* pump.drain(opts.drainTimeout)
        }
      })

      // The reader of standard output going away (`| head`) ends the run like Ctrl-C does,
      // without losing the journal's end.
      const gone = yield* Effect.raceFirst(Effect.as(work, undefined), Deferred.await(output.gone))
      if (gone !== undefined) {
        yield* Console.error(`organism: ${gone}: stopping`)
        yield* stop(gone)
        // Nothing more is read: standard input must not keep the process alive.
        process.stdin.destroy()
      } else {
        yield* flush
        yield* summary
        // An incomplete journal is a failed run: the user asked for the record.
        if (recording !== undefined) {
          yield* recording.close.pipe(
            Effect.catchAll((e) => Effect.zipRight(Console.error(`organism: ${journalProblem(e)}`), new ExitWith({ code: 1 })))
          )
        }
      }
      const c = pump.counters()
      if (opts.strict && c.rejected + c.guardStopped + badInput > 0) return yield* new ExitWith({ code: 1 })
    }).pipe(Effect.scoped)
