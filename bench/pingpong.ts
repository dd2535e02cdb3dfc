/**
 * pingpong: T threads × H hops between two listeners through the full pipeline — ingress,
 * routing, dispatch, the reply envelope written by the pump, re-injection. A hop is one
 * message delivered to a handler; its latency is the time from the previous hop's handler
 * on the same thread to this one.
 */
import { Chunk, Effect, Queue, type Scope } from "effect"
import { writeEnvelope } from "../src/domain/Envelope.js"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { specOf } from "../src/domain/Payload.js"
import { Reply } from "../src/domain/Reply.js"
import { Pump } from "../src/pipeline/Pump.js"
import { Events } from "../src/services/Events.js"
import { measureFloor } from "./floor.js"
import { percentile, Ping, pingValue, round, rssMb } from "./support.js"

export interface PingpongOptions {
  readonly threads: number
  readonly hops: number
  readonly seconds: number
  /** Ingress worker threads (`settings.ingress.workers`); undefined: the organism's default. */
  readonly workers?: number | undefined
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
    const last = new Map<string, number>()
    const samples = new Float64Array(threads * hops)
    let count = 0
    const hop = (p: Ping) => {
      const now = performance.now()
      const before = last.get(p.sender)
      if (before !== undefined && count < samples.length) samples[count++] = now - before
      last.set(p.sender, now)
      return p.n
    }
    // A forwards to B (the chain grows by one hop), B responds (it shrinks back): the chain
    // stays two hops deep however long the ping-pong runs.
    const organism = Organism.make({
      name: "pingpong",
      settings: {
        guards: { maxInvocationsPerThread: hops + 10 },
        maxConcurrentHandlers: 64,
        ...(workers === undefined ? {} : { ingress: { workers } })
      },
      listeners: [
        Listener.make({
          name: "ping",
          payload: Ping,
          handler: (p) => {
            const n = hop(p)
            return n >= hops ? Reply.none : Reply.forward("pong", pingValue(n + 1, p.sender))
          }
        }),
        Listener.make({
          name: "pong",
          payload: Ping,
          handler: (p) => {
            const n = hop(p)
            return n >= hops ? Reply.none : Reply.respond(pingValue(n + 1, p.sender))
          }
        })
      ]
    })
    const pump = yield* Pump.make(organism)
    let events = 0
    if (watched) {
      // Through the Events service, so that this file also runs against older commits.
      const subscription = yield* (yield* Events).subscribe
      yield* Effect.forkScoped(Effect.forever(Effect.map(Queue.takeAll(subscription), (c) => void (events += Chunk.size(c)))))
    }
    yield* pump.awaitIdle
    const started = performance.now()
    // CPU time of the whole process, every thread (the ingress workers too).
    const cpuBefore = process.cpuUsage()
    for (let t = 0; t < threads; t++) yield* pump.inject("ping", pingValue(1, `t${t}`))
    yield* pump.awaitIdle
    const elapsed = (performance.now() - started) / 1000
    const cpu = process.cpuUsage(cpuBefore)
    const c = pump.counters()
    if (c.rejected + c.guardStopped > 0) throw new Error(`pingpong: ${JSON.stringify(c)}`)
    const total = c.invocations - 1 // minus boot
    if (watched && events === 0) throw new Error("pingpong: the subscriber saw no event")
    return { elapsed, total, cpuMicros: cpu.user + cpu.system, samples: samples.subarray(0, count).sort() }
  }).pipe(Effect.scoped, Effect.provide(Pump.layerServices))

export const pingpongBench = (options: PingpongOptions) =>
  Effect.gen(function*() {
    // Warm-up at the measured size: the wasm tier-up and V8's optimizing tiers take tens of
    // thousands of hops, more than a tenth of a one-thread run.
    const w = options.workers
    yield* run(options.threads, options.hops, false, Effect.void, w)
    yield* run(Math.min(options.threads, 10), Math.max(50, Math.floor(options.hops / 10)), true, Effect.void, w)
    const { cpuMicros, elapsed, samples, total } = yield* run(options.threads, options.hops, false, Effect.void, w)
    // The same workload with one event subscriber, measured in the same run.
    const watched = yield* run(options.threads, options.hops, true, Effect.void, w)
    const spec = specOf(Ping)
    const bytes = Buffer.from(writeEnvelope({
      from: "ping",
      to: "pong",
      thread: "550e8400-e29b-41d4-a716-446655440000",
      payloadTag: spec.tag,
      payloadInner: spec.encodeInner(pingValue(123))
    }))
    const floor = measureFloor(bytes, spec.xsd, options.seconds)
    const hopsPerSecond = total / elapsed
    return {
      name: "pingpong",
      threads: options.threads,
      hops: options.hops,
      ...(w === undefined ? {} : { workers: w }),
      hops_per_s: Math.round(hopsPerSecond),
      cpu_us_per_hop: round(cpuMicros / total, 2),
      watched_hops_per_s: Math.round(watched.total / watched.elapsed),
      watched_ratio: round(watched.total / watched.elapsed / hopsPerSecond),
      p50_ms: round(percentile(samples, 50), 3),
      p99_ms: round(percentile(samples, 99), 3),
      rss_mb: rssMb(),
      floor_per_s: Math.round(floor.perSecond),
      ratio_to_floor: round(floor.perSecond / hopsPerSecond)
    }
  })
