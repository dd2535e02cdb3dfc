/**
 * The `mcp:` section of an organism file, running: each server is started (or its URL
 * connected), its tools are listed, and each tool becomes a listener `server.tool` whose
 * payload type is derived from the tool's input schema (see ToolPayload) and whose reply —
 * a `respond` to the caller — carries the tool's result.
 *
 * The servers live in the caller's Scope: `organism run` and `serve` start them before the
 * pump and stop them after it. What cannot be used is reported like any other mistake in
 * the file, with its line: a server that does not start (naming its command and what it
 * wrote on stderr), a tool in `tools:` it does not offer, a tool whose input schema XML
 * cannot carry (with the JSON-Schema path), a peer `server.tool` that is no tool.
 *
 * At run time a tool's error (`isError`, or a JSON-RPC error such as invalid arguments)
 * is a result the caller reads (`<IsError>true</IsError>`), so that an agent can correct
 * itself; a server that died fails the call with `McpServerGone`, which the pump turns into
 * a SystemError for the caller — the conversation goes on, it is never left waiting.
 */
import type { CommandExecutor } from "@effect/platform/CommandExecutor"
import { Config, Effect, Either, Option, type Scope } from "effect"
import { type ConfigProblem, OrganismConfigError } from "../config/ConfigError.js"
import type { LoadedOrganism } from "../config/loadOrganism.js"
import { closest } from "../config/suggest.js"
import type { Path } from "../config/YamlSource.js"
import type { Organism } from "../domain/Organism.js"
import type { McpServerConfig } from "../domain/OrganismConfig.js"
import type { PayloadType } from "../domain/Payload.js"
import { Reply } from "../domain/Reply.js"
import { Listener } from "../pipeline/Listeners.js"
import { connectHttp, connectStdio, type McpClient } from "./McpClient.js"
import { McpStartError } from "./McpErrors.js"
import { toolTypes } from "./ToolPayload.js"
import { isAbsolute, resolve } from "node:path"

export interface McpToolListener {
  readonly server: string
  readonly tool: string
  readonly listener: Listener<any, never>
}

/**
 * `${NAME}` in a header or environment value is the variable NAME, read through the
 * ConfigProvider (process.env by default), so that a token need not be written in the file.
 */
const expand = (server: string, target: string, values: Readonly<Record<string, string>> | undefined) =>
  values === undefined ? Effect.succeed(undefined) : Effect.gen(function*() {
    const out: Record<string, string> = {}
    for (const [key, value] of Object.entries(values)) {
      let text = value
      for (const m of value.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) {
        const found = yield* Effect.orElseSucceed(Config.option(Config.string(m[1]!)), () => Option.none<string>())
        if (Option.isNone(found)) {
          return yield* new McpStartError({ server, target, reason: `${key}: the environment variable ${m[1]} is not set` })
        }
        text = text.replace(m[0], found.value)
      }
      out[key] = text
    }
    return out as Readonly<Record<string, string>>
  })

const connect = (config: McpServerConfig, baseDir: string) =>
  config.url !== undefined
    ? Effect.flatMap(expand(config.name, config.url, config.headers), (headers) =>
      connectHttp({ server: config.name, url: config.url!, headers, startTimeout: config.start_timeout }))
    : Effect.flatMap(expand(config.name, config.command!, config.env), (env) =>
      connectStdio({
        server: config.name,
        command: config.command!,
        args: config.args,
        env,
        cwd: config.cwd === undefined ? baseDir : isAbsolute(config.cwd) ? config.cwd : resolve(baseDir, config.cwd),
        startTimeout: config.start_timeout
      }))

/**
 * The listeners made here, with their result type: a reloaded organism file gets them back
 * (see `keepMcpTools`), and their callers accept their results (see `addTools`).
 */
const made = new WeakMap<object, PayloadType>()

/** The listener that calls one tool of a connected server. */
const toolListener = (client: McpClient, config: McpServerConfig, tool: { name: string; description?: string | undefined; inputSchema: unknown }) =>
  Either.map(toolTypes(config.name, tool), (types) => {
    const Result = types.result as unknown as new(props: { text: string; is_error: boolean }) => object
    const listener = Listener.make({
      name: types.listener,
      payload: types.call,
      description: tool.description ?? `the MCP tool ${tool.name} of ${config.name}`,
      timeout: config.timeout,
      handler: (payload) =>
        client.callTool(tool.name, types.argumentsOf(payload)).pipe(
          Effect.map((r) => ({ text: r.text, is_error: r.isError })),
          // Invalid arguments, an unknown tool: the caller reads why and may try again.
          Effect.catchTag("McpCallError", (e) => Effect.succeed({ text: `error ${e.code}: ${e.reason}`, is_error: true })),
          Effect.map((value) => Reply.respond(new Result(value)))
        )
    }) as Listener<any, never>
    made.set(listener, types.result)
    return listener
  })

/**
 * Starts the servers of the `mcp:` section and makes their tools listeners. Fails with every
 * problem found, each naming its line in the organism file.
 */
export const startMcpTools = (
  loaded: LoadedOrganism
): Effect.Effect<ReadonlyArray<McpToolListener>, OrganismConfigError, CommandExecutor | Scope.Scope> =>
  Effect.gen(function*() {
    const servers = loaded.config.mcp ?? []
    const { source } = loaded
    const problems: Array<ConfigProblem> = []
    const results = yield* Effect.forEach(
      servers,
      (config) =>
        Effect.either(Effect.flatMap(connect(config, loaded.baseDir), (client) =>
          Effect.map(client.listTools, (tools) => ({ client, tools })))),
      { concurrency: "unbounded" }
    )
    const tools: Array<McpToolListener> = []
    results.forEach((result, i) => {
      const config = servers[i]!
      const at = (...rest: Path): Path => ["mcp", i, ...rest]
      if (Either.isLeft(result)) {
        problems.push(source.problem(at(config.url !== undefined ? "url" : "command"), result.left.message))
        return
      }
      const { client, tools: offeredTools } = result.right
      const offered = offeredTools.map((t) => t.name)
      let chosen = offeredTools
      if (config.tools !== undefined) {
        config.tools.forEach((name, j) => {
          if (!offered.includes(name)) {
            const near = closest(name, offered)
            problems.push(source.problem(
              at("tools", j),
              `MCP server "${config.name}" offers no tool "${name}"${near === undefined ? "" : ` (did you mean "${near}"?)`}; it offers: ${offered.join(", ")}`
            ))
          }
        })
        chosen = offeredTools.filter((t) => config.tools!.includes(t.name))
      }
      for (const tool of chosen) {
        const listener = toolListener(client, config, tool)
        if (Either.isLeft(listener)) {
          problems.push(source.problem(
            at(),
            `MCP server "${config.name}", tool "${tool.name}": ${listener.left}` +
              (config.tools === undefined ? ` (list the tools you need with tools: [...] to leave it out)` : "")
          ))
        } else tools.push({ server: config.name, tool: tool.name, listener: listener.right })
      }
    })
    // Names and tags must not meet the organism's own listeners and payload types.
    const listeners = new Set(loaded.organism.listeners.map((l) => l.name.toLowerCase()))
    const tags = new Set(loaded.organism.listeners.flatMap((l) => [l.payload, ...l.accepts].map((t) => t.payloadTag.toLowerCase())))
    const seen = new Set<string>()
    const toolTags = new Map<string, string>()
    for (const m of tools) {
      const i = servers.findIndex((s) => s.name === m.server)
      const name = m.listener.name.toLowerCase()
      if (listeners.has(name) || seen.has(name)) {
        problems.push(source.problem(["mcp", i], `the tool "${m.tool}" would be the listener "${m.listener.name}", which already exists`))
      }
      const tag = m.listener.payload.payloadTag
      if (tags.has(tag.toLowerCase()) || tags.has(`${tag}result`.toLowerCase())) {
        problems.push(source.problem(["mcp", i], `the tool "${m.tool}" would have the payload type <${tag}>, which already exists`))
      }
      const twin = toolTags.get(tag.toLowerCase())
      if (twin !== undefined) {
        problems.push(source.problem(["mcp", i], `the tools "${twin}" and "${m.tool}" would both have the payload type <${tag}>; leave one out with tools: [...]`))
      }
      toolTags.set(tag.toLowerCase(), m.tool)
      seen.add(name)
    }
    // Peers and boot targets named `server.tool` (accepted by the loader) must be tools.
    const toolNames = tools.map((m) => m.listener.name)
    const isTool = (name: string) => toolNames.some((t) => t.toLowerCase() === name.toLowerCase())
    const serverOf = (name: string) => servers.find((s) => name.toLowerCase().startsWith(`${s.name.toLowerCase()}.`))
    const unknown = (name: string) => {
      const near = closest(name, toolNames)
      return `"${name}" is not a tool of the MCP server "${serverOf(name)!.name}"${near === undefined ? "" : ` (did you mean "${near}"?)`}`
    }
    const failedServers = new Set(results.flatMap((r, i) => (Either.isLeft(r) ? [servers[i]!.name] : [])))
    const check = (name: string, path: Path) => {
      const server = serverOf(name)
      if (server === undefined || failedServers.has(server.name) || isTool(name) || listeners.has(name.toLowerCase())) return
      problems.push(source.problem(path, unknown(name)))
    }
    loaded.config.listeners.forEach((l, i) => l.peers?.forEach((p, j) => check(p, ["listeners", i, "peers", j])))
    loaded.config.boot?.forEach((b, i) => check(b.to, ["boot", i, "to"]))
    if (problems.length > 0) {
      return yield* new OrganismConfigError({ file: loaded.file, problems: problems.sort((a, b) => a.line - b.line || a.column - b.column) })
    }
    return tools
  }).pipe(Effect.withSpan("McpTools.start"))

/**
 * The organism with the tools' listeners added; a listener that names a tool among its
 * `peers` also accepts that tool's result type (a reply goes back to its caller, who must
 * take its type — the organism file cannot name a type that exists only once the server runs).
 */
const addTools = <R>(organism: Organism<R>, tools: ReadonlyArray<Listener<any, R>>): Organism<R> => {
  if (tools.length === 0) return organism
  const results = new Map(tools.map((t) => [t.name.toLowerCase(), made.get(t)!] as const))
  const listeners = organism.listeners.map((l) => {
    const extra = (l.peers ?? []).flatMap((p) => {
      const result = results.get(p.toLowerCase())
      return result === undefined || l.accepts.includes(result) ? [] : [result]
    })
    return extra.length === 0 ? l : { ...l, accepts: [...l.accepts, ...new Set(extra)] }
  })
  return { ...organism, listeners: [...listeners, ...tools] }
}

/** The loaded organism with the tools' listeners added. */
export const withListeners = (loaded: LoadedOrganism, tools: ReadonlyArray<McpToolListener>): LoadedOrganism =>
  tools.length === 0 ? loaded : { ...loaded, organism: addTools(loaded.organism, tools.map((t) => t.listener)) }

/** Whether a listener is an MCP server's tool (made by `startMcpTools`). */
export const isMcpTool = (listener: Listener<any, any>): boolean => made.has(listener)

/**
 * A reloaded organism file has no MCP tools (its servers are started once, at start): the
 * running organism's tool listeners are carried over to it.
 */
export const keepMcpTools = <R>(running: Organism<R>, next: Organism<R>): Organism<R> => {
  const names = new Set(next.listeners.map((l) => l.name.toLowerCase()))
  return addTools(next, running.listeners.filter((l) => made.has(l) && !names.has(l.name.toLowerCase())))
}

/**
 * The listeners `organism mcp` (and `serve --mcp`) offer: those named in `expose` (a
 * comma-separated list), else the file's own (not `system.*`, not its MCP servers' tools).
 */
export const listenersToExpose = <R>(
  organism: Organism<R>,
  expose: string | undefined
): Either.Either<ReadonlyArray<Listener<any, R>>, string> => {
  const own = organism.listeners.filter((l) => !l.name.startsWith("system.") && !isMcpTool(l))
  if (expose === undefined) return own.length === 0 ? Either.left("the organism has no listener to expose") : Either.right(own)
  const chosen: Array<Listener<any, R>> = []
  for (const name of expose.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    const listener = organism.listeners.find((l) => l.name.toLowerCase() === name.toLowerCase())
    if (listener === undefined) {
      const near = closest(name, own.map((l) => l.name))
      return Either.left(
        `no listener is called "${name}"${near === undefined ? "" : ` — did you mean "${near}"?`} (listeners: ${own.map((l) => l.name).join(", ")})`
      )
    }
    chosen.push(listener)
  }
  return chosen.length === 0 ? Either.left("name at least one listener") : Either.right(chosen)
}

/** `startMcpTools` then `withListeners`: the organism as it runs, its MCP servers started. */
export const withMcpTools = (loaded: LoadedOrganism) =>
  (loaded.config.mcp ?? []).length === 0
    ? Effect.succeed(loaded)
    : Effect.map(startMcpTools(loaded), (tools) => withListeners(loaded, tools))
