/**
 * Human approval at `organism run`, as a real process: a person approves or denies at the
 * console; a run that ends idle with messages still waiting says so and stops them.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { Effect } from "effect"
import { exitOf, bin, organism, output, root, spawnForTest } from "./support/processes.js"

vi.setConfig({ testTimeout: 120_000 })

const gated = "test/fixtures/cli/approval.yaml"
const send = ["--send", "doubler=<Ping2><N>21</N></Ping2>"]

/** Runs the organism interactively: once a message waits, types `answer(id)` and ends input. */
const decideAtConsole = (answer: (id: string) => string) =>
  Effect.promise(async () => {
    const child = spawnForTest(process.execPath, [bin, "run", gated, ...send], { cwd: root, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stderr!.on("data", (d) => (stderr += d))
    const typed = new Promise<void>((resolve) => {
      child.stdout!.on("data", (d) => {
        stdout += d
        const id = /approve: !approve ([0-9a-f]{12})/.exec(stdout)?.[1]
        if (id !== undefined && child.stdin!.writable) {
          child.stdin!.end(`${answer(id)}\n`)
          resolve()
        }
      })
    })
    await typed
    const code = await exitOf(child, 60_000)
    return { code, stdout, stderr }
  })

describe("approval at the console", () => {
  it.live("--until-idle ends with the messages still waiting: it says how many and stops them", () =>
    Effect.promise(async () => {
      const r = await organism(["run", gated, "--until-idle", ...send])
      expect(r.code, output(r)).toBe(0)
      expect(r.stdout).toMatch(/⏸ console → doubler waits for approval \(doubler\): <Ping2><N>21<\/N><\/Ping2>/)
      expect(r.stderr).toContain("organism: 1 message still waiting for approval at the end of the run: stopped undecided")
      expect(r.stdout).toMatch(/⛔ guard unapproved at doubler/)
      expect(r.stdout).toContain("2 injected, 1 delivered, 0 rejected, 1 stopped by guards")
      expect(r.stdout).not.toContain("<Pong>")
    }))

  it.live("--json carries the approval events with the full id and the canonical envelope", () =>
    Effect.promise(async () => {
      const r = await organism(["run", gated, "--until-idle", "--json", ...send])
      expect(r.code, output(r)).toBe(0)
      const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l))
      const requested = events.find((e) => e.type === "ApprovalRequested")
      expect(requested).toMatchObject({ listener: "doubler", from: "console", to: "doubler", payloadType: "Ping2" })
      expect(requested.id).toMatch(/^[0-9a-f]{64}$/)
      expect(requested.envelope).toMatch(/<Ping2 xmlns="">\s*<N>21<\/N>\s*<\/Ping2>/)
      expect(events.find((e) => e.type === "ApprovalDecided")).toMatchObject({ id: requested.id, decision: "withdrawn" })
    }))

  it.live("!approve at the console delivers the message", () =>
    Effect.gen(function*() {
      const r = yield* decideAtConsole((id) => `!approve ${id}`)
      expect(r.code, output(r)).toBe(0)
      expect(r.stderr).toMatch(/organism: approved [0-9a-f]{12} \(console → doubler\)/)
      expect(r.stdout).toMatch(/▶ approved by console/)
      expect(r.stdout).toMatch(/doubler ⇐ console: <Pong><N>42<\/N><\/Pong>/)
      expect(r.stdout).toContain("0 stopped by guards")
    }))

  it.live("!deny needs a reason; with one, the message is rejected at the approval stage", () =>
    Effect.gen(function*() {
      const r = yield* decideAtConsole((id) => `!deny ${id}\n!deny ${id} not on a Sunday`)
      expect(r.code, output(r)).toBe(0)
      expect(r.stderr).toContain("!deny needs a reason")
      expect(r.stdout).toMatch(/✗ denied by console: [0-9a-f]{12} \(doubler\): not on a Sunday/)
      expect(r.stdout).toMatch(/✗ rejected at approval \(ApprovalDenied\): denied by an approver: not on a Sunday/)
      expect(r.stdout).not.toContain("<Pong>")
    }))
})
