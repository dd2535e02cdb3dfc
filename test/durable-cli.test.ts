/**
 * The durable commands' bad input, with real processes and a real Postgres: an unreachable
 * database, a database of another schema version, a second runner at a taken address — each
 * a clear error and a non-zero exit, with nothing left half-made. And the happy path of one
 * runner: send --wait prints the conversation's end, status counts it.
 */
import { describe, expect, it } from "@effect/vitest"
import { onTestFinished } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { expectUnreachable, freshDatabase, query, UNREACHABLE_URL } from "./support/postgres.js"
import { bin, exitOf, organism, output, readyLine, spawnForTest } from "./support/processes.js"

const agents = join(__dirname, "..", "examples", "agents", "organism.yaml")

const database = (name: string) => {
  const db = freshDatabase(name)
  onTestFinished(db.drop)
  return db
}

const tables = (url: string) =>
  query<{ table_name: string }>(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1").map((t) =>
    t.table_name
  )

describe("durable commands: bad input", () => {
  it.live("an unreachable database: every command says so, naming the URL (never its password), and exits 1", () =>
    Effect.gen(function*() {
      const url = UNREACHABLE_URL
      const runs = yield* Effect.promise(() =>
        Promise.all([
          organism(["status", "--database", url]),
          organism(["send", agents, "--database", url, "--send", "coordinator=hello"]),
          organism(["runner", agents, "--database", url, "--port", "0"])
        ])
      )
      expectUnreachable(runs)
    }), { timeout: 60_000 })

  it.live("a database of another schema version is refused before anything is created", () =>
    Effect.gen(function*() {
      const db = database("version")
      // Another version's tables: only its version table, as a newer organism would leave it.
      const { execFileSync } = yield* Effect.promise(() => import("node:child_process"))
      execFileSync("psql", [db.url, "-qc", "CREATE TABLE organism_schema (version integer NOT NULL); INSERT INTO organism_schema VALUES (99)"])
      const runs = yield* Effect.promise(() =>
        Promise.all([
          organism(["runner", agents, "--database", db.url, "--port", "0"]),
          organism(["status", "--database", db.url])
        ])
      )
      for (const r of runs) {
        expect(r.code, output(r)).toBe(1)
        expect(r.stderr).toContain(`holds organism schema version 99; this organism needs version 2`)
        expect(r.stderr).toContain("Nothing was changed")
      }
      expect(tables(db.url)).toEqual(["organism_schema"])
    }), { timeout: 60_000 })

  it.live("one runner: send --wait prints the end; a second runner at the same address is refused; status counts it all", () =>
    Effect.gen(function*() {
      const db = database("one")
      const first = spawnForTest(process.execPath, [bin, "runner", agents, "--database", db.url, "--port", "0", "--json"], {
        stdio: ["ignore", "pipe", "pipe"]
      })
      const ready = JSON.parse(yield* Effect.promise(() => readyLine(first, 60_000)))
      expect(ready).toMatchObject({ type: "RunnerReady", organism: "agents", pid: first.pid })
      const port = ready.address.split(":")[1]

      const [second, sent] = yield* Effect.promise(() =>
        Promise.all([
          organism(["runner", agents, "--database", db.url, "--port", port]),
          organism(["send", agents, "--database", db.url, "--send", "coordinator=<TextInput><Text>Explain envelopes.</Text></TextInput>", "--id", "e-1", "--wait", "--json"])
        ])
      )
      expect(second.code, output(second)).toBe(2)
      expect(second.stderr).toContain(`a runner is already at 127.0.0.1:${port}`)

      expect(sent.code, output(sent)).toBe(0)
      const end = JSON.parse(sent.stdout)
      expect(end).toMatchObject({ type: "ConversationEnded", id: "e-1", reason: "completed" })
      expect(end.replies[0].xml).toContain("The writer delivered")

      // The same envelope id again: the same conversation's stored end, no new model call.
      const again = yield* Effect.promise(() =>
        organism(["send", agents, "--database", db.url, "--send", "coordinator=<TextInput><Text>Explain envelopes.</Text></TextInput>", "--id", "e-1", "--wait", "--json"])
      )
      expect(JSON.parse(again.stdout)).toEqual(end)

      // Its journal, stored with its end: trace lists it, exports it, and reads the export.
      const exported = join(mkdtempSync(join(tmpdir(), "organism-durable-trace-")), "e-1.jsonl")
      const [listed, file] = yield* Effect.promise(() =>
        Promise.all([
          organism(["trace", "e-1", "--database", db.url, "--json"]),
          organism(["trace", "e-1", "--database", db.url, "--export", exported])
        ])
      )
      expect(listed.code, output(listed)).toBe(0)
      const conversations = JSON.parse(listed.stdout)
      expect(conversations).toHaveLength(1)
      expect(conversations[0]).toMatchObject({ from: "console", to: "coordinator", payloadType: "TextInput", completed: true })
      expect(file.code, output(file)).toBe(0)
      const lines = readFileSync(exported, "utf8").trim().split("\n").map((l) => JSON.parse(l))
      expect(lines[0]).toMatchObject({ type: "header", organism: "agents" })
      expect(lines.at(-1)).toMatchObject({ type: "closed" })
      expect(lines.filter((l) => l.type === "model-call" && l.step === "completed")).toHaveLength(5)
      const traced = yield* Effect.promise(() => organism(["trace", exported, conversations[0].root, "--json"]))
      expect(traced.code, output(traced)).toBe(0)
      const missing = yield* Effect.promise(() => organism(["trace", "no-such-envelope", "--database", db.url]))
      expect(missing.code).toBe(1)
      expect(missing.stderr).toContain("no durable conversation no-such-envelope")

      // Heartbeats are written every second.
      yield* Effect.sleep("1500 millis")
      const status = yield* Effect.promise(() => organism(["status", "--database", db.url, "--json"]))
      expect(status.code, output(status)).toBe(0)
      const s = JSON.parse(status.stdout)
      expect(s.conversations).toEqual({ running: 0, waitingForApproval: 0, completed: 1, failed: 0 })
      expect(s.runners).toHaveLength(1)
      expect(s.runners[0]).toMatchObject({ address: ready.address, alive: true })
      expect(s.counters).toMatchObject({ conversationsStarted: 1, conversationsCompleted: 1, llmCalls: 5, llmReplayed: 0, llmRepeated: 0 })
      expect(s.usage.requests).toBe(5)

      const human = yield* Effect.promise(() => organism(["status", "--database", db.url]))
      expect(human.stdout).toContain("conversations: 0 running, 0 waiting for approval, 1 completed, 0 failed")

      first.kill("SIGTERM")
      expect(yield* Effect.promise(() => exitOf(first, 20_000))).not.toBeNull()
      const after = JSON.parse((yield* Effect.promise(() => organism(["status", "--database", db.url, "--json"]))).stdout)
      expect(after.runners[0].alive).toBe(false)
    }), { timeout: 120_000 })
})
