/**
 * Durable organisms with real processes and a real Postgres (scripts/test-postgres.sh):
 * two `organism runner` processes, a client (`organism send --wait`) with 20 conversations of
 * the agents example on a loopback mock model, and `kill -9` of one runner mid-turn; a second
 * client sends five more at the moment of the kill (one of them twice). Every conversation
 * completes; the model's request log shows no answered call sent again — only
 * calls in flight at the kill, and exactly as many as the runners counted as repeated.
 */
import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Effect, Layer, Schedule } from "effect"
import type { ChildProcess } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parse, stringify } from "yaml"
import { layerClient } from "../src/cluster/ClusterLayers.js"
import { ConversationWorkflow } from "../src/cluster/ConversationWorkflow.js"
import { ensureSchema, layerPg } from "../src/cluster/Database.js"
import { retryWhileReset } from "../src/cluster/retryWhileReset.js"
import { MockLlmServer } from "../src/llm/MockLlmServer.js"
import { freshDatabase, query } from "./support/postgres.js"
import { bin, exitOf, organism, output, spawnForTest } from "./support/processes.js"

const example = join(__dirname, "..", "examples", "agents")
const dir = mkdtempSync(join(tmpdir(), "organism-durable-"))

/** The agents example on the test's mock model, each answer after `delayMs`. */
const organismOn = (server: MockLlmServer.Service) => {
  const o = parse(readFileSync(join(example, "organism.yaml"), "utf8"))
  o.llm = { retries: 0, backends: [{ name: "local", provider: "openai-compatible", base_url: server.openAiUrl, models: ["mock-1"] }] }
  for (const l of o.listeners) {
    l.payload = l.payload.replace("./", `${example}/`)
    l.accepts = l.accepts?.map((a: string) => a.replace("./", `${example}/`))
  }
  delete o.boot
  const file = join(dir, `agents-${server.port}.yaml`)
  writeFileSync(file, stringify(o))
  return file
}

const slowScript = (delayMs: number) => {
  const script = parse(readFileSync(join(example, "mock-script.yaml"), "utf8"))
  for (const r of script.responses) r.delay = `${delayMs} millis`
  return script
}

/** Collects a child's output; resolves the first stdout line that `test` accepts. */
const watch = (child: ChildProcess) => {
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d) => (stdout += d))
  child.stderr!.on("data", (d) => (stderr += d))
  return {
    out: () => stdout,
    err: () => stderr,
    line: (test: (line: string) => boolean, ms: number) =>
      new Promise<string>((resolve, reject) => {
        const started = Date.now()
        const poll = setInterval(() => {
          const found = stdout.split("\n").find(test)
          if (found !== undefined) {
            clearInterval(poll)
            resolve(found)
          } else if (Date.now() - started > ms || child.exitCode !== null) {
            clearInterval(poll)
            reject(new Error(`no such line within ${ms} ms (exit ${child.exitCode})\n--- stdout\n${stdout}\n--- stderr\n${stderr}`))
          }
        }, 50)
      })
  }
}

const until = (check: () => boolean, ms: number, what: string) =>
  new Promise<void>((resolve, reject) => {
    const started = Date.now()
    const poll = setInterval(() => {
      if (check()) {
        clearInterval(poll)
        resolve()
      } else if (Date.now() - started > ms) {
        clearInterval(poll)
        reject(new Error(`not within ${ms} ms: ${what}`))
      }
    }, 20)
  })

const freePorts = async (n: number): Promise<Array<number>> => {
  const { createServer } = await import("node:net")
  const ports: Array<number> = []
  const servers = []
  for (let i = 0; i < n; i++) {
    const s = createServer()
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()))
    ports.push((s.address() as { port: number }).port)
    servers.push(s)
  }
  for (const s of servers) s.close()
  return ports
}

const runner = (file: string, url: string, port: number) => {
  const child = spawnForTest(process.execPath, [bin, "runner", file, "--database", url, "--port", String(port), "--json"], {
    stdio: ["ignore", "pipe", "pipe"]
  })
  return { child, io: watch(child) }
}

describe("durable organisms: real runners, real Postgres", () => {
  it.live("two runners, 20 conversations, kill -9 of one mid-turn: all complete, no answered call sent twice", () =>
    Effect.gen(function*() {
      const db = freshDatabase("crash")
      const server = yield* MockLlmServer.make({ script: slowScript(150) })
      const file = organismOn(server)
      try {
        const [pa, pb] = yield* Effect.promise(() => freePorts(2))
        const a = runner(file, db.url, pa!)
        const b = runner(file, db.url, pb!)
        const ready = yield* Effect.promise(() =>
          Promise.all([a, b].map((r) => r.io.line((l) => l.startsWith("{\"type\":\"RunnerReady\""), 60_000)))
        )
        expect(JSON.parse(ready[0]!)).toMatchObject({ type: "RunnerReady", organism: "agents", address: `127.0.0.1:${pa}` })
        // Both runners hold shards before the work arrives (assignments refresh every second).
        yield* Effect.sleep("3 seconds")

        const sends = Array.from({ length: 20 }, (_, i) => ["--send", `coordinator=Explain topic ${i} to a beginner.`]).flat()
        const client = spawnForTest(process.execPath, [bin, "send", file, "--database", db.url, "--wait", "--json", ...sends], {
          stdio: ["ignore", "pipe", "pipe"]
        })
        const clientIo = watch(client)
        // A second client, in this process, ready to send the moment the runner dies.
        const pg = yield* Layer.build(layerPg(db.url))
        yield* ensureSchema(db.url).pipe(Effect.provide(pg))
        const inProcess = yield* Layer.build(layerClient.pipe(Layer.provide(Layer.succeedContext(pg))))
        // Mid-turn: some conversations have made model calls, none has finished all five — and
        // the runner about to die has had calls answered, so that its conversations resume on
        // the survivor with stored answers (which runner gets how many is the cluster's choice).
        yield* Effect.promise(() => until(() => server.requests().length >= 25, 60_000, "25 model requests"))
        const sql = Context.get(pg, SqlClient.SqlClient)
        yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM organism_usage WHERE runner = ${`127.0.0.1:${pa}`}`.pipe(
          Effect.map((rows) => rows[0]!.n),
          Effect.repeat({ until: (n) => n > 0, schedule: Schedule.spaced("20 millis") }),
          Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("the runner to kill had no model call answered within 60 s") })
        )
        const killedAt = Date.now()
        a.child.kill("SIGKILL")
        // Sent while the dead runner still owns half the shards: the client retries until a
        // runner takes them, and sending the same envelope twice is one conversation.
        // As `organism send` does: again when the connection to the dying runner was reset.
        const late = yield* Effect.forEach([0, 1, 2, 3, 4, 3], (i) =>
          retryWhileReset(ConversationWorkflow.execute({
            id: `late-${i}`,
            to: "coordinator",
            from: "console",
            payload: `<TextInput><Text>Explain late topic ${i}.</Text></TextInput>`
          })), { concurrency: "unbounded" }).pipe(Effect.provide(inProcess), Effect.timeout("60 seconds"))
        expect(late.map((e) => e.reason)).toEqual(["completed", "completed", "completed", "completed", "completed", "completed"])
        expect(late[5]).toEqual(late[3])
        const code = yield* Effect.promise(() => exitOf(client, 60_000))
        const finished = (Date.now() - killedAt) / 1000
        expect(code, `${clientIo.out()}\n${clientIo.err()}`).toBe(0)

        const ends = clientIo.out().trim().split("\n").map((l) => JSON.parse(l))
        expect(ends).toHaveLength(20)
        expect(ends.every((e) => e.type === "ConversationEnded" && e.reason === "completed")).toBe(true)
        expect(new Set(ends.map((e) => e.conversation)).size).toBe(20)
        for (const e of ends) expect(e.replies.map((r: { type: string }) => r.type)).toEqual(["TextOutput"])

        // The model's log: 5 calls a conversation, plus only the calls in flight at the kill.
        const requests = server.requests().filter((r) => r.endpoint === "chat")
        const sends_ = query<{ conversation: string; call: string; sends: number }>(db.url, "SELECT conversation, call, sends FROM organism_llm_sends")
        const repeated = sends_.reduce((n, s) => n + s.sends - 1, 0)
        expect(sends_).toHaveLength(125)
        expect(Math.max(...sends_.map((s) => s.sends))).toBeLessThanOrEqual(2)
        // At most one call a conversation is sent again: the one in flight when its runner died.
        const repeatsOf = new Map<string, number>()
        for (const s of sends_) if (s.sends > 1) repeatsOf.set(s.conversation, (repeatsOf.get(s.conversation) ?? 0) + 1)
        expect([...repeatsOf.values()].every((n) => n === 1)).toBe(true)
        // A send is noted before its request goes out: one killed in between is noted, not sent.
        expect(requests.length).toBeGreaterThanOrEqual(125)
        expect(requests.length).toBeLessThanOrEqual(125 + repeated)
        // A request sent twice was first sent before the kill, and answered by then at the latest.
        const byBody = new Map<string, Array<number>>()
        for (const r of requests.filter((r) => r.system.includes(`You are "coordinator"`))) {
          const key = JSON.stringify(r.body)
          byBody.set(key, [...(byBody.get(key) ?? []), r.time.getTime()])
        }
        // The coordinator's requests carry their conversation's topic: one body is one call.
        expect(byBody.size).toBe(75)
        for (const times of byBody.values()) {
          if (times.length > 1) expect(times[0]!).toBeLessThanOrEqual(killedAt)
        }

        // Each conversation's journal has its five model calls; those answered from the store
        // on the survivor are recorded as such, as many as it counted.
        const journals = query<{ runs: number; journal: string }>(db.url, "SELECT runs, journal FROM organism_conversations")
        let storedCalls = 0
        for (const j of journals) {
          const lines = j.journal.trim().split("\n").map((l) => JSON.parse(l))
          expect(lines.filter((l) => l.type === "model-call" && l.step === "completed")).toHaveLength(5)
          storedCalls += lines.filter((l) => l.type === "model-call" && l.step === "started" && l.provider === "stored").length
        }
        expect(storedCalls).toBeGreaterThan(0)

        // Status (after a heartbeat): the survivor alive, the killed runner gone, every conversation completed.
        yield* Effect.sleep("1200 millis")
        const status = yield* Effect.promise(() => organism(["status", "--database", db.url, "--json"]))
        expect(status.code, output(status)).toBe(0)
        const s = JSON.parse(status.stdout)
        expect(s.conversations).toEqual({ running: 0, waitingForApproval: 0, completed: 25, failed: 0 })
        expect(s.runners.filter((r: { alive: boolean }) => r.alive).map((r: { address: string }) => r.address)).toEqual([`127.0.0.1:${pb}`])
        // The usage ledger has each answered call once (a call killed before its answer was stored has none or two).
        expect(s.counters.llmRepeated).toBe(repeated)
        expect(s.counters.llmReplayed).toBe(storedCalls)
        expect(s.usage.requests).toBeGreaterThanOrEqual(125)
        expect(s.usage.requests).toBeLessThanOrEqual(125 + repeated)
        // Failover: the killed runner's conversations started again on the survivor within 10 s.
        const resumed = query<{ runs: number; resumed_ms: number | null }>(
          db.url,
          "SELECT runs, (EXTRACT(EPOCH FROM resumed_at) * 1000)::float8 AS resumed_ms FROM organism_conversations"
        )
        const moved = resumed.filter((r) => r.runs > 1)
        expect(moved.length).toBeGreaterThan(0)
        const failover = (Math.max(...moved.map((r) => r.resumed_ms!)) - killedAt) / 1000
        expect(failover).toBeLessThanOrEqual(10)
        console.log(
          `durable crash: ${requests.length} model requests, ${repeated} repeated (in flight at the kill), ` +
            `${moved.length} conversations moved, all resumed ${failover.toFixed(1)} s after the kill, all done ${finished.toFixed(1)} s after it`
        )
        b.child.kill("SIGTERM")
        yield* Effect.promise(() => exitOf(b.child, 20_000))
      } finally {
        db.drop()
      }
    }).pipe(Effect.scoped), { timeout: 150_000 })
})
