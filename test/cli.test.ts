/** The `organism` command line, run as a real process. */
import { describe, expect, it, vi } from "@effect/vitest"
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

// Each case starts one or more Node processes (~1.5 s of CPU each): generous on a busy machine.
vi.setConfig({ testTimeout: 120_000 })

const root = join(__dirname, "..")
const bin = join(root, "bin", "organism.js")
const dir = mkdtempSync(join(tmpdir(), "organism-cli-"))
const hello = "examples/hello/organism.yaml"

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command in the repository, feeding it `input`, and collects what it printed. */
const exec = (command: string, args: ReadonlyArray<string>, input?: string, env: NodeJS.ProcessEnv = process.env): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, env, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(input ?? "")
  })

const organism = (args: ReadonlyArray<string>, input?: string, env?: NodeJS.ProcessEnv): Promise<Run> =>
  exec(process.execPath, [bin, ...args], input, env)

const file = (name: string, text: string) => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

const ENV = "https://xml-pipeline.org/ns/envelope/v1"
const THREAD = "550e8400-e29b-41d4-a716-446655440000"
const envelope = (payload: string, meta = `<from>console</from><to>greeter</to><thread>${THREAD}</thread>`) =>
  `<message xmlns="${ENV}"><meta>${meta}</meta>${payload}</message>`

describe("organism inspect", () => {
  it("prints the verdict as one JSON object; exit 0 when accepted", async () => {
    const r = await organism(["inspect", file("ok.xml", envelope(`<Greeting xmlns=""><Name>Ada</Name></Greeting>`)), "--json"])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual({
      accepted: true,
      stage: "thread",
      kind: null,
      diagnostics: [],
      from: "console",
      to: "greeter",
      thread: THREAD,
      payloadTag: "Greeting"
    })
  })

  it("validates and decodes against an organism's listeners; --c14n adds the canonical form", async () => {
    const xml = `<?xml version="1.0"?>\n<message xmlns="${ENV}">\n <meta><from>console</from><to>greeter</to><thread>${THREAD}</thread></meta>\n <Greeting xmlns="" ><Name>Ada</Name></Greeting>\n</message>`
    const r = await organism(["inspect", "--organism", hello, "--c14n", "--json", file("c14n.xml", xml)])
    expect(r.code).toBe(0)
    const v = JSON.parse(r.stdout)
    expect(v).toMatchObject({ accepted: true, stage: "decode", payloadTag: "Greeting" })
    expect(v.canonical).toBe(
      `<message xmlns="${ENV}">\n <meta><from>console</from><to>greeter</to><thread>${THREAD}</thread></meta>\n <Greeting xmlns=""><Name>Ada</Name></Greeting>\n</message>`
    )
  })

  it("exit 1 with the stage, kind and diagnostics when rejected", async () => {
    const r = await organism(["inspect", "--organism", hello, "--json", file("bad.xml", envelope(`<Greeting xmlns=""><Nom>Ada</Nom></Greeting>`))])
    expect(r.code).toBe(1)
    const v = JSON.parse(r.stdout)
    expect(v).toMatchObject({ accepted: false, stage: "payload", kind: "PayloadInvalid", from: "console", payloadTag: "Greeting" })
    expect(v.diagnostics.join("\n")).toMatch(/Element 'Nom': This element is not expected/)
  })

  it("reads standard input with -, readable output by default", async () => {
    const r = await organism(["inspect", "-"], envelope(`<A xmlns=""/><B xmlns=""/>`))
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/^rejected at envelope: SeveralPayloads/)
  })

  it("--payloads validates against a module's payload types", async () => {
    const r = await organism(["inspect", "--payloads", "examples/hello/payloads.ts", "--json", "-"], envelope(`<ShoutedResponse xmlns=""><Message>HI</Message></ShoutedResponse>`))
    expect(JSON.parse(r.stdout)).toMatchObject({ accepted: true, stage: "decode", payloadTag: "ShoutedResponse" })
  })

  it("exit 2 for usage errors", async () => {
    const missing = await organism(["inspect", "no-such-file.xml"])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/cannot read no-such-file\.xml: no such file/)
    const both = await organism(["inspect", "--organism", hello, "--payloads", "x.ts", "-"])
    expect(both.code).toBe(2)
    const unknownOption = await organism(["inspect", "--bogus", "-"])
    expect(unknownOption.code).toBe(2)
  })
})

describe("organism schema and validate", () => {
  it("output cut short by its reader (| head) ends quietly", async () => {
    // A real pipe into `head`, which exits after the first line while the CLI still writes.
    const r = await exec("bash", ["-o", "pipefail", "-c", `"${process.execPath}" "${bin}" schema examples/hello/payloads.ts#Greeting | head -1`])
    expect(r.stdout.trim().split("\n")).toHaveLength(1)
    expect(r.stderr).not.toMatch(/EPIPE|Error/)
    expect(r.code).toBe(0)
  })

  it("schema prints a payload type's XSD and example", async () => {
    const r = await organism(["schema", "examples/hello/payloads.ts#GreetingResponse"])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(`<xs:element name="OriginalSender" type="xs:string"/>`)
    expect(r.stdout).toContain(`<GreetingResponse>\n  <Message>text</Message>`)
    const json = JSON.parse((await organism(["schema", "--json", "examples/hello/payloads.ts#Greeting"])).stdout)
    expect(json.tag).toBe("Greeting")
    const bad = await organism(["schema", "examples/hello/payloads.ts#Nope"])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/has no export "Nope"/)
  })

  it("validate loads modules and compiles every XSD", async () => {
    const ok = await organism(["validate", hello])
    expect(ok.code).toBe(0)
    expect(ok.stdout).toMatch(/ok — organism "hello", 4 listeners, \d+ payload types compiled/)
    const broken = await organism(["validate", file("broken.yaml", "organism:\n  name: x\n  colour: blue\nlisteners: []\n")])
    expect(broken.code).toBe(1)
    expect(broken.stderr).toMatch(/broken\.yaml:3:\d+: organism\.colour: unknown key "colour"/)
  })
})

describe("organism run", () => {
  it("runs hello until idle, printing the conversation", async () => {
    const r = await organism(["run", hello, "--until-idle"])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/console → greeter: <Greeting><Name>World<\/Name><\/Greeting>/)
    expect(r.stdout).toMatch(/shouter → response-handler: <ShoutedResponse><Message>HELLO, WORLD!<\/Message>/)
    expect(r.stdout).toMatch(/✓ thread completed \(3 handler invocations\)/)
    expect(r.stdout).toMatch(/hello: 4 injected, 4 delivered, 0 rejected, 0 stopped by guards/)
  })

  it("--json prints one object per event with the documented keys", async () => {
    const r = await organism(["run", hello, "--until-idle", "--json", "--send", "greeter=<Greeting><Name>Ada</Name></Greeting>"])
    expect(r.code).toBe(0)
    const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l))
    for (const e of events) {
      for (const key of ["type", "thread", "from", "to", "payloadType", "payload"]) expect(e).toHaveProperty(key)
    }
    const shouted = events.filter((e) => e.type === "MessageReceived" && e.to === "response-handler").map((e) => e.payload)
    expect(shouted.sort()).toEqual([
      `<ShoutedResponse><Message>HELLO, ADA!</Message></ShoutedResponse>`,
      `<ShoutedResponse><Message>HELLO, WORLD!</Message></ShoutedResponse>`
    ])
    expect(r.stderr).toMatch(/hello: 7 injected, 7 delivered/)
  })

  it("reads @listener lines from standard input", async () => {
    const r = await organism(["run", hello], "@greeter Grace\n@greeter <Greeting><Name>Alan</Name></Greeting>\n")
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/HELLO, GRACE!/)
    expect(r.stdout).toMatch(/HELLO, ALAN!/)
  })

  it("TextOutput reaching the console is shown as text", async () => {
    const r = await organism(["run", "test/fixtures/echo.yaml"], "@echo hi there\n")
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/echo ⇐ you said <hi there> & more/)
  })

  it("--strict exits 1 when a message was rejected", async () => {
    const r = await organism(["run", hello, "--until-idle", "--strict", "--send", "nobody=<Greeting><Name>x</Name></Greeting>"])
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/rejected at route \(UnknownRoute\)/)
    const lenient = await organism(["run", hello, "--until-idle", "--send", "nobody=<Greeting><Name>x</Name></Greeting>"])
    expect(lenient.code).toBe(0)
  })

  it("runs the LLM agents example on its scripted mock model, with no API key", async () => {
    const { OPENAI_API_KEY: _o, ANTHROPIC_API_KEY: _a, ...env } = process.env
    const r = await organism(["run", "examples/agents/organism.yaml", "--until-idle", "--strict"], undefined, env)
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/coordinator → researcher: <ResearchRequest><Topic>XML envelopes<\/Topic><\/ResearchRequest>/)
    expect(r.stdout).toMatch(/writer → coordinator: <Draft><Title>XML envelopes, explained<\/Title>/)
    expect(r.stdout).toMatch(/coordinator ⇐ The writer delivered/)
    expect(r.stdout).toMatch(/agents: 7 injected, 7 delivered, 0 rejected, 0 stopped by guards, 6 handler invocations; models: 5 calls, \d+ prompt \+ \d+ completion tokens/)
  })

  it("a model backend whose API key is not set: named, exit 2, before anything runs", async () => {
    const { OPENAI_API_KEY: _o, ...env } = process.env
    const r = await organism(["run", file("keyless.yaml", `organism:
  name: keyless
llm:
  backends:
    - name: cloud
      provider: openai
      models: [gpt-4o-mini]
listeners:
  - name: helper
    agent: true
    payload: TextInput
    prompt: Help.
`), "--until-idle"], undefined, env)
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/keyless\.yaml: llm: backend "cloud" \(openai\): .*OPENAI_API_KEY .*not set/)
    expect(r.stdout).toBe("")
  })

  it("--strict exits 1 when a guard stopped a message", async () => {
    const hello = readFileSync(join(root, "examples/hello/organism.yaml"), "utf8")
      .replaceAll("./", `${join(root, "examples/hello")}/`)
      .replace("organism:\n  name: hello", "organism:\n  name: hello\n  guards:\n    max_chain_depth: 1")
    const r = await organism(["run", file("shallow.yaml", hello), "--until-idle", "--strict"])
    expect(r.stdout).toMatch(/⛔ .*max-chain-depth/)
    expect(r.stdout).toMatch(/1 stopped by guards/)
    expect(r.code).toBe(1)
  })

  it("a broken organism file: every problem with file and line, exit 2", async () => {
    const r = await organism(["run", file("bad.yaml", "organism:\n  name: x\nlisteners:\n  - name: a\n    payload: ./nowhere.ts#X\n    handler: ./nowhere.ts#h\n    timeout: forever\n")])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/bad\.yaml:7:\d+: listeners\[0\] "a"\.timeout: expected a duration/)
  })
})
