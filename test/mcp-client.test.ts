/**
 * MCP servers' tools as listeners, against real MCP servers from npm started as child
 * processes over stdio (`@modelcontextprotocol/server-filesystem`, `server-everything`),
 * and a small server of the test's own that dies on demand.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Either } from "effect"
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { stringify } from "yaml"
import { layerForOrganism } from "../src/config/layerForOrganism.js"
import { connectStdio } from "../src/mcp/McpClient.js"
import { keepMcpTools, withMcpTools } from "../src/mcp/McpTools.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { loadOrganism } from "./support/files.js"
import { withPump } from "./support/pump.js"
import { RawPayload } from "../src/domain/Reply.js"
import type { Pump } from "../src/pipeline/Pump.js"

const root = join(__dirname, "..")
export const filesystemServer = join(root, "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")
export const everythingServer = join(root, "node_modules/@modelcontextprotocol/server-everything/dist/index.js")

const dir = mkdtempSync(join(tmpdir(), "organism-mcp-"))

const write = (name: string, content: unknown) => {
  const file = join(dir, name)
  writeFileSync(file, typeof content === "string" ? content : stringify(content))
  return file
}

/** The processes whose command line mentions `marker` (a path unique to a test). */
const processesWith = (marker: string) =>
  execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" }).split("\n").filter((l) => l.includes(marker) && !l.includes(" ps "))

/** Loads a file, starts its MCP servers and runs it until idle; returns its hops. */
const runFile = (file: string, body?: (pump: Pump.Service) => Effect.Effect<unknown, unknown>) =>
  Effect.gen(function*() {
    const loaded = yield* withMcpTools(yield* loadOrganism(file))
    return yield* withPump(loaded.organism, ({ events, pump }) =>
      Effect.gen(function*() {
        const answer = body === undefined ? undefined : yield* body(pump)
        yield* pump.awaitIdle
        return { events: yield* events(), pump, answer, loaded }
      }), layerForOrganism(loaded))
  }).pipe(Effect.scoped, Effect.provide(XmlEngine.layer), Effect.provide(NodeContext.layer))

const hopsOf = (events: ReadonlyArray<any>) =>
  events.flatMap((e) => (e._tag === "MessageReceived" && !String(e.from).startsWith("system") && e.to !== "system.boot" ? [e] : []))

describe("MCP tools as listeners (stdio)", () => {
  it.live("an agent on the mock model lists a folder and reads a file through server-filesystem", () =>
    Effect.gen(function*() {
      const notes = join(dir, "notes")
      mkdirSync(notes, { recursive: true })
      writeFileSync(join(notes, "plan.txt"), "alpha: ship the MCP client\n")
      writeFileSync(join(notes, "other.md"), "beta\n")
      write("librarian-script.yaml", {
        responses: [
          {
            match: { user: "/<FsReadTextFileResult>/" },
            times: "always",
            text: "The plan is to ship the MCP client."
          },
          {
            match: { user: "/<FsListDirectoryResult>/" },
            times: "always",
            text: `Reading the plan.\n<FsReadTextFile><Path>${join(notes, "plan.txt")}</Path></FsReadTextFile>`
          },
          { match: { user: "/What is the plan/" }, times: "always", text: `<FsListDirectory><Path>${notes}</Path></FsListDirectory>` }
        ]
      })
      const file = write("librarian.yaml", {
        organism: { name: "librarian" },
        llm: { backends: [{ name: "scripted", provider: "mock", script: "./librarian-script.yaml", models: ["mock-1"] }] },
        mcp: [{ name: "fs", command: "node", args: [filesystemServer, notes], tools: ["list_directory", "read_text_file"] }],
        listeners: [{
          name: "librarian",
          agent: true,
          payload: "TextInput",
          peers: ["fs.list_directory", "fs.read_text_file"],
          prompt: "You answer questions about the files in the notes folder: list it, read what matters, answer."
        }],
        boot: [{ to: "librarian", payload: "<TextInput><Text>What is the plan?</Text></TextInput>" }]
      })
      const { events, pump } = yield* runFile(file)
      const hops = hopsOf(events)
      expect(hops.map((e) => `${e.from} → ${e.to}: ${e.payloadType}`)).toEqual([
        "console → librarian: TextInput",
        "librarian → fs.list_directory: FsListDirectory",
        "fs.list_directory → librarian: FsListDirectoryResult",
        "librarian → fs.read_text_file: FsReadTextFile",
        "fs.read_text_file → librarian: FsReadTextFileResult",
        "librarian → console: TextOutput"
      ])
      expect(hops[2].payload).toContain("[FILE] plan.txt")
      expect(hops[2].payload).toContain("[FILE] other.md")
      expect(hops[2].payload).toContain("<IsError>false</IsError>")
      expect(hops[4].payload).toContain("alpha: ship the MCP client")
      expect(hops[5].payload).toContain("The plan is to ship the MCP client.")
      expect(pump.counters()).toMatchObject({ rejected: 0, guardStopped: 0 })
      // The server was a child of the run's scope: it is gone with it.
      expect(processesWith(notes)).toEqual([])
    }), 60_000)

  it.live("server-everything's tools: echo and get-sum answer through their result payloads", () =>
    Effect.gen(function*() {
      const file = write("everything.yaml", {
        organism: { name: "everything" },
        mcp: [{ name: "ev", command: "node", args: [everythingServer], tools: ["echo", "get-sum"] }],
        listeners: []
      })
      const { answer, loaded } = yield* runFile(file, (pump) =>
        Effect.all([
          pump.request("ev.echo", new RawPayload({ tag: "EvEcho", inner: "<Message>hi &amp; bye</Message>" })),
          pump.request("ev.get-sum", new RawPayload({ tag: "EvGetSum", inner: "<A>2</A><B>3.5</B>" }))
        ]))
      const names = loaded.organism.listeners.map((l: any) => l.name)
      expect(names).toEqual(expect.arrayContaining(["ev.echo", "ev.get-sum"]))
      expect(names).not.toContain("ev.get-env")
      expect(answer).toMatchObject([
        { text: "Echo: hi & bye", is_error: false },
        { text: expect.stringMatching(/2 and 3\.5 is 5\.5/), is_error: false }
      ])
    }), 60_000)
})

describe("MCP tools and hot reload", () => {
  it.live("a reloaded organism file keeps the running servers' tools, and its callers still accept their results", () =>
    Effect.gen(function*() {
      write("reload-handler.ts", "export const none = () => undefined\n")
      const file = write("reload.yaml", {
        organism: { name: "reload" },
        mcp: [{ name: "ev", command: "node", args: [everythingServer], tools: ["echo"] }],
        listeners: [{ name: "caller", payload: "TextInput", handler: "./reload-handler.ts#none", peers: ["ev.echo"] }]
      })
      const loaded = yield* withMcpTools(yield* loadOrganism(file))
      const acceptsOf = (o: { listeners: ReadonlyArray<any> }) => o.listeners.find((l) => l.name === "caller").accepts.map((t: any) => t.payloadTag)
      expect(acceptsOf(loaded.organism)).toEqual(["EvEchoResult"])
      const reloaded = yield* loadOrganism(file, { reload: true })
      // As the file reads, without its servers: no tool, and the peer's result unknown.
      expect(reloaded.organism.listeners.map((l: any) => l.name)).not.toContain("ev.echo")
      const next = keepMcpTools(loaded.organism, reloaded.organism)
      expect(acceptsOf(next)).toEqual(["EvEchoResult"])
      const answer = yield* withPump(loaded.organism, ({ pump }) =>
        Effect.gen(function*() {
          const diff = yield* pump.reload(next)
          expect(diff.removed).toEqual([])
          return yield* pump.request("ev.echo", new RawPayload({ tag: "EvEcho", inner: "<Message>still here</Message>" }))
        }), layerForOrganism(loaded))
      expect(answer).toMatchObject({ text: "Echo: still here", is_error: false })
    }).pipe(Effect.scoped, Effect.provide(XmlEngine.layer), Effect.provide(NodeContext.layer)), 60_000)
})

describe("MCP server settings", () => {
  it.live("${NAME} in env: and headers: values is read from the environment; an unset one is a start error", () =>
    Effect.gen(function*() {
      const file = write("env.yaml", {
        organism: { name: "env" },
        mcp: [{ name: "ev", command: "node", args: [everythingServer], tools: ["get-env"], env: { MCP_TEST_GREETING: "hello ${MCP_TEST_NAME}" } }],
        listeners: []
      })
      const { answer } = yield* runFile(file, (pump) => pump.request("ev.get-env", new RawPayload({ tag: "EvGetEnv", inner: "" }))).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["MCP_TEST_NAME", "Ada"]])))
      )
      expect((answer as any).text).toContain(`"MCP_TEST_GREETING": "hello Ada"`)
      const missing = yield* Effect.flip(runFile(file).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))))
      expect(String((missing as any).problems)).toMatch(/mcp\[0\] "ev"\.command: MCP server "ev" \(node\) could not be started: MCP_TEST_GREETING: the environment variable MCP_TEST_NAME is not set/)
    }), 60_000)
})

/** A tiny MCP server over stdio whose one tool makes it exit: a server dying mid-call. */
const dyingServer = write("dying-server.mjs", `
import { createInterface } from "node:readline"
// STUBBORN: ignores the end of its stdin and SIGTERM, as a badly written server might.
if (process.env.STUBBORN) { process.on("SIGTERM", () => {}); setInterval(() => {}, 1000) }
const send = (m) => process.stdout.write(JSON.stringify(m) + "\\n")
for await (const line of createInterface({ input: process.stdin })) {
  const m = JSON.parse(line)
  if (m.method === "initialize") send({ jsonrpc: "2.0", id: m.id, result: { protocolVersion: "2025-06-18", capabilities: { tools: {} }, serverInfo: { name: "dying", version: "1" } } })
  else if (m.method === "tools/list") send({ jsonrpc: "2.0", id: m.id, result: { tools: [
    { name: "crash", inputSchema: { type: "object", properties: { why: { type: "string" } }, required: ["why"] } },
    { name: "refuse", inputSchema: { type: "object", properties: {} } },
    { name: "put", inputSchema: { type: "object", properties: { values: { type: "object", additionalProperties: { type: "string" } } } } }
  ] } })
  else if (m.method === "tools/call" && m.params.name === "refuse") send({ jsonrpc: "2.0", id: m.id, error: { code: -32602, message: "refused: no arguments today" } })
  else if (m.method === "tools/call") { console.error("dying because " + m.params.arguments.why); process.exit(7) }
}
`)

describe("MCP server lifecycle", () => {
  it.live("a server that dies during a call: the caller gets a SystemError, the conversation ends, later calls fail at once", () =>
    Effect.gen(function*() {
      const file = write("dying.yaml", {
        organism: { name: "dying" },
        mcp: [{ name: "d", command: "node", args: [dyingServer], tools: ["crash", "refuse"] }],
        listeners: []
      })
      const { answer, events } = yield* runFile(file, (pump) =>
        Effect.gen(function*() {
          const refused = yield* pump.request("d.refuse", new RawPayload({ tag: "DRefuse", inner: "" }))
          const crashed = yield* Effect.either(pump.request("d.crash", new RawPayload({ tag: "DCrash", inner: "<Why>testing</Why>" })))
          const again = yield* Effect.either(pump.request("d.refuse", new RawPayload({ tag: "DRefuse", inner: "" })))
          return { refused, crashed, again }
        }))
      const { refused, crashed, again } = answer as any
      // A JSON-RPC error is a result the caller reads.
      expect(refused).toMatchObject({ text: "error -32602: refused: no arguments today", is_error: true })
      // The caller is answered with a SystemError (the generic text), never left waiting…
      expect(crashed).toMatchObject({ _tag: "Left", left: { _tag: "RequestFailed", error: { code: "failed" } } })
      expect(again).toMatchObject({ _tag: "Left", left: { _tag: "RequestFailed", error: { code: "failed" } } })
      // …and the events say which server died and why (its exit code and last stderr line).
      const failures = events.filter((e: any) => e._tag === "HandlerFailed")
      expect(failures.map((e: any) => [e.listener, e.detail])).toEqual([
        ["d.crash", `MCP server "d" is gone: exited with code 7; it wrote on stderr:\ndying because testing`],
        ["d.refuse", `MCP server "d" is gone: exited with code 7; it wrote on stderr:\ndying because testing`]
      ])
    }), 60_000)

  it.live("start-up problems name the file's line, the server and the command", () =>
    Effect.gen(function*() {
      const file = write("broken.yaml", {
        organism: { name: "broken" },
        mcp: [
          { name: "missing", command: "no-such-mcp-server-command" },
          { name: "exits", command: "node", args: ["-e", "console.error('cannot open the database'); process.exit(3)"] },
          { name: "ev", command: "node", args: [everythingServer], tools: ["echo", "get-summ"] }
        ],
        listeners: [{ name: "caller", payload: "TextInput", handler: "./handler.ts#none", peers: ["ev.ecko"] }]
      })
      write("handler.ts", "export const none = () => undefined\n")
      const result = yield* Effect.either(
        Effect.flatMap(loadOrganism(file), withMcpTools).pipe(Effect.scoped, Effect.provide(XmlEngine.layer), Effect.provide(NodeContext.layer))
      )
      expect(Either.isLeft(result)).toBe(true)
      const problems = Either.isLeft(result) ? (result.left as any).problems.map(String) : []
      expect(problems).toEqual([
        expect.stringMatching(/broken\.yaml:5:\d+: mcp\[0\] "missing"\.command: MCP server "missing" \(no-such-mcp-server-command\) could not be started: command not found: no-such-mcp-server-command/),
        expect.stringMatching(/broken\.yaml:\d+:\d+: mcp\[1\] "exits"\.command: .*exited with code 3.*\n?.*cannot open the database/s),
        expect.stringMatching(/mcp\[2\] "ev"\.tools\[1\]: MCP server "ev" offers no tool "get-summ" \(did you mean "get-sum"\?\)/),
        expect.stringMatching(/listeners\[0\] "caller"\.peers\[0\]: "ev\.ecko" is not a tool of the MCP server "ev" \(did you mean "ev\.echo"\?\)/)
      ])
    }), 60_000)

  it.live("a tool whose input schema XML cannot carry is refused with its path, unless tools: leaves it out", () =>
    Effect.gen(function*() {
      const file = write("maps.yaml", {
        organism: { name: "maps" },
        mcp: [{ name: "d", command: "node", args: [dyingServer] }],
        listeners: []
      })
      const result = yield* Effect.flip(
        Effect.flatMap(loadOrganism(file), withMcpTools).pipe(Effect.scoped, Effect.provide(XmlEngine.layer), Effect.provide(NodeContext.layer))
      )
      expect((result as any).problems.map(String)).toEqual([
        expect.stringMatching(
          /^.*maps\.yaml:\d+:\d+: mcp\[0\] "d": MCP server "d", tool "put": inputSchema\.properties\.values\.additionalProperties: a map of arbitrary keys has no fixed XML elements .*\(list the tools you need with tools: \[\.\.\.\] to leave it out\)$/
        )
      ])
    }), 30_000)

  it.live("closing the scope stops even a server that ignores the end of its stdin and SIGTERM", () =>
    Effect.gen(function*() {
      const marker = join(dir, "stubborn-marker")
      const started = yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* connectStdio({ server: "s", command: "node", args: [dyingServer, marker], env: { STUBBORN: "1" } })
        yield* client.listTools
        return processesWith(marker).length
      })).pipe(Effect.provide(NodeContext.layer), Effect.timed)
      expect(started[1]).toBe(1)
      expect(processesWith(marker)).toEqual([])
      // Two seconds for stdin, two for SIGTERM, then SIGKILL.
      expect(Duration.toMillis(started[0])).toBeGreaterThanOrEqual(3_900)
      expect(Duration.toMillis(started[0])).toBeLessThan(10_000)
    }), 30_000)
})
