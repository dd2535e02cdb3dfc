/** ingress: every ingress stage on one ~300-byte envelope, against the libxml2 floor. */
import { Effect } from "effect"
import { writeEnvelope } from "../src/domain/Envelope.js"
import { specOf } from "../src/domain/Payload.js"
import { Ingress } from "../src/pipeline/Ingress.js"
import { routesForPayloads } from "../src/pipeline/Router.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { measureFloor } from "./floor.js"
import { percentile, Ping, pingValue, round, rssMb } from "./support.js"

export const ingressBench = (options: { readonly seconds: number }) =>
  Effect.gen(function*() {
    const spec = specOf(Ping)
    const bytes = Buffer.from(writeEnvelope({
      from: "greeter",
      to: "shouter",
      thread: "550e8400-e29b-41d4-a716-446655440000",
      payloadTag: spec.tag,
      payloadInner: spec.encodeInner(pingValue(1))
    }))
    const ingress = yield* Ingress.make()
    const routes = yield* routesForPayloads([Ping])
    const once = () => {
      const outcome = ingress.run(bytes, routes)
      if (outcome._tag !== "Accepted") throw new Error(`ingress bench: rejected (${outcome.error._tag})`)
    }
    for (let i = 0; i < 5000; i++) once()
    let n = 0
    const started = performance.now()
    const until = started + options.seconds * 1000
    while (performance.now() < until) {
      for (let i = 0; i < 1000; i++) once()
      n += 1000
    }
    const perSecond = n / ((performance.now() - started) / 1000)
    // Latency, measured apart so the clock reads do not weigh on the throughput figure.
    const samples = new Float64Array(20_000)
    for (let i = 0; i < samples.length; i++) {
      const t = performance.now()
      once()
      samples[i] = performance.now() - t
    }
    samples.sort()
    const floor = measureFloor(bytes, spec.xsd, options.seconds)
    return {
      name: "ingress",
      bytes: bytes.length,
      per_s: Math.round(perSecond),
      us_per_message: round(1e6 / perSecond),
      p50_ms: round(percentile(samples, 50), 4),
      p99_ms: round(percentile(samples, 99), 4),
      rss_mb: rssMb(),
      floor_per_s: Math.round(floor.perSecond),
      floor_us: round(floor.microseconds),
      ratio_to_floor: round(floor.perSecond / perSecond)
    }
  }).pipe(Effect.scoped, Effect.provide(XmlEngine.layer))
