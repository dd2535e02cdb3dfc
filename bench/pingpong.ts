/**
 * pingpong: T threads × H hops between two listeners through the full pipeline — ingress,
 * routing, dispatch, the reply envelope written by the pump, re-injection. A hop is one
 * message delivered to a handler; its latency is the time from the previous hop's handler
 * on the same thread to this one.
 *
 * R rounds (3 by default), each one run without and one with an event subscriber (in
 * alternating order), each run followed by a slice of the floor: workload and floor see the
 * same machine. Figures are over all rounds; CPU time is the process's (bench/floor.ts has
 * the definitions of `cpu_us_per_hop`, `cores_used`, `ratio_to_floor`, `cpu_ratio_to_floor`).
 */
import { Chunk, Effect, Queue, type Scope } from "effect"
import { specOf } from "../src/domain/Payload.js"
import { Pump } from "../src/pipeline/Pump.js"
import { Events } from "../src/services/Events.js"
import { Shards } from "../src/shards/Shards.js"
import { addWork, againstFloor, cpuMicros, floorMeter, noWork, type Work } from "./floor.js"
import { pingpongOrganism, record, recorded } from "./pingpong-organism.js"
import { collectGarbage, percentile, Ping, pingEnvelope, pingValue, round, rssMb } from "./support.js"

export interface PingpongOptions {
  readonly threads: number
  readonly hops: number
  /** The floor's total time, over all its slices. */
  readonly seconds: number
  readonly rounds: number
  /** Ingress worker threads (`settings.ingress.workers`); undefined: the organism's default. */
  readonly workers?: number | undefined
  /** Run the organism on this many shards (worker threads, each a whole pump); undefined: one pump, in this thread. */
  readonly shards?: number | undefined
}

/**
 * One run; `watched`: a subscriber takes every event, as the CLI and the API do. `setup`
 * runs before the pump starts, in the run's services (an observer: tracing).
 */
export const run = (
  threads: number,
  hops: number,
  watched: boolean,
  setup: Effect.Effect<void, never, Events | Scope.Scope> = Effect.void,
  workers?: number
) =>
  Effect.gen(function*() {
    yield* setup
    record(threads * hops)
    const pump = yield* Pump.make(pingpongOrganism(hops, workers))
    let events = 0
    if (watched) {
      // Through the Events service, so that this file also runs against older commits. The
      // subscriber waits for events (it used to poll with takeAll, a busy loop that kept the
      // scheduler spinning and made the watched run look faster than the unwatched one).
      const subscription = yield* (yield* Events).subscribe
      yield* Effect.forkScoped(consume(subscription, (n) => void (events += n)))
    }
    yield* pump.awaitIdle
    const cpu0 = process.cpuUsage()
    const started = performance.now()
    for (let t = 0; t < threads; t++) yield* pump.inject("ping", pingValue(1, `t${t}`))
    yield* pump.awaitIdle
    const time = lap(started, cpu0)
    return outcome(time, pump.counters(), 1 /* boot */, watched && events === 0, recorded())
  }).pipe(Effect.scoped, Effect.provide(Pump.layerServices))

/** Wall seconds and CPU µs since the run's work started. */
const lap = (started: number, cpu0: NodeJS.CpuUsage) => ({ elapsed: (performance.now() - started) / 1000, cpu: cpuMicros(cpu0) })

/** A run's figures; it throws on a run that did not go as it must. */
const outcome = (
  { cpu, elapsed }: ReturnType<typeof lap>,
  c: Pump.Counters,
  invocationsBefore: number,
  sawNoEvent: boolean,
  samples: Float64Array
) => {
  if (c.rejected + c.guardStopped > 0) throw new Error(`pingpong: ${JSON.stringify(c)}`)
  if (sawNoEvent) throw new Error("pingpong: the subscriber saw no event")
  const total = c.invocations - invocationsBefore
  const work: Work = { units: total, wallSeconds: elapsed, cpuMicros: cpu }
  return { elapsed, total, work, samples: samples.sort() }
}

/** Sample arrays as one. */
const concat = (parts: ReadonlyArray<Float64Array>) => {
  const all = new Float64Array(parts.reduce((n, p) => n + p.length, 0))
  parts.reduce((at, p) => (all.set(p, at), at + p.length), 0)
  return all
}

/** Takes every event as it comes (as the CLI and the API do), counting them. */
const consume = (subscription: Queue.Dequeue<unknown>, count: (n: number) => void) =>
  Effect.forever(Effect.map(Queue.takeBetween(subscription, 1, Number.POSITIVE_INFINITY), (c) => count(Chunk.size(c))))

/**
 * One run on shards (`--shards N`): the same organism in N worker threads, the T
 * conversations spread over them in turn. CPU time is the process's: every thread's.
 */
const runSharded = (shards: Shards.Service, threads: number, hops: number, watched: boolean) =>
  Effect.gen(function*() {
    yield* shards.call("record", threads * hops)
    let events = 0
    if (watched) yield* Effect.forkScoped(consume(yield* shards.subscribe, (n) => void (events += n)))
    yield* shards.awaitIdle
    const before = yield* shards.counters
    const cpu0 = process.cpuUsage()
    const started = performance.now()
    yield* Effect.forEach(Array.from({ length: threads }, (_, t) => t), (t) => shards.inject("ping", pingValue(1, `t${t}`)), { concurrency: "unbounded", discard: true })
    yield* shards.awaitIdle
    const time = lap(started, cpu0)
    const c = yield* shards.counters
    const parts = (yield* shards.call("recorded")) as ReadonlyArray<Float64Array>
    return outcome(time, c, before.invocations, watched && events === 0, concat(parts))
  }).pipe(Effect.scoped)

export const pingpongBench = (options: PingpongOptions) =>
  Effect.gen(function*() {
    // Warm-up at the measured size: the wasm tier-up and V8's optimizing tiers take tens of
    // thousands of hops, more than a tenth of a one-thread run.
    const workers = options.workers
    const shards = options.shards === undefined
      ? undefined
      : yield* Shards.make({
        source: { module: new URL(`./pingpong-organism${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url), export: "pingpongOrganism", args: [options.hops, workers] },
        shards: options.shards
      })
    const once = (threads: number, hops: number, watched: boolean) =>
      shards === undefined ? run(threads, hops, watched, Effect.void, workers) : runSharded(shards, threads, hops, watched)
    yield* once(options.threads, options.hops, false)
    // Shards run the organism made for the measured size; a smaller warm-up run would need another.
    if (shards === undefined) yield* once(Math.min(options.threads, 10), Math.max(50, Math.floor(options.hops / 10)), true)
    else yield* once(options.threads, options.hops, true)
    const spec = specOf(Ping)
    const bytes = pingEnvelope({ from: "ping", to: "pong", n: 123 })
    const floor = floorMeter(bytes, spec.xsd)
    const sliceMs = (options.seconds * 1000) / (2 * options.rounds)
    let plain = noWork
    let watched = noWork
    const latencies: Array<Float64Array> = []
    const slice = () => {
      // The workload's garbage is collected before the floor runs, not on the floor's time.
      collectGarbage()
      floor.slice(sliceMs)
    }
    for (let r = 0; r < options.rounds; r++) {
      // Alternating order, so neither kind always runs first.
      for (const isWatched of r % 2 === 0 ? [false, true] : [true, false]) {
        const result = yield* once(options.threads, options.hops, isWatched)
        if (isWatched) watched = addWork(watched, result.work)
        else {
          plain = addWork(plain, result.work)
          latencies.push(result.samples)
        }
        slice()
      }
    }
    floor.close()
    const samples = concat(latencies).sort()
    const hopsPerSecond = plain.units / plain.wallSeconds
    const watchedPerSecond = watched.units / watched.wallSeconds
    const f = againstFloor(plain, floor.result())
    const w = againstFloor(watched, floor.result())
    return {
      name: "pingpong",
      threads: options.threads,
      hops: options.hops,
      rounds: options.rounds,
      ...(workers === undefined ? {} : { workers }),
      ...(shards === undefined ? {} : { shards: shards.shards }),
      hops_per_s: Math.round(hopsPerSecond),
      cpu_us_per_hop: f.cpuPerUnit,
      cores_used: f.coresUsed,
      watched_hops_per_s: Math.round(watchedPerSecond),
      watched_ratio: round(watchedPerSecond / hopsPerSecond),
      watched_cpu_us_per_hop: w.cpuPerUnit,
      // CPU per hop without a subscriber over CPU per hop with one: the watched figure as a
      // fraction of the unwatched one, free of the machine's load.
      watched_cpu_ratio: round(plain.cpuMicros / plain.units / (watched.cpuMicros / watched.units)),
      p50_ms: round(percentile(samples, 50), 3),
      p99_ms: round(percentile(samples, 99), 3),
      rss_mb: rssMb(),
      floor_cpu_us: f.floorCpuUs,
      floor_per_s: f.floorPerSecond,
      floor_cores_used: f.floorCoresUsed,
      ratio_to_floor: f.ratioToFloor,
      cpu_ratio_to_floor: f.cpuRatioToFloor
    }
  }).pipe(Effect.scoped)
