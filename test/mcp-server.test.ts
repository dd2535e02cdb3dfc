/**
 * `organism mcp FILE`: the organism as an MCP server over stdio, run as a real process and
 * driven by the official MCP SDK's client. The example behind it is an LLM agent (on the mock
 * model) that itself calls a real MCP server (server-filesystem): both directions at once.
 */
import { describe, expect, it, onTestFinished } from "@effect/vitest"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { McpError } from "@modelcontextprotocol/sdk/types.js"
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { bin, exec, exitOf, root, spawnForTest } from "./support/processes.js"

const example = join(root, "examples", "mcp", "organism.yaml")

const connect = async (args: ReadonlyArray<string>) => {
  const transport = new StdioClientTransport({ command: process.execPath, args: [bin, "mcp", ...args], cwd: root, stderr: "pipe" })
  let stderr = ""
  transport.stderr?.on("data", (d) => (stderr += d))
  const client = new Client({ name: "organism-test", version: "1.0.0" })
  await client.connect(transport)
  return { client, transport, stderr: () => stderr }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const waitUntil = async (condition: () => boolean, ms: number) => {
  const end = Date.now() + ms
  while (!condition() && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
  return condition()
}

describe("organism mcp", () => {
  it("offers a listener as a tool: listed with its payload's JSON Schema, called, answered; bad calls are MCP errors", async () => {
    const { client, transport } = await connect([example, "--expose", "librarian"])
    const pid = transport.pid!
    try {
      const { tools } = await client.listTools()
      expect(tools).toEqual([{
        name: "librarian",
        description: "Answers a question from the files of the notes folder.",
        inputSchema: {
          type: "object",
          properties: { text: { type: "string" }, source: { type: "string" }, user: { type: "string" } },
          required: ["text"],
          additionalProperties: false
        }
      }])
      // The call is a conversation: the agent lists the notes through the filesystem MCP
      // server, reads the plan, and answers the injector — which is the tool's result.
      const result = await client.callTool({ name: "librarian", arguments: { text: "What is the plan?" } })
      expect(result.isError).toBe(false)
      expect(result.structuredContent).toEqual({
        text: "According to plan.md: ship the MCP client first, then offer the organism's own\nlisteners as MCP tools.",
        status: "ok"
      })
      expect(result.content).toEqual([{ type: "text", text: expect.stringMatching(/^<TextOutput><Text>According to plan\.md: ship/) }])

      const bad = await client.callTool({ name: "librarian", arguments: { question: "?" } }).then(() => undefined, (e) => e)
      expect(bad).toBeInstanceOf(McpError)
      expect(bad.code).toBe(-32602)
      expect(bad.message).toMatch(/invalid arguments for librarian/)
      expect(bad.message).toMatch(/\["text"\][\s\S]*is missing/)
      expect(bad.message).toMatch(/\["question"\][\s\S]*is unexpected/)

      const unknown = await client.callTool({ name: "fs.read_text_file", arguments: { path: "plan.md" } }).then(() => undefined, (e) => e)
      expect(unknown).toBeInstanceOf(McpError)
      expect(unknown.message).toMatch(/Tool 'fs\.read_text_file' not found/)
    } finally {
      await client.close()
    }
    // The client closing its end of stdin ends the organism, and its own MCP server with it.
    expect(await waitUntil(() => !alive(pid), 10_000)).toBe(true)
    const left = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" }).split("\n").filter((l) => l.includes(join("examples", "mcp")) || l.includes("mcp-server-filesystem ./notes"))
    expect(left).toEqual([])
  }, 90_000)

  it("--expose names a listener that does not exist: exit 2, with the closest name", async () => {
    const r = await exec(process.execPath, [bin, "mcp", example, "--expose", "librarain"])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--expose: no listener is called "librarain" — did you mean "librarian"\?/)
    expect(r.stdout).toBe("")
  }, 60_000)

  it("serve --mcp: the same tools over streamable HTTP at /mcp, behind the server's token", async () => {
    const token = "mcp-test-token-0123456789"
    const child = spawnForTest(process.execPath, [bin, "serve", example, "--port", "0", "--mcp", "--expose", "librarian", "--token", token], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"]
    })
    const url = await new Promise<string>((resolve, reject) => {
      let out = ""
      child.stdout!.on("data", (d) => {
        out += d
        const m = /at (http:\/\/\S+) \(.*MCP (\S+)\)/.exec(out)
        if (m !== null) resolve(m[2]!)
      })
      child.once("close", (code) => reject(new Error(`serve exited with ${code}: ${out}`)))
    })
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/)
    const client = new Client({ name: "organism-test", version: "1.0.0" })
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } }))
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(["librarian"])
      const result = await client.callTool({ name: "librarian", arguments: { text: "What is the plan?" } })
      expect(result).toMatchObject({ isError: false, structuredContent: { status: "ok", text: expect.stringMatching(/^According to plan\.md/) } })
      const bad = await client.callTool({ name: "librarian", arguments: { text: 42 } }).then(() => undefined, (e) => e)
      expect(bad).toBeInstanceOf(McpError)
      expect(bad.code).toBe(-32602)
    } finally {
      await client.close()
    }
    // Without the token, nothing: the MCP endpoint is behind the same guard as the API.
    const anonymous = new Client({ name: "organism-test", version: "1.0.0" })
    const refused = await anonymous.connect(new StreamableHTTPClientTransport(new URL(url))).then(() => undefined, (e) => e)
    expect(String(refused)).toMatch(/Unauthorized/)
    child.kill("SIGINT")
    expect(await exitOf(child, 15_000)).toBe(130)
  }, 90_000)

  it("organism run on the example: the agent lists and reads the notes through the filesystem MCP server", async () => {
    const r = await exec(process.execPath, [bin, "run", example, "--until-idle", "--json"])
    expect(r.code).toBe(0)
    const hops = r.stdout.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l))
      .filter((e) => e.type === "MessageReceived" && e.to !== "system.boot")
    expect(hops.map((e) => `${e.from} → ${e.to}: ${e.payloadType}`)).toEqual([
      "console → librarian: TextInput",
      "librarian → fs.list_directory: FsListDirectory",
      "fs.list_directory → librarian: FsListDirectoryResult",
      "librarian → fs.read_text_file: FsReadTextFile",
      "fs.read_text_file → librarian: FsReadTextFileResult",
      "librarian → console: TextOutput"
    ])
    expect(hops[2].payload).toMatch(/\[FILE\] done\.md\s+\[FILE\] plan\.md/)
    expect(hops[4].payload).toMatch(/Ship the MCP client first/)
  }, 60_000)

  it("every listener by default; an answer's fields as structuredContent; a SystemError as an error result", async () => {
    // Inside the repository: the module imports effect and the framework from here.
    const dir = mkdtempSync(join(root, "test", ".tmp-mcp-"))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, "calc.ts"), `
import { Effect, Schema } from "effect"
import { Payload, Reply } from "../../src/index.js"
export class Double extends Payload.Class<Double>("Double", { description: "a number to double" })({ value: Schema.Int, note: Schema.optional(Schema.String) }) {}
export class Doubled extends Payload.Class<Doubled>("Doubled")({ value: Schema.Int }) {}
export class Explode extends Payload.Class<Explode>("Explode")({ why: Schema.String }) {}
export const double = (p: Double) => Reply.respond(new Doubled({ value: p.value * 2 }))
export const explode = (p: Explode) => Effect.fail(new Error(p.why))
`)
    writeFileSync(join(dir, "organism.yaml"), `
organism: { name: calc }
listeners:
  - { name: doubler, description: Doubles a number., payload: ./calc.ts#Double, handler: ./calc.ts#double }
  - { name: exploder, payload: ./calc.ts#Explode, handler: ./calc.ts#explode }
`)
    const { client } = await connect([join(dir, "organism.yaml"), "--timeout", "20s"])
    try {
      const { tools } = await client.listTools()
      expect(tools.map((t) => [t.name, t.description])).toEqual([["doubler", "Doubles a number."], ["exploder", "send a Explode to exploder"]])
      expect(tools[0]!.inputSchema).toMatchObject({ properties: { value: { type: "integer" }, note: { type: "string" } }, required: ["value"] })
      const doubled = await client.callTool({ name: "doubler", arguments: { value: 21 } })
      expect(doubled).toMatchObject({ isError: false, structuredContent: { value: 42 }, content: [{ type: "text", text: "<Doubled><Value>42</Value></Doubled>" }] })
      const exploded = await client.callTool({ name: "exploder", arguments: { why: "on purpose" } })
      expect(exploded.isError).toBe(true)
      expect(exploded.content).toEqual([{ type: "text", text: expect.stringMatching(/^failed: /) }])
      const fractional = await client.callTool({ name: "doubler", arguments: { value: 1.5 } }).then(() => undefined, (e) => e)
      expect(fractional).toBeInstanceOf(McpError)
      expect(fractional.message).toMatch(/\["value"\][\s\S]*Expected an integer/)
    } finally {
      await client.close()
    }
  }, 60_000)
})
