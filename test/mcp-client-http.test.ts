/**
 * The MCP client over streamable HTTP, on real loopback HTTP: server-everything's MCP server
 * behind the official SDK's StreamableHTTPServerTransport (sessions, SSE answers), on a
 * node:http server bound to 127.0.0.1.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import { Effect } from "effect"
import { randomUUID } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { stringify } from "yaml"
// @ts-expect-error: a package of plain JavaScript without types
import { createServer as createEverything } from "../node_modules/@modelcontextprotocol/server-everything/dist/server/index.js"
import { layerForOrganism } from "../src/config/layerForOrganism.js"
import { RawPayload } from "../src/domain/Reply.js"
import { connectHttp } from "../src/mcp/McpClient.js"
import { withMcpTools } from "../src/mcp/McpTools.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { loadOrganism } from "./support/files.js"
import { withPump } from "./support/pump.js"

/** server-everything over streamable HTTP at http://127.0.0.1:PORT/mcp, for the Scope's life. */
const everythingOverHttp = Effect.acquireRelease(
  Effect.async<{ server: Server; url: string; sessions: Map<string, StreamableHTTPServerTransport>; deleted: Array<string> }>((resume) => {
    const sessions = new Map<string, StreamableHTTPServerTransport>()
    const deleted: Array<string> = []
    const server = createServer(async (req, res) => {
      const id = req.headers["mcp-session-id"]
      const known = typeof id === "string" ? sessions.get(id) : undefined
      if (known !== undefined) {
        if (req.method === "DELETE") deleted.push(id as string)
        return known.handleRequest(req, res)
      }
      if (typeof id === "string") {
        res.writeHead(404).end()
        return
      }
      const { server: mcp } = createEverything()
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (sid) => void sessions.set(sid, transport)
      })
      await mcp.connect(transport)
      await transport.handleRequest(req, res)
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({ server, url: `http://127.0.0.1:${port}/mcp`, sessions, deleted }))
    })
  }),
  ({ server, sessions }) =>
    Effect.promise(async () => {
      for (const t of sessions.values()) await t.close().catch(() => undefined)
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    })
)

describe("MCP over streamable HTTP", () => {
  it.live("the client lists and calls server-everything's tools; closing its scope ends the session", () =>
    Effect.gen(function*() {
      const http = yield* everythingOverHttp
      yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* connectHttp({ server: "ev", url: http.url })
        expect(client.serverInfo.name).toMatch(/everything/i)
        const tools = yield* client.listTools
        expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(["echo", "get-sum"]))
        expect(yield* client.callTool("echo", { message: "over HTTP" })).toMatchObject({ text: "Echo: over HTTP", isError: false })
        // The SDK's servers answer an unknown tool with an error result, not a JSON-RPC error.
        expect(yield* client.callTool("no-such-tool", {})).toMatchObject({ text: expect.stringMatching(/no-such-tool not found/), isError: true })
        expect(http.sessions.size).toBe(1)
      }))
      expect(http.deleted).toHaveLength(1)
    }).pipe(Effect.scoped), 30_000)

  it.live("an organism file with a url: server calls its tools", () =>
    Effect.gen(function*() {
      const http = yield* everythingOverHttp
      const dir = mkdtempSync(join(tmpdir(), "organism-mcp-http-"))
      const file = join(dir, "organism.yaml")
      writeFileSync(file, stringify({
        organism: { name: "remote" },
        mcp: [{ name: "remote", url: http.url, tools: ["get-sum"] }],
        listeners: []
      }))
      const loaded = yield* withMcpTools(yield* loadOrganism(file))
      const answer = yield* withPump(loaded.organism, ({ pump }) =>
        pump.request("remote.get-sum", new RawPayload({ tag: "RemoteGetSum", inner: "<A>40</A><B>2</B>" })), layerForOrganism(loaded))
      expect(answer).toMatchObject({ text: expect.stringMatching(/is 42/), is_error: false })
    }).pipe(Effect.scoped, Effect.provide(XmlEngine.layer), Effect.provide(NodeContext.layer)), 30_000)

  it.live("a URL where no server listens: a start error naming the server and the URL", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(connectHttp({ server: "nowhere", url: "http://127.0.0.1:9/mcp" }))
      expect(error.message).toMatch(/^MCP server "nowhere" \(http:\/\/127\.0\.0\.1:9\/mcp\) could not be started: fetch failed/)
    }).pipe(Effect.scoped), 30_000)
})
