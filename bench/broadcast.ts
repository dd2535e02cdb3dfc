/**
 * broadcast: one envelope without <to> reaches every broadcast listener of its payload type
 * (L listeners, 100 by default). The figure is deliveries per second — handler invocations —
 * and the fan-out spread: how long after a message's first delivery its last one happens.
 *
 * For comparison it also measures a handler's Reply.broadcast to the same listeners: the
 * pump writes that as one envelope per listener (each names its receiver, so each is a
 * message of its own through ingress), which costs one ingress run per delivery.
 */
import { Effect } from "effect"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { specOf } from "../src/domain/Payload.js"
import { Reply } from "../src/domain/Reply.js"
import { Pump } from "../src/pipeline/Pump.js"
import { addWork, againstFloor, cpuMicros, floorMeter, noWork, type Work } from "./floor.js"
import { collectGarbage, percentile, Ping, pingEnvelope, pingValue, round, rssMb } from "./support.js"

export interface BroadcastOptions {
  readonly listeners: number
  readonly messages: number
  readonly seconds: number
}

const envelopeOf = (n: number) => pingEnvelope({ from: "outside", thread: crypto.randomUUID(), n })

const run = (listeners: number, messages: number, via: "envelope" | "reply") =>
  Effect.gen(function*() {
    // Per message: time of its first and its last delivery.
    const first = new Float64Array(messages)
    const last = new Float64Array(messages)
    const seen = new Uint16Array(messages)
    let deliveries = 0
    const hear = (p: Ping) => {
      const now = performance.now()
      deliveries++
      if (seen[p.n] === 0) first[p.n] = now
      seen[p.n] = seen[p.n]! + 1
      last[p.n] = now
    }
    const organism = Organism.make({
      name: "broadcast",
      settings: { inboxCapacity: 64 },
      listeners: [
        ...Array.from({ length: listeners }, (_, i) =>
          Listener.make({ name: `l${i}`, payload: Ping, broadcast: true, handler: (p: Ping) => void hear(p) })),
        Listener.make({
          name: "announcer",
          payload: Ping,
          handler: (p: Ping) => Reply.broadcast(pingValue(p.n, "announcer"))
        })
      ]
    })
    const pump = yield* Pump.make(organism)
    yield* pump.awaitIdle
    const inputs = via === "envelope" ? Array.from({ length: messages }, (_, n) => envelopeOf(n)) : []
    const cpu0 = process.cpuUsage()
    const started = performance.now()
    for (let n = 0; n < messages; n++) {
      if (via === "envelope") yield* pump.injectRaw(inputs[n]!)
      else yield* pump.inject("announcer", pingValue(n))
    }
    yield* pump.awaitIdle
    const elapsed = (performance.now() - started) / 1000
    const cpu = cpuMicros(cpu0)
    const c = pump.counters()
    if (c.rejected + c.guardStopped > 0 || deliveries !== messages * listeners) {
      throw new Error(`broadcast: ${deliveries} deliveries, ${JSON.stringify(c)}`)
    }
    const spread = new Float64Array(messages)
    for (let n = 0; n < messages; n++) spread[n] = last[n]! - first[n]!
    const work: Work = { units: messages, wallSeconds: elapsed, cpuMicros: cpu }
    return { elapsed, deliveries, work, spread: spread.sort() }
  }).pipe(Effect.scoped, Effect.provide(Pump.layerServices))

export const broadcastBench = (options: BroadcastOptions) =>
  Effect.gen(function*() {
    const { listeners, messages } = options
    yield* run(listeners, Math.max(10, Math.floor(messages / 10)), "envelope") // warm-up
    const floor = floorMeter(envelopeOf(1), specOf(Ping).xsd)
    const ROUNDS = 3
    let work = noWork
    let deliveries = 0
    const spreads: Array<Float64Array> = []
    for (let r = 0; r < ROUNDS; r++) {
      const envelope = yield* run(listeners, messages, "envelope")
      work = addWork(work, envelope.work)
      deliveries += envelope.deliveries
      spreads.push(envelope.spread)
      collectGarbage() // the run's garbage, not on the floor's time
      floor.slice((options.seconds * 1000) / ROUNDS)
    }
    floor.close()
    const spread = new Float64Array(spreads.reduce((n, s) => n + s.length, 0))
    spreads.reduce((at, s) => (spread.set(s, at), at + s.length), 0)
    spread.sort()
    yield* run(listeners, Math.max(10, Math.floor(messages / 20)), "reply") // warm-up
    const reply = yield* run(listeners, Math.max(10, Math.floor(messages / 5)), "reply")
    const f = againstFloor(work, floor.result())
    return {
      name: "broadcast",
      listeners,
      messages,
      deliveries_per_s: Math.round(deliveries / work.wallSeconds),
      us_per_delivery: round((work.wallSeconds * 1e6) / deliveries),
      cpu_us_per_delivery: round(work.cpuMicros / deliveries, 3),
      messages_per_s: Math.round(work.units / work.wallSeconds),
      cpu_us_per_message: f.cpuPerUnit,
      cores_used: f.coresUsed,
      fanout_p50_ms: round(percentile(spread, 50), 3),
      fanout_p99_ms: round(percentile(spread, 99), 3),
      reply_deliveries_per_s: Math.round(reply.deliveries / reply.elapsed),
      rss_mb: rssMb(),
      floor_cpu_us: f.floorCpuUs,
      floor_per_s: f.floorPerSecond,
      floor_cores_used: f.floorCoresUsed,
      // Per message: its libxml2 work is done once (one parse, one payload validation) for
      // all its deliveries, so these ratios are mostly the cost of the fan-out.
      ratio_to_floor: f.ratioToFloor,
      cpu_ratio_to_floor: f.cpuRatioToFloor
    }
  })
