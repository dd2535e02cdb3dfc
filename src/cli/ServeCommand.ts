import { Args, Command, Options } from "@effect/cli"
import { Config, Console, Effect, Either, Option, Redacted } from "effect"
import { layerForOrganism } from "../config/layerForOrganism.js"
import { loadOrganism } from "../config/loadOrganism.js"
import { parseDuration } from "../domain/OrganismConfig.js"
import { XmlEngine } from "../services/XmlEngine.js"
import { reportConfigError, reportConfigWarnings, reportLlmConfigError } from "./configErrors.js"
import { UsageError } from "./Exit.js"
import { keepMcpTools, listenersToExpose, withMcpTools } from "../mcp/McpTools.js"
import type { Pump } from "../pipeline/Pump.js"
import { packageJson } from "./packageInfo.js"

const file = Args.text({ name: "organism.yaml" }).pipe(Args.withDescription("the organism to serve"))
const port = Options.integer("port").pipe(
  Options.withDescription("the port to listen on (0: any free port)"),
  Options.withDefault(4280)
)
const host = Options.text("host").pipe(
  Options.withDescription("the address to bind; anything but loopback requires --token"),
  Options.withDefault("127.0.0.1")
)
const token = Options.redacted("token").pipe(
  Options.withDescription("bearer token every request must carry (default: $ORGANISM_TOKEN)"),
  Options.optional
)
const drainTimeout = Options.text("drain-timeout").pipe(
  Options.withDescription("on Ctrl-C, how long in-flight work may take to finish"),
  Options.withDefault("10s")
)

const mcp = Options.boolean("mcp").pipe(
  Options.withDescription("also offer listeners as MCP tools over streamable HTTP at /mcp (behind the same token)")
)
const expose = Options.text("expose").pipe(
  Options.withDescription("with --mcp: the listeners to offer, comma-separated (default: every listener of the file)"),
  Options.optional
)
const mcpTimeout = Options.text("mcp-timeout").pipe(
  Options.withDescription("with --mcp: how long a tool call may wait for the conversation's answer"),
  Options.withDefault("5m")
)

/** `organism serve FILE`: the organism behind an HTTP API, live events and a dashboard. */
export const serveCommand = Command.make("serve", { file, port, host, token, drainTimeout, mcp, expose, mcpTimeout }, (opts) =>
  Effect.gen(function*() {
    const deadline = parseDuration(opts.drainTimeout)
    if (Either.isLeft(deadline)) return yield* new UsageError({ message: `--drain-timeout: ${deadline.left}` })
    if (opts.port < 0 || opts.port > 65535) return yield* new UsageError({ message: `--port: ${opts.port} is not a port number` })
    const fromEnv = yield* Effect.orElseSucceed(Config.option(Config.redacted("ORGANISM_TOKEN")), () => Option.none())
    const secret = Option.map(Option.orElse(opts.token, () => fromEnv), Redacted.value)
    if (Option.isSome(secret) && secret.value.length < 16) {
      return yield* new UsageError({ message: "--token: use at least 16 characters" })
    }
    // Loaded lazily: the server's modules are not needed by the other commands.
    const { isLoopback } = yield* Effect.promise(() => import("../server/Server.js"))
    if (!isLoopback(opts.host) && Option.isNone(secret)) {
      return yield* new UsageError({
        message: `--host ${opts.host} is reachable from other machines: give --token (or ORGANISM_TOKEN) so that only its holders can use the organism`
      })
    }
    const { serveOrganism } = yield* Effect.promise(() => import("../server/serveOrganism.js"))
    // Its MCP servers (mcp:) live in this command's scope: they stop after the pump.
    const loaded = yield* loadOrganism(opts.file).pipe(
      Effect.flatMap(withMcpTools),
      Effect.catchTag("OrganismConfigError", reportConfigError(2))
    )
    yield* reportConfigWarnings(loaded.warnings)
    if (Option.isSome(opts.expose) && !opts.mcp) return yield* new UsageError({ message: "--expose goes with --mcp" })
    const callTimeout = parseDuration(opts.mcpTimeout)
    if (Either.isLeft(callTimeout)) return yield* new UsageError({ message: `--mcp-timeout: ${callTimeout.left}` })
    const exposed = listenersToExpose(loaded.organism, Option.getOrUndefined(opts.expose))
    if (opts.mcp && Either.isLeft(exposed)) return yield* new UsageError({ message: `--expose: ${exposed.left}` })
    // Loaded only with --mcp: @effect/ai's MCP server and @effect/rpc are not needed otherwise.
    const routesFor = opts.mcp && Either.isRight(exposed)
      ? yield* Effect.map(Effect.promise(() => import("../mcp/McpExpose.js")), ({ layerHttp }) => (pump: Pump.Service) =>
        layerHttp(pump, exposed.right, {
          name: loaded.organism.settings.name,
          version: packageJson.version,
          path: "/mcp",
          timeout: callTimeout.right,
          wire: loaded.organism.settings.wire
        }))
      : undefined
    yield* serveOrganism(loaded, {
      host: opts.host,
      port: opts.port,
      token: Option.getOrUndefined(secret),
      drainTimeout: deadline.right,
      prepare: (next) => keepMcpTools(loaded.organism, next),
      routesFor,
      onListening: (url) =>
        Console.log(
          `organism serve: ${loaded.organism.settings.name} at ${url} (dashboard ${url}, API ${url}api, docs ${url}docs` +
            `${routesFor === undefined ? "" : `, MCP ${url}mcp`})`
        )
    }).pipe(
      Effect.provide(layerForOrganism(loaded)),
      Effect.catchTag("LlmConfigError", reportLlmConfigError(opts.file)),
      Effect.catchTag("ServeError", (e) => Effect.fail(new UsageError({ message: `cannot listen on ${opts.host}:${opts.port}: ${String(e.cause)}` })))
    )
  }).pipe(Effect.scoped, Effect.provide(XmlEngine.layer))).pipe(
    Command.withDescription("Serve an organism: HTTP API, live events (SSE, WebSocket), dashboard")
  )
