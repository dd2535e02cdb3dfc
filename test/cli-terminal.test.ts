/**
 * `organism run` on a terminal — run under a real pseudo-terminal (util-linux `script`) — and
 * into a pipe: the status line, and colour (only for a terminal, never with NO_COLOR).
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { Effect } from "effect"
import { renderStatus } from "../src/cli/statusLine.js"
import { bin, exec, organism, output } from "./support/processes.js"

vi.setConfig({ testTimeout: 120_000 })

const slow = "test/fixtures/cli/slow.yaml"
// A handler that sleeps 1.5 s, and an agent whose model answers after 1.5 s.
const args = ["run", slow, "--until-idle", "--send", "sleeper=<Ping2><N>1500</N></Ping2>", "--send", "thinker=hello"]
const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`
/** Runs the organism command under a pseudo-terminal; what the terminal showed. */
const onTerminal = (organismArgs: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env) =>
  exec("script", ["-qfec", [process.execPath, bin, ...organismArgs].map(quote).join(" "), "/dev/null"], { env })
const sgr = /\x1b\[[0-9;]*m/

describe("organism run on a terminal", () => {
  it("the status line says what runs: handlers (agents by name and for how long) and model calls", () => {
    expect(renderStatus({ running: 0, agents: [], modelCalls: { inFlight: 0, waiting: 0 }, now: 0 })).toBeUndefined()
    expect(renderStatus({
      running: 3,
      agents: [{ name: "writer", since: 1500 }, { name: "coordinator", since: 0 }],
      modelCalls: { inFlight: 2, waiting: 1 },
      now: 2000
    })).toBe("⋯ 3 handlers running (coordinator 2.0s, writer 0.5s) · 2 model calls in flight, 1 waiting")
    expect(renderStatus({ running: 1, agents: [], modelCalls: { inFlight: 0, waiting: 0 }, now: 0 })).toBe("⋯ 1 handler running")
  })

  it.live("the status line: shown while work runs, erased before other output, gone at the end", () =>
    Effect.promise(async () => {
      const r = await onTerminal(args)
      expect(r.code, output(r)).toBe(0)
      const screen = r.stdout
      expect(screen).toMatch(/⋯ 2 handlers running \(thinker \d\.\ds\) · 1 model call in flight/)
      // Each drawing is erased (carriage return, clear line) before the next output.
      const drawings = screen.split("⋯").length - 1
      expect(drawings).toBeGreaterThan(2)
      expect(screen.split("\r\x1b[K").length - 1).toBeGreaterThanOrEqual(drawings)
      // The event lines and the summary are intact, and the last thing printed is the summary.
      expect(screen).toMatch(/sleeper ⇐ console: <Pong><N>1500<\/N><\/Pong>/)
      expect(screen).toMatch(/thinker ⇐ Done thinking\./)
      expect(screen.trimEnd()).toMatch(/\nslow: 5 injected, 5 delivered, .*$/)
    }))

  it.live("into a pipe: no status line", () =>
    Effect.promise(async () => {
      const r = await organism(args)
      expect(r.code, output(r)).toBe(0)
      expect(r.stderr).toBe("")
      expect(r.stdout).not.toMatch(/⋯|\x1b/)
    }))

  it.live("colour: log lines coloured on a terminal, plain with NO_COLOR", () =>
    Effect.promise(async () => {
      const chatty = ["run", "test/fixtures/cli/crashy.yaml", "--until-idle", "--send", "doubler=<Ping2><N>2</N></Ping2>"]
      const { NO_COLOR: _n, ...env } = process.env
      const coloured = await onTerminal(chatty, env)
      expect(coloured.code, output(coloured)).toBe(0)
      expect(coloured.stdout).toMatch(/INFO.*doubling 2/)
      expect(coloured.stdout).toMatch(sgr)
      const plain = await onTerminal(chatty, { ...env, NO_COLOR: "1" })
      expect(plain.code, output(plain)).toBe(0)
      expect(plain.stdout).toMatch(/INFO \(#\d+\): doubling 2/)
      expect(plain.stdout).not.toMatch(sgr)
    }))
})
