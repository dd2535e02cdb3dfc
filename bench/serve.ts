/**
 * serve: C concurrent HTTP clients inject pingpong conversations (H hops each) through
 * `organism serve`'s API (POST /api/inject, JSON fields) while N Server-Sent-Event clients
 * receive every event; then the same workload with the same N live clients attached —
 * C concurrent injectors, the same organism, the same server, conversation index and
 * live-event hub — injected in-process with `pump.inject`. Only the injection differs, so
 * `ratio` (HTTP hops/s over in-process hops/s, both phases the same length, in this run) is
 * what the HTTP API costs. (Before, the in-process phase had no live client, and the ratio
 * mixed the cost of delivering every event N times into the cost of HTTP injection.)
 *
 * The HTTP clients and the SSE readers run in child processes, as remote clients would; on a
 * machine with few cores they still compete with the server for CPU, so the figures include
 * the server's own CPU time per hop in both phases.
 */
import { Effect } from "effect"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { Reply } from "../src/domain/Reply.js"
import { toEventLoop } from "../src/pipeline/internal/IoSlice.js"
import { IoFairness } from "../src/pipeline/IoFairness.js"
import { Pump } from "../src/pipeline/Pump.js"
import { makeServeState, observeForServer } from "../src/server/serveOrganism.js"
import { startServer } from "../src/server/Server.js"
import { LlmRouter } from "../src/services/LlmRouter.js"
import { type ChildProcess, spawn } from "node:child_process"
import { median, percentile, Ping, pingValue, round, rssMb } from "./support.js"

/**
 * The HTTP side, run by `node -e` in child processes, as remote clients would be: one process
 * of N subscribers on /api/events (it prints "start" once every one is live, and on stdin's end
 * the bytes it read), and one of C clients injecting for S seconds (node:http with keep-alive;
 * it prints one JSON line with what it measured). Two processes, so that reading the event
 * streams does not hold the injectors back.
 */
const READERS = `
const net = await import("node:net")
const [url, subscribers] = process.argv.slice(1)
const { hostname, port } = new URL(url)
let bytes = 0
let live = 0
// Plain sockets reading into one reused buffer: what a remote client's reading costs its own
// machine, not this one's cores, so the readers take as little of them as they can.
const buffer = Buffer.allocUnsafe(1 << 20)
for (let i = 0; i < Number(subscribers); i++) {
  let first = true
  const socket = net.connect({
    host: hostname,
    port: Number(port),
    onread: {
      buffer,
      callback: (n) => {
        if (first) { first = false; if (++live === Number(subscribers)) console.log("start") }
        bytes += n
      }
    }
  })
  socket.write("GET /api/events HTTP/1.1\\r\\nhost: " + hostname + "\\r\\n\\r\\n")
}
if (Number(subscribers) === 0) console.log("start")
process.stdin.on("data", () => {})
process.stdin.on("end", () => { console.log(JSON.stringify({ bytes })); process.exit(0) })
`

const INJECTORS = `
const http = await import("node:http")
const [url, clients, seconds] = process.argv.slice(1)
const { hostname, port } = new URL(url)
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(clients) })
const stopAt = performance.now() + Number(seconds) * 1000
const latencies = []
let requests = 0
let refused = 0
const post = (body) => new Promise((resolve, reject) => {
  const req = http.request(
    { host: hostname, port, path: "/api/inject", method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
    (res) => { res.resume(); res.on("end", () => resolve(res.statusCode)) }
  )
  req.on("error", reject)
  req.end(body)
})
const client = async (c) => {
  const body = JSON.stringify({ to: "ping", type: "Ping", fields: { n: 1, text: "Hello there, friend: how is the weather today?", sender: "c" + c } })
  while (performance.now() < stopAt) {
    const t0 = performance.now()
    const status = await post(body)
    latencies.push(performance.now() - t0)
    if (status === 202) requests++
    else if (status === 429) refused++
    else throw new Error("serve bench: HTTP " + status)
  }
}
await Promise.all(Array.from({ length: Number(clients) }, (_, c) => client(c)))
console.log(JSON.stringify({ requests, refused, latencies }))
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
  readonly rounds: number
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
  /** The benchmark process's CPU time during the phase (the pump's thread, GC, I/O). */
  readonly cpuMs: number
}

const phase = (mode: "http" | "in-process", options: ServeBenchOptions) =>
  Effect.gen(function*() {
    const observed = yield* observeForServer
    // As `organism serve` runs it (I/O gets its turn once per slice), in both phases.
    const pump = yield* Pump.make(organismOf(options.hops)).pipe(Effect.provideService(IoFairness, IoFairness.serving))
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
    let cpuMs = 0
    const stopAt = () => started + options.seconds * 1000
    const measure = () => {
      elapsed = (performance.now() - started) / 1000
      hops = pump.counters().invocations - before
      rss = rssMb()
    }

    // Both phases serve the same live clients: the N subscribers read every event over SSE
    // while the conversations run. Only the injection differs.
    const state = yield* makeServeState(pump, observed, { file: "(bench)" })
    const { url } = yield* startServer(state, { host: "127.0.0.1", port: 0, token: undefined })
    const spawnNode = (script: string, args: ReadonlyArray<string>) =>
      Effect.acquireRelease(
        Effect.sync(() => spawn(process.execPath, ["--input-type=module", "-e", script, url, ...args], { stdio: ["pipe", "pipe", "inherit"] })),
        (child) => Effect.sync(() => child.kill("SIGKILL"))
      )
    const readers = yield* spawnNode(READERS, [String(options.subscribers)])
    const readerLines = readLines(readers)
    const ready = yield* Effect.promise(() => readerLines.next())
    if (ready !== "start") throw new Error(`serve bench: the subscribers said ${ready}`)

    if (mode === "http") {
      const injectors = yield* spawnNode(INJECTORS, [String(options.clients), String(options.seconds)])
      started = performance.now()
      const cpu0 = process.cpuUsage()
      const report = JSON.parse(yield* Effect.promise(() => readLines(injectors).next())) as {
        requests: number
        refused: number
        latencies: Array<number>
      }
      measure()
      const cpu = process.cpuUsage(cpu0)
      cpuMs = (cpu.user + cpu.system) / 1000
      requests = report.requests
      refused = report.refused
      latencies.push(...report.latencies)
    } else {
      started = performance.now()
      const cpu0 = process.cpuUsage()
      const injector = (c: number) =>
        Effect.gen(function*() {
          while (performance.now() < stopAt()) {
            const t0 = performance.now()
            yield* pump.inject("ping", pingValue(1, `c${c}`))
            latencies.push(performance.now() - t0)
            requests++
            // An HTTP client's next request arrives on a later turn of the event loop; an
            // in-process injector waits for the next turn too, so that C injectors share the
            // thread with the pump, and the live clients get their writes, the same way.
            yield* toEventLoop
          }
        })
      yield* Effect.forEach(Array.from({ length: options.clients }, (_, c) => c), injector, { concurrency: "unbounded", discard: true })
      measure()
      const cpu = process.cpuUsage(cpu0)
      cpuMs = (cpu.user + cpu.system) / 1000
    }
    readers.stdin!.end()
    sseBytes = (JSON.parse(yield* Effect.promise(() => readerLines.next())) as { bytes: number }).bytes
    yield* pump.awaitIdle
    const c = pump.counters()
    if (c.rejected + c.guardStopped > 0) throw new Error(`serve bench: ${JSON.stringify(c)}`)
    const result: PhaseResult = { requests, refused, hops, elapsed, latencies: Float64Array.from(latencies).sort(), sseBytes, rss, cpuMs }
    return result
  }).pipe(
    Effect.scoped,
    Effect.provide(LlmRouter.layerNone("the serve benchmark calls no model")),
    Effect.provide(Pump.layerServices)
  )

/**
 * R rounds of the two phases, in alternating order (HTTP first, then in-process first, …), so
 * that a drift of the machine during the run (a neighbour's job, the SSE readers' process
 * landing on the server's core) weighs on both. Each figure is the median over the rounds;
 * `ratio` is the median of the rounds' ratios, each measured a few seconds apart.
 */
export const serveBench = (options: ServeBenchOptions) =>
  Effect.gen(function*() {
    // Warm-up: both paths, briefly.
    const warm = { ...options, seconds: Math.min(0.5, options.seconds), subscribers: Math.min(options.subscribers, 5) }
    yield* phase("in-process", warm)
    yield* phase("http", warm)
    const rounds: Array<{ readonly http: PhaseResult; readonly local: PhaseResult }> = []
    for (let r = 0; r < options.rounds; r++) {
      if (r % 2 === 0) {
        const http = yield* phase("http", options)
        rounds.push({ http, local: yield* phase("in-process", options) })
      } else {
        const local = yield* phase("in-process", options)
        rounds.push({ http: yield* phase("http", options), local })
      }
    }
    const of = (f: (round: { readonly http: PhaseResult; readonly local: PhaseResult }) => number) => median(rounds.map(f))
    const hopsPerS = (p: PhaseResult) => p.hops / p.elapsed
    const ratios = rounds.map((r) => round(hopsPerS(r.http) / hopsPerS(r.local)))
    return {
      name: "serve",
      clients: options.clients,
      hops: options.hops,
      sse_subscribers: options.subscribers,
      seconds: options.seconds,
      rounds: options.rounds,
      requests_per_s: Math.round(of((r) => r.http.requests / r.http.elapsed)),
      refused_429: rounds.reduce((n, r) => n + r.http.refused, 0),
      p50_ms: round(of((r) => percentile(r.http.latencies, 50)), 3),
      p99_ms: round(of((r) => percentile(r.http.latencies, 99)), 3),
      hops_per_s: Math.round(of((r) => hopsPerS(r.http))),
      sse_mb_per_s: round(of((r) => r.http.sseBytes / 1024 / 1024 / r.http.elapsed), 1),
      rss_mb: of((r) => r.http.rss),
      server_cpu_us_per_hop: round(of((r) => (r.http.cpuMs * 1000) / r.http.hops), 1),
      server_cpu_per_wall: round(of((r) => r.http.cpuMs / 1000 / r.http.elapsed)),
      inprocess_injections_per_s: Math.round(of((r) => r.local.requests / r.local.elapsed)),
      inprocess_sse_mb_per_s: round(of((r) => r.local.sseBytes / 1024 / 1024 / r.local.elapsed), 1),
      inprocess_p50_ms: round(of((r) => percentile(r.local.latencies, 50)), 3),
      inprocess_p99_ms: round(of((r) => percentile(r.local.latencies, 99)), 3),
      inprocess_hops_per_s: Math.round(of((r) => hopsPerS(r.local))),
      inprocess_rss_mb: of((r) => r.local.rss),
      inprocess_cpu_us_per_hop: round(of((r) => (r.local.cpuMs * 1000) / r.local.hops), 1),
      ratios,
      ratio: median(ratios)
    }
  })
