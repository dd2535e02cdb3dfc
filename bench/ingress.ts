/**
 * ingress: every ingress stage on one ~300-byte envelope, against the libxml2 floor: six
 * slices of each, alternating, in CPU time (bench/floor.ts has the definitions).
 */
import { Effect } from "effect"
import { specOf } from "../src/domain/Payload.js"
import { Ingress } from "../src/pipeline/Ingress.js"
import { routesForPayloads } from "../src/pipeline/Router.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { addWork, againstFloor, cpuMicros, floorMeter, noWork } from "./floor.js"
import { percentile, Ping, pingEnvelope, round, rssMb } from "./support.js"

export const ingressBench = (options: { readonly seconds: number }) =>
  Effect.gen(function*() {
    const spec = specOf(Ping)
    const bytes = pingEnvelope({ from: "greeter", to: "shouter", n: 1 })
    const ingress = yield* Ingress.make()
    const routes = yield* routesForPayloads([Ping])
    const once = () => {
      const outcome = ingress.run(bytes, routes)
      if (outcome._tag !== "Accepted") throw new Error(`ingress bench: rejected (${outcome.error._tag})`)
    }
    // The engine's own wasm instance tiers up like the floor's (bench/floor.ts).
    const warmUntil = performance.now() + 1500
    while (performance.now() < warmUntil) for (let i = 0; i < 200; i++) once()
    const floor = floorMeter(bytes, spec.xsd)
    const SLICES = 6
    const sliceMs = (options.seconds * 1000) / SLICES
    let work = noWork
    for (let s = 0; s < SLICES; s++) {
      let n = 0
      const cpu0 = process.cpuUsage()
      const started = performance.now()
      const until = started + sliceMs
      while (performance.now() < until) {
        for (let i = 0; i < 200; i++) once()
        n += 200
      }
      work = addWork(work, { units: n, wallSeconds: (performance.now() - started) / 1000, cpuMicros: cpuMicros(cpu0) })
      floor.slice(sliceMs)
    }
    floor.close()
    const perSecond = work.units / work.wallSeconds
    // Latency, measured apart so the clock reads do not weigh on the throughput figure.
    const samples = new Float64Array(20_000)
    for (let i = 0; i < samples.length; i++) {
      const t = performance.now()
      once()
      samples[i] = performance.now() - t
    }
    samples.sort()
    const f = againstFloor(work, floor.result())
    return {
      name: "ingress",
      bytes: bytes.length,
      per_s: Math.round(perSecond),
      us_per_message: round(1e6 / perSecond),
      cpu_us_per_message: f.cpuPerUnit,
      cores_used: f.coresUsed,
      p50_ms: round(percentile(samples, 50), 4),
      p99_ms: round(percentile(samples, 99), 4),
      rss_mb: rssMb(),
      floor_cpu_us: f.floorCpuUs,
      floor_per_s: f.floorPerSecond,
      floor_cores_used: f.floorCoresUsed,
      ratio_to_floor: f.ratioToFloor,
      cpu_ratio_to_floor: f.cpuRatioToFloor
    }
  }).pipe(Effect.scoped, Effect.provide(XmlEngine.layer))
