/**
 * Record and replay offline, as real processes: `organism run --journal` keeps every model
 * exchange (request hash, answer); `organism replay --offline` serves the recorded answers
 * with no model and no network, and names the first request that differs.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { organism } from "./support/processes.js"

vi.setConfig({ testTimeout: 120_000 })

const root = join(__dirname, "..")
const dir = mkdtempSync(join(tmpdir(), "organism-offline-"))
const agents = join(root, "examples/agents/organism.yaml")


const modelCalls = (path: string) =>
  readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => r.type === "model-call")

/** The agents example with its text edited, next to the original (its payload module is found the same). */
const variant = (name: string, edit: (yaml: string) => string) => {
  const path = join(root, "examples/agents", `.test-${name}-${process.pid}.yaml`)
  writeFileSync(path, edit(readFileSync(agents, "utf8")))
  return path
}

describe("record and replay offline", () => {
  const journal = join(dir, "agents.jsonl")

  it("the journal keeps each exchange; replayed offline twice it is the identical conversation, with no model", async () => {
    const run = await organism(["run", agents, "--until-idle", "--journal", journal])
    expect(run.code, run.stderr).toBe(0)
    const recorded = modelCalls(journal)
    const completed = recorded.filter((r) => r.step === "completed")
    expect(completed).toHaveLength(5)
    for (const c of completed) expect(c.text.length).toBeGreaterThan(0)
    const hashes = recorded.filter((r) => r.step === "started").map((r) => r.requestHash)
    expect(hashes.every((h: string) => /^[0-9a-f]{64}$/.test(h))).toBe(true)

    // The model's backend pointed at a port nobody listens on: offline, it is never asked.
    const unreachable = variant("unreachable", (y) =>
      y.replace(/- name: scripted\n\s+provider: mock\n\s+script: \.\/mock-script\.yaml/, "- name: scripted\n      provider: openai-compatible\n      base_url: http://127.0.0.1:9/v1"))
    try {
      for (const i of [1, 2]) {
        const out = join(dir, `replay-${i}.jsonl`)
        const r = await organism(["replay", journal, "--organism", unreachable, "--offline", "--journal", out])
        expect(r.code, r.stdout + r.stderr).toBe(0)
        expect(r.stdout).toContain("identical: the same thread trees and payloads")
        // The replay asked the same questions, in the same order, and got the same answers.
        const replayed = modelCalls(out)
        expect(replayed.filter((x) => x.step === "started").map((x) => x.requestHash)).toEqual(hashes)
        expect(replayed.filter((x) => x.step === "completed").map((x) => x.text)).toEqual(completed.map((x) => x.text))
      }
      // Online, that organism cannot answer: the offline run above really used no model.
      const online = await organism(["replay", journal, "--organism", unreachable])
      expect(online.code).toBe(1)
    } finally {
      rmSync(unreachable)
    }
  })

  it("--json prints each model call as a JSON line; the console view shows each answer", async () => {
    const json = await organism(["run", agents, "--until-idle", "--json"])
    expect(json.code, json.stderr).toBe(0)
    const lines = json.stdout.trim().split("\n").map((l) => JSON.parse(l))
    const done = lines.filter((e) => e.type === "LlmCallCompleted")
    expect(done.map((e) => e.agent)).toEqual(["coordinator", "researcher", "coordinator", "writer", "coordinator"])
    expect(done[0]).toMatchObject({ backend: "scripted", model: "mock-1", attempt: 1, finishReason: "stop", truncated: false })
    expect(lines.filter((e) => e.type === "LlmCallStarted")).toHaveLength(5)
    const text = await organism(["run", agents, "--until-idle"])
    expect(text.stdout.match(/◆ \w+ ← mock-1 on scripted: \d+ ms, \d+ in \+ \d+ out tokens\n/g)).toHaveLength(5)
  })

  it("a changed prompt: the first divergence is named, and the replay exits 1", async () => {
    const changed = variant("changed", (y) => y.replace("You research a topic", "You research a subject"))
    try {
      const r = await organism(["replay", journal, "--organism", changed, "--offline"])
      expect(r.code).toBe(1)
      expect(r.stdout).toMatch(/^first divergence: researcher's model call 1 is not the recorded one — the system prompt \(recorded request [0-9a-f]{12}/m)
      const json = await organism(["replay", journal, "--organism", changed, "--offline", "--json"])
      expect(json.code).toBe(1)
      const report = JSON.parse(json.stdout)
      expect(report.identical).toBe(false)
      expect(report.divergence).toMatchObject({ agent: "researcher", call: 1, part: "the system prompt" })
    } finally {
      rmSync(changed)
    }
  })

  it("a journal without model exchanges cannot answer offline: exit 1, the first call named", async () => {
    const bare = join(dir, "bare.jsonl")
    writeFileSync(bare, readFileSync(journal, "utf8").split("\n").filter((l) => !l.includes('"type":"model-call"')).map((l, i) => (l === "" ? l : JSON.stringify({ ...JSON.parse(l), seq: i }))).join("\n"))
    const r = await organism(["replay", bare, "--organism", agents, "--offline"])
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/first divergence: coordinator's model call 1 is not the recorded one — the recording has no call 1 of coordinator/)
  })
})
