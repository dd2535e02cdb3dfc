/** `organism validate`, as a process: every problem in one run, --json, API keys. */
import { describe, expect, it, vi } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { organism, output, root } from "./support/processes.js"

vi.setConfig({ testTimeout: 120_000 })

const dir = mkdtempSync(join(tmpdir(), "organism-validate-"))
const hello = join(root, "examples/hello")
const write = (name: string, text: string) => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}
const { OPENAI_API_KEY: _o, ANTHROPIC_API_KEY: _a, ...keyless } = process.env

/** Eight mistakes of five kinds: schema, API key, module, export, cross-reference. */
const eightMistakes = `organism:
  name: x
  colour: blue
llm:
  backends:
    - name: cloud
      provider: openai
      models: [gpt-4o-mini]
listeners:
  - name: greeter
    payload: ${hello}/payloads.ts#Greting
    handler: ${hello}/handlers.ts#greet
    peers: [shoutr]
    timeout: forever
  - name: shouter
    payload: ./nowhere.ts#X
    handler: ${hello}/handlers.ts#shot
boot:
  - to: greter
    payload: <Greeting><Name>World</Name></Greeting>
`

describe("organism validate", () => {
  it.live("lists every problem of a file in one run, in file order, exit 1", () =>
    Effect.promise(async () => {
      const r = await organism(["validate", write("eight.yaml", eightMistakes)], { env: keyless })
      expect(r.code, output(r)).toBe(1)
      expect(r.stdout).toBe("")
      const lines = r.stderr.trim().split("\n")
      expect(lines[0]).toMatch(/^organism: 8 problems in .*eight\.yaml:$/)
      expect(lines.slice(1).map((l) => l.replace(/^ {2}.*eight\.yaml:/, ""))).toEqual([
        expect.stringMatching(/^3:3: organism\.colour: unknown key "colour"/),
        `6:7: llm.backends[0] "cloud": backend "cloud" (openai): the environment variable OPENAI_API_KEY that should hold its API key is not set`,
        expect.stringMatching(/^11:\d+: listeners\[0\] "greeter"\.payload: module .*payloads\.ts has no export "Greting" \(it exports: Greeting, GreetingResponse, ShoutedResponse\) — did you mean "Greeting"\?$/),
        `13:13: listeners[0] "greeter".peers[0]: peer "shoutr" is not a listener of this organism (did you mean "shouter"?)`,
        expect.stringMatching(/^14:\d+: listeners\[0\] "greeter"\.timeout: expected a duration/),
        expect.stringMatching(/^16:\d+: listeners\[1\] "shouter"\.payload: module \.\/nowhere\.ts not found/),
        expect.stringMatching(/^17:\d+: listeners\[1\] "shouter"\.handler: .*has no export "shot" .* — did you mean "shout"\?$/),
        `19:9: boot[0].to: "greter" is not a listener of this organism (did you mean "greeter"?)`
      ])
    }))

  it.live("--json: one object on stdout, with the problems located", () =>
    Effect.promise(async () => {
      const bad = await organism(["validate", "--json", write("eight-json.yaml", eightMistakes)], { env: keyless })
      expect(bad.code, output(bad)).toBe(1)
      const v = JSON.parse(bad.stdout)
      expect(v).toMatchObject({ ok: false, organism: null, listeners: null, payloadTypes: null })
      expect(v.problems).toHaveLength(8)
      expect(v.problems[1]).toEqual({
        file: expect.stringMatching(/eight-json\.yaml$/),
        line: 6,
        column: 7,
        key: `llm.backends[0] "cloud"`,
        message: `backend "cloud" (openai): the environment variable OPENAI_API_KEY that should hold its API key is not set`
      })
      const ok = await organism(["validate", "--json", "examples/agents/organism.yaml"], { env: keyless })
      expect(ok.code, output(ok)).toBe(0)
      expect(JSON.parse(ok.stdout)).toEqual({
        file: "examples/agents/organism.yaml",
        ok: true,
        organism: "agents",
        listeners: 4,
        payloadTypes: expect.any(Number),
        problems: []
      })
    }))

  it.live("an API key that is set, and a mock script with a mistake in it", () =>
    Effect.promise(async () => {
      const keyed = write("keyed.yaml", `organism:
  name: keyed
llm:
  backends:
    - name: cloud
      provider: anthropic
      api_key_env: MY_KEY
      models: [claude]
listeners:
  - name: helper
    agent: true
    payload: TextInput
    prompt: Help.
`)
      const missing = await organism(["validate", keyed], { env: keyless })
      expect(missing.code).toBe(1)
      expect(missing.stderr).toMatch(/backend "cloud" \(anthropic\): the environment variable MY_KEY that should hold its API key is not set/)
      const set = await organism(["validate", keyed], { env: { ...keyless, MY_KEY: "k" } })
      expect(set.code, output(set)).toBe(0)
      expect(set.stdout).toMatch(/ok — organism "keyed", 2 listeners/)

      write("script.yaml", "responses:\n  - text: hi\n    tims: 2\n")
      const scripted = await organism(["validate", write("scripted.yaml", `organism:
  name: scripted
llm:
  backends:
    - name: local
      provider: mock
      script: ./script.yaml
      models: [m]
listeners:
  - name: helper
    agent: true
    payload: TextInput
    prompt: Help.
`)])
      expect(scripted.code).toBe(1)
      expect(scripted.stderr).toMatch(/script\.yaml:3:\d+: responses\[0\]\.tims: unknown key "tims" \(did you mean "times"\?\)/)
    }))

  it.live("a project without \"type\": \"module\": said first, and once per module", () =>
    Effect.promise(async () => {
      // Inside the repository (for its node_modules), in a package of its own that is CommonJS.
      const project = mkdtempSync(join(root, "test", ".tmp-commonjs-"))
      try {
        writeFileSync(join(project, "package.json"), `{ "name": "cjs", "type": "commonjs" }`)
        writeFileSync(join(project, "payloads.ts"), `import { Schema } from "effect"
import { Payload } from "${join(root, "src/index.js")}"
export class Ping extends Payload.Class<Ping>("Ping")({ n: Schema.Number }) {}
export const nothing = () => undefined
`)
        const file = join(project, "organism.yaml")
        writeFileSync(file, `organism:
  name: commonjs
listeners:
  - name: one
    payload: ./payloads.ts#Ping
    handler: ./payloads.ts#nothing
`)
        const r = await organism(["validate", file])
        expect(r.code, output(r)).toBe(1)
        expect(r.stderr).toMatch(
          /organism: 2 problems in .*\n {2}.*organism\.yaml:5:\d+: listeners\[0\] "one"\.payload: module \.\/payloads\.ts is not an ES module: .*does not say "type": "module", so it is compiled as CommonJS, which cannot import the framework\. Add "type": "module" to that package\.json, or name the file \.mts/
        )
        expect(r.stderr).toMatch(/organism\.yaml:6:\d+: listeners\[0\] "one"\.handler: module \.\/payloads\.ts failed to load \(see line 5, listeners\[0\] "one"\.payload\)\n$/)
      } finally {
        rmSync(project, { recursive: true, force: true })
      }
    }))
})
