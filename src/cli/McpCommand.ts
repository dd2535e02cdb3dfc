/**
 * `organism mcp FILE [--expose a,b]`: the organism as an MCP server over stdio. Standard
 * output is the MCP channel (nothing else is written there); problems and logs go to stderr.
 * The organism runs until its client closes standard input; then in-flight conversations get
 * `--drain-timeout` to finish, and its own MCP servers (mcp:) are stopped.
 */
import { Args, Command, Options } from "@effect/cli"
import { NodeSink, NodeStream } from "@effect/platform-node"
import { Deferred, Effect, Either, Exit, Fiber, Layer, Option } from "effect"
import { layerForOrganism } from "../config/layerForOrganism.js"
import { loadOrganism } from "../config/loadOrganism.js"
import { parseDuration } from "../domain/OrganismConfig.js"
import { listenersToExpose, withMcpTools } from "../mcp/McpTools.js"
import { Pump } from "../pipeline/Pump.js"
import { XmlEngine } from "../services/XmlEngine.js"
import { reportConfigError, reportConfigWarnings, reportLlmConfigError } from "./configErrors.js"
import { UsageError } from "./Exit.js"
import { packageJson } from "./packageInfo.js"

const file = Args.text({ name: "organism.yaml" }).pipe(Args.withDescription("the organism to expose"))
const expose = Options.text("expose").pipe(
  Options.withDescription("the listeners to offer as tools, comma-separated (default: every listener of the file)"),
  Options.optional
)
const timeout = Options.text("timeout").pipe(
  Options.withDescription("how long a tool call may wait for the conversation's answer"),
  Options.withDefault("5m")
)
const drainTimeout = Options.text("drain-timeout").pipe(
  Options.withDescription("once the client has gone, how long in-flight work may take to finish"),
  Options.withDefault("10s")
)

export const mcpCommand = Command.make("mcp", { file, expose, timeout, drainTimeout }, (opts) =>
  Effect.gen(function*() {
    const callTimeout = parseDuration(opts.timeout)
    if (Either.isLeft(callTimeout)) return yield* new UsageError({ message: `--timeout: ${callTimeout.left}` })
    const deadline = parseDuration(opts.drainTimeout)
    if (Either.isLeft(deadline)) return yield* new UsageError({ message: `--drain-timeout: ${deadline.left}` })
    const loaded = yield* loadOrganism(opts.file).pipe(
      Effect.flatMap(withMcpTools),
      Effect.catchTag("OrganismConfigError", reportConfigError(2))
    )
    yield* reportConfigWarnings(loaded.warnings)
    const exposed = listenersToExpose(loaded.organism, Option.getOrUndefined(opts.expose))
    if (Either.isLeft(exposed)) return yield* new UsageError({ message: `--expose: ${exposed.left}` })
    const chosen = exposed.right

    // Loaded here: the other commands do without @effect/ai's MCP server and @effect/rpc.
    const McpServer = yield* Effect.promise(() => import("@effect/ai/McpServer"))
    const { exposeListeners } = yield* Effect.promise(() => import("../mcp/McpExpose.js"))
    yield* Effect.gen(function*() {
      // No boot messages: the client's calls are the conversations (a boot that asks a model
      // something would cost tokens each time a client starts this server).
      const pump = yield* Pump.make({ ...loaded.organism, boot: [] })
      // The client closing standard input ends the session: then the organism drains.
      const ended = yield* Deferred.make<void>()
      const onEnd = () => Deferred.unsafeDone(ended, Exit.void)
      process.stdin.once("end", onEnd)
      process.stdin.once("close", onEnd)
      yield* Effect.addFinalizer(() => Effect.sync(() => {
        process.stdin.off("end", onEnd)
        process.stdin.off("close", onEnd)
      }))
      const server = Layer.effectDiscard(exposeListeners(pump, chosen, { timeout: callTimeout.right, wire: loaded.organism.settings.wire })).pipe(
        Layer.provideMerge(McpServer.layerStdio({
          name: loaded.organism.settings.name,
          version: packageJson.version,
          stdin: NodeStream.stdin,
          stdout: NodeSink.stdout
        }))
      )
      const running = yield* Effect.forkScoped(Layer.launch(server))
      yield* Effect.raceFirst(Deferred.await(ended), Fiber.join(running))
      yield* Fiber.interrupt(running)
      yield* pump.drain(deadline.right)
    }).pipe(
      Effect.scoped,
      Effect.provide(layerForOrganism(loaded)),
      Effect.catchTag("LlmConfigError", reportLlmConfigError(opts.file))
    )
  }).pipe(Effect.scoped, Effect.provide(XmlEngine.layer))).pipe(
    Command.withDescription("Offer an organism's listeners as the tools of an MCP server over stdio")
  )
