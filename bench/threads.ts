/**
 * threads: what an idle live conversation costs. N conversations (10,000 by default) are
 * started and each one's handler suspends — awaiting a Deferred, as an agent awaits a model
 * — so every thread stays live: its root and chain nodes in the registry, its job, its
 * handler fiber, its deadline on the timer wheel, its inbox permit. Memory is measured after
 * full garbage collections, before and with the N live threads; the figure is the
 * difference divided by N.
 *
 * Garbage collection is exposed at run time (v8 flag + a fresh context), so neither
 * `npm run bench` nor `node` needs `--expose-gc`.
 */
import { Deferred, Duration, Effect } from "effect"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { specOf } from "../src/domain/Payload.js"
import { Pump } from "../src/pipeline/Pump.js"
import { measureFloor } from "./floor.js"
import { collectGarbage, Ping, pingEnvelope, pingValue, round, rssMb } from "./support.js"

export interface ThreadsOptions {
  readonly live: number
  readonly seconds: number
}


const settledMemory = () =>
  Effect.gen(function*() {
    // Let finalizers and pending microtasks run between collections.
    for (let i = 0; i < 3; i++) {
      collectGarbage()
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    }
    const m = process.memoryUsage()
    return { rss: m.rss, heap: m.heapUsed }
  })

/**
 * `handlers: "all"` lets every handler start (each suspends: a fiber per thread); "default"
 * keeps the organism's default limit of concurrent handlers, so all but a few threads wait
 * for a handler slot as queued jobs.
 */
const measure = (live: number, handlers: "all" | "default") =>
  Effect.gen(function*() {
    let gate = yield* Deferred.make<void>()
    let waiting = 0
    const organism = Organism.make({
      name: "threads",
      settings: {
        // Every live thread holds an inbox permit and a handler slot: allow all of them.
        inboxCapacity: live + 1,
        ...(handlers === "all" ? { maxConcurrentHandlers: live + 1 } : {}),
        handlerTimeout: Duration.minutes(10)
      },
      listeners: [
        Listener.make({
          name: "agent",
          payload: Ping,
          handler: () =>
            Effect.suspend(() => {
              waiting++
              return Deferred.await(gate)
            })
        })
      ]
    })
    const pump = yield* Pump.make(organism)
    yield* pump.awaitIdle

    const startThreads = (n: number) =>
      Effect.gen(function*() {
        waiting = 0
        const started = performance.now()
        for (let i = 0; i < n; i++) yield* pump.inject("agent", pingValue(i))
        const slots = handlers === "all" ? n : Math.min(n, pump.organism.settings.maxConcurrentHandlers)
        while (waiting < slots || pump.threads().roots < n) yield* Effect.yieldNow()
        return (performance.now() - started) / 1000
      })
    const endThreads = Effect.gen(function*() {
      yield* Deferred.succeed(gate, undefined)
      yield* pump.awaitIdle
      gate = yield* Deferred.make<void>()
    })

    // Warm-up with a few threads (JIT, pools), so the measurement is of the threads alone.
    yield* startThreads(Math.min(500, live))
    yield* endThreads
    const before = yield* settledMemory()
    const elapsed = yield* startThreads(live)
    const threads = pump.threads()
    const running = pump.counters().running
    const withThreads = yield* settledMemory()
    yield* endThreads
    const after = yield* settledMemory()
    const slots = handlers === "all" ? live : pump.organism.settings.maxConcurrentHandlers
    if (running !== slots || threads.roots !== live || pump.threads().roots !== 0) {
      throw new Error(`threads: ${running} running, registry ${JSON.stringify(threads)} then ${JSON.stringify(pump.threads())}`)
    }
    return {
      elapsed,
      threads,
      rss: (withThreads.rss - before.rss) / live,
      heap: (withThreads.heap - before.heap) / live,
      heapAfterRelease: after.heap - before.heap
    }
  }).pipe(Effect.scoped, Effect.provide(Pump.layerServices))

export const threadsBench = (options: ThreadsOptions) =>
  Effect.gen(function*() {
    const live = options.live
    // The smaller figure first: RSS pages, once committed, stay with the process.
    const parked = yield* measure(live, "default")
    const suspended = yield* measure(live, "all")
    const spec = specOf(Ping)
    const floor = measureFloor(
      pingEnvelope({ from: "console", to: "agent", n: 1 }),
      spec.xsd,
      options.seconds
    )
    const startedPerSecond = live / suspended.elapsed
    return {
      name: "threads",
      live,
      registry_nodes: suspended.threads.nodes,
      // Every handler started and suspended (a fiber per thread).
      rss_bytes_per_thread: Math.round(suspended.rss),
      heap_bytes_per_thread: Math.round(suspended.heap),
      // The default handler limit: all but a few threads are jobs waiting for a slot.
      parked_rss_bytes_per_thread: Math.round(parked.rss),
      parked_heap_bytes_per_thread: Math.round(parked.heap),
      heap_mb_after_release: round(Math.max(suspended.heapAfterRelease, parked.heapAfterRelease) / 1024 / 1024, 2),
      threads_started_per_s: Math.round(startedPerSecond),
      rss_mb: rssMb(),
      floor_per_s: Math.round(floor.perSecond),
      // Starting a thread is one message through the pipeline (the floor in CPU time on one
      // core, measured after the workload in one slice: bench/floor.ts).
      ratio_to_floor: round(floor.perSecond / startedPerSecond)
    }
  })
