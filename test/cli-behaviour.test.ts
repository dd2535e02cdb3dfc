/**
 * How the `organism` command behaves toward a person, as a real process: logs on stderr,
 * stacks with --verbose, "did you mean", help and usage lines, colour only for a terminal,
 * and `organism prompt`.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { loadMockScript } from "./support/files.js"
import { MockLlmServer } from "../src/llm/MockLlmServer.js"
import { agentOf } from "./support/pump.js"
import { organism, output, root } from "./support/processes.js"

vi.setConfig({ testTimeout: 120_000 })

const crashy = "test/fixtures/cli/crashy.yaml"
const ansi = /\x1b\[/

describe("logs and failures", () => {
  it.live("a handler's log lines go to stderr: --json output stays one JSON object per line", () =>
    Effect.promise(async () => {
      const r = await organism(["run", crashy, "--json", "--until-idle", "--send", "doubler=<Ping2><N>21</N></Ping2>"])
      expect(r.code, output(r)).toBe(0)
      const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l))
      expect(events.some((e) => e.type === "MessageReceived" && e.payload === "<Pong><N>42</N></Pong>")).toBe(true)
      expect(r.stderr).toMatch(/INFO .*doubling 21/)
      // Not a terminal: no colour codes.
      expect(r.stderr).not.toMatch(ansi)
    }))

  it.live("--verbose shows a failing handler's stack, thrown or failed in an Effect; without it, one line", () =>
    Effect.promise(async () => {
      const send = ["--send", "crasher=<Ping><N>7</N></Ping>", "--send", "effect-crasher=<Ping3><N>8</N></Ping3>"]
      const quiet = await organism(["run", crashy, "--until-idle", ...send])
      expect(quiet.code, output(quiet)).toBe(0)
      expect(quiet.stdout).toMatch(/⚠ crasher died: Error: boom at 7/)
      expect(quiet.stdout).toMatch(/⚠ effect-crasher failed: effect boom/)
      expect(quiet.stderr).not.toMatch(/ at /)

      const verbose = await organism(["run", crashy, "--until-idle", "--verbose", ...send])
      expect(verbose.code, output(verbose)).toBe(0)
      expect(verbose.stdout).toMatch(/⚠ crasher died: Error: boom at 7/)
      // The user's own frames, at their TypeScript lines; the pump's frames left out.
      expect(verbose.stderr).toMatch(/organism: crasher failed:\n {2}Error: boom at 7\n {6}at explode \(.*test\/fixtures\/cli\/handlers\.ts:7:\d+\)\n {6}at crash \(.*handlers\.ts:10:\d+\)\n/)
      expect(verbose.stderr).not.toMatch(/Dispatcher/)
      expect(verbose.stderr).toMatch(/organism: effect-crasher failed:\n {2}Error: effect boom\n {6}at .*test\/fixtures\/cli\/handlers\.ts:15:\d+/)
    }))
})

describe("did you mean", () => {
  it.live("an unknown command or option: the closest, exit 2, before anything runs", () =>
    Effect.promise(async () => {
      const command = await organism(["rnu", crashy])
      expect(command.code).toBe(2)
      expect(command.stderr).toMatch(/^organism: unknown command "rnu" \(did you mean "run"\?\); the commands are init, run, validate/)
      const option = await organism(["run", crashy, "--jsn"])
      expect(option.code).toBe(2)
      expect(option.stderr).toBe(`organism: organism run has no option --jsn (did you mean --json?); see "organism run --help"\n`)
      expect(option.stdout).toBe("")
    }))

  it.live("a console line or --send for a listener that does not exist", () =>
    Effect.promise(async () => {
      const r = await organism(["run", crashy, "--send", "crashr=<Ping><N>1</N></Ping>", "--send", "DOUBLER=<Ping2><N>1</N></Ping2>"], {
        input: "@dobler <Ping2><N>2</N></Ping2>\n@nobody-at-all hi\n"
      })
      expect(r.code, output(r)).toBe(0)
      expect(r.stderr).toMatch(/organism: no listener is called "crashr" — did you mean "@crasher"\?/)
      expect(r.stderr).toMatch(/organism: no listener is called "dobler" — did you mean "@doubler"\?/)
      expect(r.stderr).toMatch(/organism: no listener is called "nobody-at-all" \(listeners: crasher, doubler, effect-crasher\)/)
      // Still sent, so the counts and --strict see it.
      expect(r.stdout).toMatch(/rejected at route \(UnknownRoute\).*\[from console to dobler\]/)
      // A name that differs only in case is a listener (routing ignores case): no hint.
      expect(r.stderr).not.toMatch(/DOUBLER/)
      expect(r.stdout).toMatch(/console → doubler: <Ping2><N>1<\/N><\/Ping2>/)
    }))
})

describe("help", () => {
  it.live("usage lines name the program, options show their defaults, no colour into a pipe", () =>
    Effect.promise(async () => {
      const top = await organism(["--help"])
      expect(top.code).toBe(0)
      expect(top.stdout).toMatch(/^organism \d+\.\d+\.\d+ — /)
      expect(top.stdout).toMatch(/\n {2}run organism\.yaml +Run an organism, printing its events\n/)
      expect(top.stdout).toMatch(/\n {2}prompt organism\.yaml AGENT +Print the system prompt/)
      const run = await organism(["run", "--help"])
      expect(run.code).toBe(0)
      expect(run.stdout).toMatch(/^usage: organism run \[options\] organism\.yaml\n/)
      expect(run.stdout).toMatch(/--drain-timeout text +on Ctrl-C, how long in-flight work may take to finish \(default: 10s\)/)
      expect(run.stdout).not.toMatch(/\$ run|A true or false value/)
      const mock = await organism(["help", "mock-llm"])
      expect(mock.stdout).toMatch(/--host text +the address to listen on \(default: 127\.0\.0\.1\)/)
      expect(mock.stdout).toMatch(/--port integer +.*\(default: 0\)/)
      for (const r of [top, run, mock]) expect(r.stdout).not.toMatch(ansi)
      // A missing argument: @effect/cli's message, then the usage line.
      const missing = await organism(["validate"])
      expect(missing.code).toBe(2)
      expect(missing.stderr).toMatch(/Missing argument/)
      expect(missing.stderr).toMatch(/usage: organism validate \[options\] organism\.yaml/)
      expect(missing.stderr).not.toMatch(ansi)
    }))
})

describe("organism prompt", () => {
  it.scopedLive("prints exactly the system prompt the agent's model is sent", () =>
    Effect.gen(function*() {
      // The agents example against a mock server on the wire, recording what it is asked.
      const server = yield* MockLlmServer.make({ script: yield* loadMockScript(join(root, "examples/agents/mock-script.yaml")) })
      const dir = mkdtempSync(join(tmpdir(), "organism-prompt-"))
      const file = join(dir, "agents.yaml")
      writeFileSync(
        file,
        readFileSync(join(root, "examples/agents/organism.yaml"), "utf8")
          .replaceAll("./payloads.ts", join(root, "examples/agents/payloads.ts"))
          .replace(/provider: mock\n\s+script: \.\/mock-script\.yaml/, `provider: openai-compatible\n      base_url: ${server.openAiUrl}`)
      )
      const run = yield* Effect.promise(() => organism(["run", file, "--until-idle", "--strict"]))
      expect(run.code, output(run)).toBe(0)
      const asked = server.requests().find((r) => agentOf(r) === "researcher")
      expect(asked).toBeDefined()

      const printed = yield* Effect.promise(() => organism(["prompt", file, "researcher"]))
      expect(printed.code, output(printed)).toBe(0)
      expect(printed.stdout).toBe(`${asked!.system}\n`)
      expect(printed.stdout).toMatch(/^You research a topic/)

      const json = JSON.parse((yield* Effect.promise(() => organism(["prompt", "--json", file, "coordinator"]))).stdout)
      expect(json.agent).toBe("coordinator")
      expect(json.system).toBe(server.requests().find((r) => agentOf(r) === "coordinator")!.system)
      expect(json.usage).toMatch(/<ResearchRequest>/)

      const typo = yield* Effect.promise(() => organism(["prompt", file, "cordinator"]))
      expect(typo.code).toBe(2)
      expect(typo.stderr).toMatch(/"cordinator" is not an agent of .* \(did you mean "coordinator"\?\); its agents: coordinator, researcher, writer/)
    }))
})
