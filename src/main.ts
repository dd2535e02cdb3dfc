/**
 * The `organism` command line.
 */
import { Command, ValidationError } from "@effect/cli"
// Subpath imports: the package index loads every platform module (cluster, sql, workers…)
// and doubles the CLI's start-up time.
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Exit, Logger } from "effect"
import { ExitWith, UsageError } from "./cli/Exit.js"
import { approveCommand, approvalsCommand, denyCommand, runnerCommand, sendCommand, statusCommand } from "./cli/DurableCommands.js"
import { inspectCommand } from "./cli/InspectCommand.js"
import { replayCommand, traceCommand } from "./cli/JournalCommands.js"
import { checkArguments, commandHelp, renderCommandHelp, renderProgramHelp, usageLine } from "./cli/help.js"
import { initCommand } from "./cli/InitCommand.js"
import { mcpCommand } from "./cli/McpCommand.js"
import { mockLlmCommand } from "./cli/MockLlmCommand.js"
import { ownsErrors } from "./cli/output.js"
import { packageJson } from "./cli/packageInfo.js"
import { promptCommand } from "./cli/PromptCommand.js"
import { runCommand } from "./cli/RunCommand.js"
import { schemaCommand } from "./cli/SchemaCommand.js"
import { serveCommand } from "./cli/ServeCommand.js"
import { useColor } from "./cli/terminal.js"
import { validateCommand } from "./cli/ValidateCommand.js"

const description = "Run and inspect xml-organism organisms"
const commands = [
  initCommand,
  runCommand,
  validateCommand,
  inspectCommand,
  schemaCommand,
  promptCommand,
  replayCommand,
  traceCommand,
  mockLlmCommand,
  serveCommand,
  mcpCommand,
  runnerCommand,
  sendCommand,
  statusCommand,
  approvalsCommand,
  approveCommand,
  denyCommand
] as const

const organism = Command.make("organism").pipe(
  Command.withDescription(description),
  Command.withSubcommands(commands)
)
const helps = commands.map(commandHelp)

const cli = Command.run(organism, { name: "organism", version: packageJson.version })

/**
 * @effect/cli stops reading options after a lone "-" (standard input), so `inspect - --json`
 * would reject `--json`. Moving the "-" after the options keeps the usual Unix spelling.
 */
export const normalizeArgv = (argv: ReadonlyArray<string>): Array<string> => {
  const dash = argv.indexOf("-")
  if (dash === -1 || dash === argv.length - 1) return [...argv]
  return [...argv.slice(0, dash), ...argv.slice(dash + 1), "-"]
}

const isHelp = (arg: string) => arg === "--help" || arg === "-h"

/**
 * Help, and the mistakes that have a better message than @effect/cli's (an unknown command
 * or option, with the closest one), are answered here; everything else is parsed by it.
 */
const dispatch = (argv: ReadonlyArray<string>) => {
  const args = argv.slice(2)
  const first = args[0]
  const named = helps.find((h) => h.name === (first === "help" ? args[1] : first))
  if (first === undefined || isHelp(first) || (first === "help" && named === undefined)) {
    return Console.log(renderProgramHelp("organism", packageJson.version, description, helps))
  }
  if (named !== undefined && (first === "help" || args.some(isHelp))) {
    return Console.log(renderCommandHelp("organism", named))
  }
  const wrong = checkArguments("organism", args, helps)
  if (wrong !== undefined) return Effect.fail(new UsageError({ message: wrong }))
  return cli(normalizeArgv(argv)).pipe(
    // @effect/cli has printed what was wrong with the arguments: add how the command goes.
    Effect.tapError((e) =>
      ValidationError.isValidationError(e) && named !== undefined
        ? Console.error(`usage: ${usageLine("organism", named)}  (organism ${named.name} --help for more)`)
        : Effect.void
    )
  )
}

const program = (argv: ReadonlyArray<string>) => Effect.suspend(() => dispatch(argv)).pipe(
  Effect.catchIf(
    (e): e is UsageError => e instanceof UsageError,
    (e) => Console.error(`organism: ${e.message}`).pipe(Effect.zipRight(Effect.fail(new ExitWith({ code: 2 }))))
  ),
  // @effect/cli has already printed what was wrong with the arguments.
  Effect.catchIf(ValidationError.isValidationError, () => Effect.fail(new ExitWith({ code: 2 }))),
  // Logs (a handler's Effect.log…) go to standard error: standard output is the organism's
  // events, which `--json` promises to keep parseable.
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true, colors: useColor(process.stderr) }))),
  Effect.provide(NodeContext.layer)
)

/**
 * Runs the command line on `argv` (`process.argv`: node, script, arguments…) and exits the
 * process when done. bin/organism.js calls it once this module is loaded, so that the
 * framework's own modules load before the hooks that compile the user's TypeScript.
 */
export const main = (argv: ReadonlyArray<string>): void => {
  // `organism schema … | head`: the reader went away; that is the end of the output, not an error.
  // (`organism run` handles its output's errors itself: it stops in order and closes its journal.)
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (ownsErrors(stream)) return
      if (e.code === "EPIPE") process.exit(0)
      throw e
    })
  }
  NodeRuntime.runMain(program(argv), {
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => {
      if (Exit.isSuccess(exit)) return onExit(0)
      const failure = Cause.failureOption(exit.cause)
      if (failure._tag === "Some" && failure.value instanceof ExitWith) return onExit(failure.value.code)
      if (!Cause.isInterruptedOnly(exit.cause)) console.error(Cause.pretty(exit.cause))
      onExit(Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
    }
  })
}
