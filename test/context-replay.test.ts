/**
 * A conversation fitted to a context window, recorded and replayed offline as real processes:
 * the replay fits to the same configured window, so it asks exactly the recorded questions.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { organism } from "./support/processes.js"

vi.setConfig({ testTimeout: 120_000 })

const root = join(__dirname, "..")
const dir = mkdtempSync(join(tmpdir(), "organism-context-replay-"))
const agents = join(root, "examples/agents/organism.yaml")


const started = (path: string) =>
  readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => r.type === "model-call" && r.step === "started")

/** The agents example next to the original, its backend given a small window and a small output cap. */
const variant = (name: string, backend: string, window: number | undefined) => {
  const path = join(root, "examples/agents", `.test-${name}-${process.pid}.yaml`)
  const yaml = readFileSync(agents, "utf8")
    .replace(/- name: scripted\n\s+provider: mock\n\s+script: \.\/mock-script\.yaml/, `- name: scripted\n${backend}` + (window === undefined ? "" : `\n      context_window: ${window}`))
    .replace("  retries: 1", "  retries: 1\n  max_output_tokens: 300")
  writeFileSync(path, yaml)
  return path
}

describe("context fitting, recorded and replayed offline", () => {
  it("the fitted requests are recorded, and the offline replay asks the very same ones", async () => {
    const mock = "      provider: mock\n      script: ./mock-script.yaml"
    const full = variant("full", mock, undefined)
    const fitted = variant("fitted", mock, 2600)
    const unreachable = variant("offline", "      provider: openai-compatible\n      base_url: http://127.0.0.1:9/v1", 2600)
    try {
      const whole = join(dir, "whole.jsonl")
      const journal = join(dir, "fitted.jsonl")
      expect((await organism(["run", full, "--until-idle", "--journal", whole])).code).toBe(0)
      const run = await organism(["run", fitted, "--until-idle", "--journal", journal])
      expect(run.code, run.stderr).toBe(0)
      // The coordinator's last call left out some of its history to fit 2600 tokens.
      const sizes = (path: string) => started(path).map((r) => r.messageHashes.length)
      expect(sizes(whole)).toEqual([2, 2, 4, 2, 6])
      expect(sizes(journal)[4]).toBeLessThan(6)
      expect(run.stdout).toContain("coordinator ⇐")

      const out = join(dir, "replayed.jsonl")
      const replay = await organism(["replay", journal, "--organism", unreachable, "--offline", "--journal", out])
      expect(replay.code, replay.stdout + replay.stderr).toBe(0)
      expect(replay.stdout).toContain("identical")
      expect(started(out).map((r) => r.requestHash)).toEqual(started(journal).map((r) => r.requestHash))
    } finally {
      for (const f of [full, fitted, unreachable]) rmSync(f)
    }
  })
})
