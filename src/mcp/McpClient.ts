/**
 * A client of one MCP server, over stdio (a child process speaking newline-delimited
 * JSON-RPC) or streamable HTTP (JSON-RPC POSTed to one URL, answered with JSON or an SSE
 * stream). It only needs the tools half of MCP: `initialize`, `tools/list`, `tools/call`.
 *
 * Written here rather than taken from `@modelcontextprotocol/sdk`: the protocol subset is a
 * few hundred lines, while the sdk would bring an HTTP server stack (express, hono) and zod
 * into every organism's dependencies; this client is Effect-native (interruptible calls,
 * typed errors, the process owned by a Scope).
 *
 * Lifecycle: the connection lives in the caller's Scope. Closing it kills the child process
 * (its whole process group) or ends the HTTP session. A server that exits fails every call
 * waiting on it, and every later one, with `McpServerGone` — with the last lines it wrote on
 * stderr, which usually say why.
 */
import { Command } from "@effect/platform"
import type { CommandExecutor } from "@effect/platform/CommandExecutor"
import { Duration, Effect, Queue, type Scope, Stream } from "effect"
import { type JsonRpcMessage, type JsonRpcPeer, makeJsonRpcPeer } from "./JsonRpcPeer.js"
import { type McpCallError, McpServerGone, McpStartError } from "./McpErrors.js"

export const PROTOCOL_VERSION = "2025-06-18"

export interface McpTool {
  readonly name: string
  readonly title?: string | undefined
  readonly description?: string | undefined
  readonly inputSchema: unknown
}

/** A tool's answer, as the reply payload carries it. */
export interface McpToolResult {
  /** The text of its content blocks, one per line (non-text blocks are named, not inlined). */
  readonly text: string
  readonly isError: boolean
  readonly structured: unknown
}

export interface McpClient {
  readonly server: string
  /** The protocol version the server chose in `initialize`. */
  readonly protocolVersion: string
  readonly serverInfo: { readonly name: string; readonly version: string }
  readonly instructions: string | undefined
  readonly listTools: Effect.Effect<ReadonlyArray<McpTool>, McpCallError | McpServerGone>
  readonly callTool: (name: string, args: Record<string, unknown>) => Effect.Effect<McpToolResult, McpCallError | McpServerGone>
}

export interface StdioOptions {
  readonly server: string
  readonly command: string
  readonly args?: ReadonlyArray<string> | undefined
  readonly env?: Readonly<Record<string, string>> | undefined
  readonly cwd?: string | undefined
  /** How long the server may take to answer `initialize` (default 30 s). */
  readonly startTimeout?: Duration.DurationInput | undefined
}

export interface HttpOptions {
  readonly server: string
  readonly url: string
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly startTimeout?: Duration.DurationInput | undefined
}

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)
const str = (u: unknown): string | undefined => (typeof u === "string" ? u : undefined)

/** The text of a `tools/call` result's content blocks. */
export const resultText = (content: unknown): string =>
  (Array.isArray(content) ? content : []).map((block) => {
    if (!isObject(block)) return ""
    switch (block.type) {
      case "text":
        return str(block.text) ?? ""
      case "resource": {
        const r = isObject(block.resource) ? block.resource : {}
        return str(r.text) ?? `[resource ${str(r.uri) ?? ""}${str(r.mimeType) ? ` (${r.mimeType})` : ""}]`
      }
      case "resource_link":
        return `[resource link ${str(block.uri) ?? ""}]`
      default:
        return `[${String(block.type)}${str(block.mimeType) ? ` ${block.mimeType}` : ""}]`
    }
  }).join("\n")

const TAIL_LINES = 20

/** Handshake and the tools requests over a connected peer. */
const start = (server: string, target: string, peer: JsonRpcPeer, startTimeout: Duration.DurationInput, stderr: () => string) =>
  Effect.gen(function*() {
    const startFailed = (reason: string) => {
      const tail = stderr()
      return new McpStartError({ server, target, reason: tail === "" ? reason : `${reason}; it wrote on stderr:\n${tail}` })
    }
    const init = yield* peer.request("initialize", {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: "xml-organism", version: "0.1.0" }
    }).pipe(
      Effect.timeoutFail({ duration: startTimeout, onTimeout: () => startFailed(`no answer to initialize within ${Duration.format(startTimeout)}`) }),
      Effect.catchTags({
        McpServerGone: (e) => Effect.fail(startFailed(e.reason)),
        McpCallError: (e) => Effect.fail(startFailed(`initialize refused: ${e.reason}`))
      })
    )
    if (!isObject(init) || typeof init.protocolVersion !== "string") {
      return yield* startFailed(`initialize answered with something that is not an MCP result: ${JSON.stringify(init).slice(0, 200)}`)
    }
    yield* Effect.mapError(peer.notify("notifications/initialized"), (e) => startFailed(e.reason))
    const info = isObject(init.serverInfo) ? init.serverInfo : {}
    const listTools = Effect.gen(function*() {
      const tools: Array<McpTool> = []
      let cursor: string | undefined
      do {
        const page = yield* peer.request("tools/list", cursor === undefined ? {} : { cursor })
        const items = isObject(page) && Array.isArray(page.tools) ? page.tools : []
        for (const t of items) {
          if (isObject(t) && typeof t.name === "string") {
            tools.push({ name: t.name, title: str(t.title), description: str(t.description), inputSchema: t.inputSchema })
          }
        }
        cursor = isObject(page) ? str(page.nextCursor) : undefined
      } while (cursor !== undefined)
      return tools as ReadonlyArray<McpTool>
    })
    const client: McpClient = {
      server,
      protocolVersion: init.protocolVersion,
      serverInfo: { name: str(info.name) ?? server, version: str(info.version) ?? "" },
      instructions: str(init.instructions),
      listTools,
      callTool: (name, args) =>
        Effect.map(peer.request("tools/call", { name, arguments: args }), (r) => {
          const result = isObject(r) ? r : {}
          return { text: resultText(result.content), isError: result.isError === true, structured: result.structuredContent }
        }).pipe(Effect.withSpan("McpClient.callTool", { attributes: { "mcp.server": server, "mcp.tool": name } }))
    }
    return client
  })

/** Starts `command args…` and speaks MCP with it over its stdin and stdout. */
export const connectStdio: (options: StdioOptions) => Effect.Effect<McpClient, McpStartError, CommandExecutor | Scope.Scope> = Effect
  .fn("McpClient.connectStdio")(function*(options: StdioOptions) {
    const { server } = options
    const args = options.args ?? []
    const target = [options.command, ...args].join(" ")
    let command = Command.make(options.command, ...args)
    if (options.env !== undefined) command = Command.env(command, options.env)
    if (options.cwd !== undefined) command = Command.workingDirectory(command, options.cwd)
    const proc = yield* Command.start(command).pipe(
      Effect.mapError((e) =>
        new McpStartError({
          server,
          target,
          reason: e._tag === "SystemError" && e.reason === "NotFound" ? `command not found: ${options.command}` : e.message
        })
      )
    )
    const tail: Array<string> = []
    yield* proc.stderr.pipe(
      Stream.decodeText(),
      Stream.splitLines,
      Stream.runForEach((line) =>
        Effect.sync(() => {
          tail.push(line)
          if (tail.length > TAIL_LINES) tail.shift()
        })
      ),
      Effect.ignore,
      Effect.forkScoped
    )
    // `null` ends the server's standard input: how MCP asks a stdio server to exit.
    const outgoing = yield* Queue.unbounded<string | null>()
    const encoder = new TextEncoder()
    yield* Stream.fromQueue(outgoing).pipe(
      Stream.takeWhile((line): line is string => line !== null),
      Stream.map((line) => encoder.encode(line)),
      Stream.run(proc.stdin),
      Effect.ignore,
      Effect.forkScoped
    )
    const peer = makeJsonRpcPeer(server, (message) =>
      Effect.suspend(() => {
        const gone = peer.closed()
        return gone !== undefined ? Effect.fail(gone) : Effect.asVoid(Queue.offer(outgoing, JSON.stringify(message) + "\n"))
      }))
    // Reads the server's answers until its stdout closes; then it is gone, and why is told
    // by its exit code and what it last wrote on stderr.
    yield* proc.stdout.pipe(
      Stream.decodeText(),
      Stream.splitLines,
      Stream.runForEach((line) => {
        if (line.trim() === "") return Effect.void
        let message: unknown
        try {
          message = JSON.parse(line)
        } catch {
          return Effect.void // not JSON-RPC: a server's stray output
        }
        return peer.receive(message)
      }),
      Effect.ignore,
      Effect.zipRight(Effect.either(Effect.timeout(proc.exitCode, Duration.seconds(2)))),
      Effect.flatMap((exit) => {
        const code = exit._tag === "Right" ? `exited with code ${exit.right}` : "closed its standard output"
        return peer.close(tail.length === 0 ? code : `${code}; it wrote on stderr:\n${tail.join("\n")}`)
      }),
      Effect.forkScoped
    )
    // Closing: its stdin is closed and it gets a moment to exit, then SIGTERM, then SIGKILL
    // (the scope's own finalizer would wait for ever on a server that ignores SIGTERM).
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* peer.close("the organism stopped")
        yield* Queue.offer(outgoing, null)
        // A finalizer is uninterruptible, and so would be the waits it starts: a timeout could
        // not stop them. They are made interruptible.
        const within = <A, E>(effect: Effect.Effect<A, E>) => Effect.isSuccess(Effect.timeout(Effect.interruptible(effect), Duration.seconds(2)))
        if (yield* within(proc.exitCode)) return
        // `kill` signals the process group and waits for the exit.
        if (yield* within(proc.kill("SIGTERM"))) return
        yield* within(proc.kill("SIGKILL"))
      })
    )
    return yield* start(server, target, peer, options.startTimeout ?? Duration.seconds(30), () => tail.join("\n"))
  })

/** Reads server-sent events from a response body, giving each `data:` payload as JSON. */
const readSse = async (body: ReadableStream<Uint8Array>, onMessage: (message: unknown) => boolean): Promise<void> => {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buffer = ""
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n")
      let end: number
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n")
        if (data === "") continue
        let message: unknown
        try {
          message = JSON.parse(data)
        } catch {
          continue
        }
        // The stream may stay open for more events; once the answer we wait for is in, stop.
        if (onMessage(message)) return
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined)
  }
}

/** Speaks MCP's streamable HTTP transport with the server at `url`. */
export const connectHttp: (options: HttpOptions) => Effect.Effect<McpClient, McpStartError, Scope.Scope> = Effect.fn(
  "McpClient.connectHttp"
)(function*(options: HttpOptions) {
    const { server, url } = options
    let session: string | undefined
    let protocol: string | undefined
    const headers = () => ({
      ...options.headers,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...(session === undefined ? {} : { "mcp-session-id": session }),
      ...(protocol === undefined ? {} : { "mcp-protocol-version": protocol })
    })
    const gone = (reason: string) => new McpServerGone({ server, reason })
    const post = (message: JsonRpcMessage): Effect.Effect<void, McpServerGone> =>
      Effect.tryPromise({
        try: async (signal) => {
          const response = await fetch(url, { method: "POST", headers: headers(), body: JSON.stringify(message), signal })
          const id = response.headers.get("mcp-session-id")
          if (id !== null) session = id
          if (response.status === 202 || response.body === null) return
          if (!response.ok) {
            const text = await response.text().catch(() => "")
            throw new Error(`HTTP ${response.status}${text === "" ? "" : `: ${text.slice(0, 300)}`}`)
          }
          const type = response.headers.get("content-type") ?? ""
          const incoming: Array<unknown> = []
          if (type.includes("text/event-stream")) {
            await readSse(response.body, (m) => {
              incoming.push(m)
              return isObject(m) && m.id === message.id && typeof m.method !== "string"
            })
          } else {
            incoming.push(await response.json())
          }
          return incoming
        },
        catch: (e) => gone(e instanceof Error ? (e.cause instanceof Error ? `${e.message}: ${e.cause.message}` : e.message) : String(e))
      }).pipe(Effect.flatMap((incoming) => (incoming === undefined ? Effect.void : Effect.forEach(incoming, peer.receive, { discard: true }))))
    const peer = makeJsonRpcPeer(server, post)
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        peer.close("the organism stopped"),
        // Ends the session at the server (best effort: it may be gone already).
        session === undefined
          ? Effect.void
          : Effect.ignore(Effect.timeout(
            Effect.interruptible(Effect.tryPromise((signal) => fetch(url, { method: "DELETE", headers: headers(), signal }))),
            Duration.seconds(2)
          ))
      )
    )
    const client = yield* start(server, url, peer, options.startTimeout ?? Duration.seconds(30), () => "")
    protocol = client.protocolVersion
    return client
  })
