/**
 * The `organism` command line.
 */
import { Command, ValidationError } from "@effect/cli"
// Subpath imports: the package index loads every platform module (cluster, sql, workers…)
// and doubles the CLI's start-up time.
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Exit } from "effect"
import packageJson from "../package.json" with { type: "json" }
import { ExitWith, UsageError } from "./cli/Exit.js"
import { inspectCommand } from "./cli/InspectCommand.js"
import { replayCommand, traceCommand } from "./cli/JournalCommands.js"
import { mockLlmCommand } from "./cli/MockLlmCommand.js"
import { ownsErrors } from "./cli/output.js"
import { runCommand, validateCommand } from "./cli/RunCommand.js"
import { schemaCommand } from "./cli/SchemaCommand.js"

const organism = Command.make("organism").pipe(
  Command.withDescription("Run and inspect xml-organism organisms"),
  Command.withSubcommands([
    runCommand,
    validateCommand,
    inspectCommand,
    schemaCommand,
    replayCommand,
    traceCommand,
    mockLlmCommand
  ])
)

const cli = Command.run(organism, { name: "organism", version: packageJson.version })

// `organism schema … | head`: the reader went away; that is the end of the output, not an error.
// (`organism run` handles its output's errors itself: it stops in order and closes its journal.)
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (ownsErrors(stream)) return
    if (e.code === "EPIPE") process.exit(0)
    throw e
  })
}

/**
 * @effect/cli stops reading options after a lone "-" (standard input), so `inspect - --json`
 * would reject `--json`. Moving the "-" after the options keeps the usual Unix spelling.
 */
export const normalizeArgv = (argv: ReadonlyArray<string>): Array<string> => {
  const dash = argv.indexOf("-")
  if (dash === -1 || dash === argv.length - 1) return [...argv]
  return [...argv.slice(0, dash), ...argv.slice(dash + 1), "-"]
}

const program = Effect.suspend(() => cli(normalizeArgv(process.argv))).pipe(
  Effect.catchIf(
    (e): e is UsageError => e instanceof UsageError,
    (e) => Console.error(`organism: ${e.message}`).pipe(Effect.zipRight(Effect.fail(new ExitWith({ code: 2 }))))
  ),
  // @effect/cli has already printed what was wrong with the arguments.
  Effect.catchIf(ValidationError.isValidationError, () => Effect.fail(new ExitWith({ code: 2 }))),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  teardown: (exit, onExit) => {
    if (Exit.isSuccess(exit)) return onExit(0)
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "Some" && failure.value instanceof ExitWith) return onExit(failure.value.code)
    if (!Cause.isInterruptedOnly(exit.cause)) console.error(Cause.pretty(exit.cause))
    onExit(Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
  }
})
