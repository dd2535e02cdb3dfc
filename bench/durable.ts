/**
 * durable: the agents example (a coordinator, a researcher and a writer: five model calls a
 * conversation) on the loopback mock model, embedded and durable, in the same run.
 *
 * - embedded: one pump in this process (what `organism run` does);
 * - durable: two `organism runner` processes on the Postgres of `scripts/test-postgres.sh`
 *   (a fresh database), this process a client sending every conversation at once.
 *
 * Then the failover: the same number of conversations again, and `kill -9` of one runner
 * once a quarter of their model calls were made. Reported: turns/s both ways, the framework's
 * overhead per turn (one conversation at a time, durable against embedded: storing the
 * injection, each model call's activity and answer, the end), conversations lost, calls repeated
 * (sent again because they were in flight at the kill) and failover seconds (from the kill
 * until the last of the dead runner's conversations started again on the survivor).
 */
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { execFileSync, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parse, stringify } from "yaml"
import { layerClient } from "../src/cluster/ClusterLayers.js"
import { ConversationWorkflow } from "../src/cluster/ConversationWorkflow.js"
import { ensureSchema, layerPg } from "../src/cluster/Database.js"
import { layerForOrganism } from "../src/config/layerForOrganism.js"
import { loadOrganism } from "../src/config/loadOrganism.js"
import { TextInput } from "../src/domain/SystemPayloads.js"
import { MockLlmServer } from "../src/llm/MockLlmServer.js"
import { Pump } from "../src/pipeline/Pump.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { median, round } from "./support.js"

export interface DurableOptions {
  /** Conversations at once, in each phase. */
  readonly conversations: number
}

const repo = join(fileURLToPath(new URL(".", import.meta.url)), "..")
const example = join(repo, "examples", "agents")
const CALLS_PER_CONVERSATION = 5

const postgresUrl = () => {
  const env = process.env.ORGANISM_TEST_DATABASE_URL
  if (env !== undefined && env !== "") return env
  const file = join(repo, ".cache", "postgres-url")
  if (!existsSync(file)) throw new Error(`bench durable: no Postgres (${file} is missing): run scripts/test-postgres.sh`)
  return readFileSync(file, "utf8").trim()
}

const psql = (url: string, sql: string) => execFileSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { encoding: "utf8" }).trim()

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer()
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })

/** The example on the bench's mock model (its own script: every answer at once). */
const organismFile = (server: MockLlmServer.Service) => {
  const o = parse(readFileSync(join(example, "organism.yaml"), "utf8"))
  o.llm = { retries: 0, backends: [{ name: "local", provider: "openai-compatible", base_url: server.openAiUrl, models: ["mock-1"] }] }
  o.organism.max_concurrent_handlers = 256
  for (const l of o.listeners) {
    l.payload = l.payload.replace("./", `${example}/`)
    l.accepts = l.accepts?.map((a: string) => a.replace("./", `${example}/`))
  }
  delete o.boot
  const file = join(mkdtempSync(join(tmpdir(), "organism-bench-durable-")), "agents.yaml")
  writeFileSync(file, stringify(o))
  return file
}

const startRunner = (file: string, url: string, port: number) =>
  new Promise<ReturnType<typeof spawn>>((resolve, reject) => {
    const child = spawn(process.execPath, [join(repo, "bin", "organism.js"), "runner", file, "--database", url, "--port", String(port), "--json"], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    let err = ""
    child.stderr.on("data", (d) => (err += d))
    child.stdout.on("data", (d) => {
      out += d
      if (out.includes("RunnerReady")) resolve(child)
    })
    child.once("close", (code) => reject(new Error(`runner exited (${code}) before it was ready:\n${err}`)))
  })

/** Seconds for `n` conversations at once, then the milliseconds of each of `k` run one at a time. */
const embedded = (file: string, n: number, k: number) =>
  Effect.gen(function*() {
    const loaded = yield* loadOrganism(file)
    return yield* Effect.gen(function*() {
      const pump = yield* Pump.make(loaded.organism)
      yield* pump.awaitIdle
      const ask = (i: number) => pump.inject("coordinator", new TextInput({ text: `Explain topic ${i}.`, source: "bench", user: "" }))
      const started = performance.now()
      for (let i = 0; i < n; i++) yield* ask(i)
      yield* pump.awaitIdle
      const seconds = (performance.now() - started) / 1000
      const oneByOne: Array<number> = []
      for (let i = 0; i < k; i++) {
        const t = performance.now()
        yield* ask(n + i)
        yield* pump.awaitIdle
        oneByOne.push(performance.now() - t)
      }
      return { seconds, oneByOne }
    }).pipe(Effect.scoped, Effect.provide(layerForOrganism(loaded)))
  })

export const durableBench = (options: DurableOptions) =>
  Effect.gen(function*() {
    const n = options.conversations
    const server = yield* MockLlmServer.make({ script: parse(readFileSync(join(example, "mock-script.yaml"), "utf8")) })
    const file = organismFile(server)

    const k = 10
    yield* embedded(file, Math.min(n, 4), 0) // warm-up
    const warmCalls = server.requests().length
    const emb = yield* embedded(file, n, k)
    const embeddedCalls = server.requests().length - warmCalls

    const admin = postgresUrl()
    const db = `bench_durable_${process.pid}`
    psql(admin, `CREATE DATABASE ${db}`)
    const url = admin.replace(/\/[^/]*$/, `/${db}`)
    const runners: Array<ReturnType<typeof spawn>> = []
    try {
      const pg = yield* Layer.build(layerPg(url))
      yield* ensureSchema(url).pipe(Effect.provide(pg))
      const ports = [yield* Effect.promise(freePort), yield* Effect.promise(freePort)]
      for (const port of ports) runners.push(yield* Effect.promise(() => startRunner(file, url, port)))
      const client = yield* Layer.build(layerClient.pipe(Layer.provide(Layer.succeedContext(pg))))
      // Both runners take their shards (assignments refresh every second).
      yield* Effect.sleep("3 seconds")
      let sent = 0
      const phase = (tag: string, count: number) =>
        Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) =>
          ConversationWorkflow.execute({
            id: `${tag}-${i}`,
            to: "coordinator",
            from: "console",
            payload: `<TextInput><Text>Explain topic ${tag} ${i}.</Text></TextInput>`
          }).pipe(Effect.tap(() => Effect.sync(() => void sent++))), { concurrency: "unbounded" }).pipe(Effect.provide(client))

      yield* phase("warm", Math.min(n, 4))
      const before = server.requests().length
      const started = performance.now()
      const ends = yield* phase("run", n)
      const durableSeconds = (performance.now() - started) / 1000
      const durableCalls = server.requests().length - before
      // One at a time: what a turn costs in durable mode beyond the embedded one.
      const oneByOne: Array<number> = []
      for (let i = 0; i < k; i++) {
        const t = performance.now()
        yield* phase(`one-${i}`, 1)
        oneByOne.push(performance.now() - t)
      }

      // Failover: kill -9 one runner a quarter of the way through.
      const calls0 = server.requests().length
      const killed = { at: 0 }
      const watcher = Effect.gen(function*() {
        while (server.requests().length - calls0 < (n * CALLS_PER_CONVERSATION) / 4) yield* Effect.sleep("5 millis")
        killed.at = Date.now()
        runners[0]!.kill("SIGKILL")
      })
      const [crashEnds] = yield* Effect.all([phase("crash", n), watcher], { concurrency: "unbounded" })
      const crashCalls = server.requests().length - calls0
      const resumedMs = Number(psql(url, `SELECT coalesce(max(EXTRACT(EPOCH FROM resumed_at) * 1000), 0) FROM organism_conversations WHERE envelope_id LIKE 'crash-%' AND runs > 1`))
      const repeated = Number(psql(url, `SELECT coalesce(sum(sends - 1), 0) FROM organism_llm_sends`))
      const lost = [...ends, ...crashEnds].filter((e) => e.reason !== "completed").length
      const turns = n * CALLS_PER_CONVERSATION
      if (embeddedCalls !== turns + k * CALLS_PER_CONVERSATION || durableCalls !== turns) {
        throw new Error(`durable bench: expected ${turns} model calls each way, got ${embeddedCalls} and ${durableCalls}`)
      }
      return {
        name: "durable",
        conversations: n,
        turns_per_conversation: CALLS_PER_CONVERSATION,
        embedded_turns_per_s: Math.round(turns / emb.seconds),
        durable_turns_per_s: Math.round(turns / durableSeconds),
        // One conversation at a time, the median durable one minus the median embedded one, per turn.
        overhead_ms_per_turn_p50: round((median(oneByOne) - median(emb.oneByOne)) / CALLS_PER_CONVERSATION, 2),
        embedded_conversation_ms_p50: round(median(emb.oneByOne), 1),
        durable_conversation_ms_p50: round(median(oneByOne), 1),
        conversations_lost: lost,
        calls_repeated: repeated,
        failover_s: resumedMs === 0 ? null : round((resumedMs - killed.at) / 1000, 1),
        crash_phase_model_calls: crashCalls
      }
    } finally {
      for (const r of runners) if (r.exitCode === null && r.signalCode === null) r.kill("SIGKILL")
      yield* Effect.sleep("500 millis")
      psql(admin, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
    }
  }).pipe(Effect.scoped, Effect.provide(Layer.merge(NodeContext.layer, XmlEngine.layer)))
