/**
 * serve: C concurrent HTTP clients inject pingpong conversations (H hops each) through
 * `organism serve`'s API (POST /api/inject, JSON fields) while N Server-Sent-Event clients
 * receive every event; then the same workload — C concurrent injectors, the same organism,
 * the same conversation index and live-event hub — injected in-process with `pump.inject`.
 * Both phases run for the same time in this run; `ratio` is HTTP hops/s over in-process hops/s.
 *
 * The HTTP clients and the SSE readers run in a child process (fetch), as remote clients
 * would; on a machine with few cores they still compete with the server for CPU.
 */
import { Duration, Effect } from "effect"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { Reply } from "../src/domain/Reply.js"
import { Pump } from "../src/pipeline/Pump.js"
import { ReloadFailed } from "../src/server/ServeApi.js"
import type { ServeState } from "../src/server/ServeHandlers.js"
import { observeForServer } from "../src/server/serveOrganism.js"
import { startServer } from "../src/server/Server.js"
import { LlmRouter } from "../src/services/LlmRouter.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { parsePayloadXml } from "../src/config/loadOrganism.js"
import { type ChildProcess, spawn } from "node:child_process"
import { percentile, Ping, pingValue, round, rssMb } from "./support.js"

/**
 * The HTTP side, run by `node -e` in a child process: N subscribers on /api/events, then C
 * clients injecting for S seconds. Prints "start" when every subscriber is live, then one
 * JSON line with what it measured.
 */
const CLIENTS = `
const [url, clients, subscribers, seconds] = process.argv.slice(1).map((a, i) => (i === 0 ? a : Number(a)))
let sseBytes = 0
const abort = new AbortController()
let live = 0
const readers = Array.from({ length: subscribers }, async () => {
  const res = await fetch(url + "api/events", { signal: abort.signal })
  const reader = res.body.getReader()
  let first = true
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      if (first) { first = false; live++ }
      sseBytes += value.length
    }
  } catch {}
})
while (live < subscribers) await new Promise((r) => setTimeout(r, 10))
console.log("start")
const stopAt = performance.now() + seconds * 1000
const latencies = []
let requests = 0
let refused = 0
const client = async (c) => {
  const body = JSON.stringify({ to: "ping", type: "Ping", fields: { n: 1, text: "Hello there, friend: how is the weather today?", sender: "c" + c } })
  while (performance.now() < stopAt) {
    const t0 = performance.now()
    const res = await fetch(url + "api/inject", { method: "POST", headers: { "content-type": "application/json" }, body })
    await res.arrayBuffer()
    latencies.push(performance.now() - t0)
    if (res.status === 202) requests++
    else if (res.status === 429) refused++
    else throw new Error("serve bench: HTTP " + res.status)
  }
}
await Promise.all(Array.from({ length: clients }, (_, c) => client(c)))
console.log(JSON.stringify({ requests, refused, latencies, sseBytes }))
abort.abort()
process.exit(0)
`

/** Lines a child prints, one at a time. */
const readLines = (child: ChildProcess) => {
  let buffer = ""
  const waiting: Array<(line: string) => void> = []
  const ready: Array<string> = []
  child.stdout!.on("data", (d: Buffer) => {
    buffer += d.toString()
    let i: number
    while ((i = buffer.indexOf("\n")) !== -1) {
      const line = buffer.slice(0, i)
      buffer = buffer.slice(i + 1)
      const w = waiting.shift()
      if (w !== undefined) w(line)
      else ready.push(line)
    }
  })
  return {
    next: () => new Promise<string>((resolve, reject) => {
      const line = ready.shift()
      if (line !== undefined) return resolve(line)
      waiting.push(resolve)
      child.once("exit", (code) => reject(new Error(`serve bench: the clients exited with ${code}`)))
    })
  }
}

export interface ServeBenchOptions {
  readonly clients: number
  readonly hops: number
  readonly subscribers: number
  readonly seconds: number
}

const organismOf = (hops: number) =>
  Organism.make({
    name: "serve-bench",
    settings: { guards: { maxInvocationsPerThread: hops + 10 }, maxConcurrentHandlers: 64 },
    listeners: [
      Listener.make({
        name: "ping",
        payload: Ping,
        handler: (p) => (p.n >= hops ? Reply.none : Reply.forward("pong", pingValue(p.n + 1, p.sender)))
      }),
      Listener.make({
        name: "pong",
        payload: Ping,
        handler: (p) => (p.n >= hops ? Reply.none : Reply.respond(pingValue(p.n + 1, p.sender)))
      })
    ]
  })

interface PhaseResult {
  readonly requests: number
  readonly refused: number
  readonly hops: number
  readonly elapsed: number
  readonly latencies: Float64Array
  readonly sseBytes: number
  readonly rss: number
}

const phase = (mode: "http" | "in-process", options: ServeBenchOptions) =>
  Effect.gen(function*() {
    const engine = yield* XmlEngine
    const models = yield* LlmRouter
    const { index, live } = yield* observeForServer
    const pump = yield* Pump.make(organismOf(options.hops))
    yield* pump.awaitIdle
    const latencies: Array<number> = []
    let requests = 0
    let refused = 0
    let sseBytes = 0
    const before = pump.counters().invocations
    let started = 0
    let elapsed = 0
    let hops = 0
    let rss = 0
    const stopAt = () => started + options.seconds * 1000
    const measure = () => {
      elapsed = (performance.now() - started) / 1000
      hops = pump.counters().invocations - before
      rss = rssMb()
    }

    if (mode === "http") {
      const state: ServeState = {
        file: "(bench)",
        pump,
        engine,
        models,
        index,
        live,
        parsePayloadXml: (xml) => parsePayloadXml(engine, xml),
        reload: Effect.fail(new ReloadFailed({ message: "not in the benchmark", problems: [] })),
        admissionWait: Duration.seconds(1)
      }
      const { url } = yield* startServer(state, { host: "127.0.0.1", port: 0, token: undefined })
      // The clients live in another process, as they would: their own cost (100 readers
      // parsing the event streams) does not land on the server's thread.
      const child = spawn(process.execPath, ["--input-type=module", "-e", CLIENTS, url, String(options.clients), String(options.subscribers), String(options.seconds)], {
        stdio: ["ignore", "pipe", "inherit"]
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
      const lines = readLines(child)
      const ready = yield* Effect.promise(() => lines.next())
      if (ready !== "start") throw new Error(`serve bench: the clients said ${ready}`)
      started = performance.now()
      const report = JSON.parse(yield* Effect.promise(() => lines.next())) as {
        requests: number
        refused: number
        latencies: Array<number>
        sseBytes: number
      }
      measure()
      requests = report.requests
      refused = report.refused
      latencies.push(...report.latencies)
      sseBytes = report.sseBytes
      yield* pump.awaitIdle
    } else {
      started = performance.now()
      const injector = (c: number) =>
        Effect.gen(function*() {
          while (performance.now() < stopAt()) {
            const t0 = performance.now()
            yield* pump.inject("ping", pingValue(1, `c${c}`))
            latencies.push(performance.now() - t0)
            requests++
            // The HTTP clients wait for a response; an in-process injector yields, so that
            // C injectors share the thread with the pump the same way.
            yield* Effect.yieldNow()
          }
        })
      yield* Effect.forEach(Array.from({ length: options.clients }, (_, c) => c), injector, { concurrency: "unbounded", discard: true })
      measure()
      yield* pump.awaitIdle
    }
    const c = pump.counters()
    if (c.rejected + c.guardStopped > 0) throw new Error(`serve bench: ${JSON.stringify(c)}`)
    const result: PhaseResult = { requests, refused, hops, elapsed, latencies: Float64Array.from(latencies).sort(), sseBytes, rss }
    return result
  }).pipe(
    Effect.scoped,
    Effect.provide(LlmRouter.layerNone("the serve benchmark calls no model")),
    Effect.provide(Pump.layerServices)
  )

export const serveBench = (options: ServeBenchOptions) =>
  Effect.gen(function*() {
    // Warm-up: both paths, briefly.
    const warm = { ...options, seconds: Math.min(0.5, options.seconds), subscribers: Math.min(options.subscribers, 5) }
    yield* phase("in-process", warm)
    yield* phase("http", warm)
    const http = yield* phase("http", options)
    const local = yield* phase("in-process", options)
    const httpHops = http.hops / http.elapsed
    const localHops = local.hops / local.elapsed
    return {
      name: "serve",
      clients: options.clients,
      hops: options.hops,
      sse_subscribers: options.subscribers,
      seconds: options.seconds,
      requests_per_s: Math.round(http.requests / http.elapsed),
      refused_429: http.refused,
      p50_ms: round(percentile(http.latencies, 50), 3),
      p99_ms: round(percentile(http.latencies, 99), 3),
      hops_per_s: Math.round(httpHops),
      sse_mb_per_s: round(http.sseBytes / 1024 / 1024 / http.elapsed, 1),
      rss_mb: http.rss,
      inprocess_injections_per_s: Math.round(local.requests / local.elapsed),
      inprocess_p50_ms: round(percentile(local.latencies, 50), 3),
      inprocess_p99_ms: round(percentile(local.latencies, 99), 3),
      inprocess_hops_per_s: Math.round(localHops),
      inprocess_rss_mb: local.rss,
      ratio: round(httpHops / localHops)
    }
  })
