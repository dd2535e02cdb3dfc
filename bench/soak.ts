/**
 * soak: a million raw messages through a real pump — valid ones answered by a listener (two
 * deliveries each), hostile ones rejected at every stage — to show that nothing accumulates:
 * after warm-up, RSS, the JS heap and the WebAssembly heap stay flat, no libxml2 document or
 * schema is left allocated, and every conversation is gone once it ends.
 */
import { Effect, Schema } from "effect"
import { ENVELOPE_NS, writeEnvelope } from "../src/domain/Envelope.js"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import * as Payload from "../src/domain/Payload.js"
import { specOf } from "../src/domain/Payload.js"
import { Reply } from "../src/domain/Reply.js"
import { Pump } from "../src/pipeline/Pump.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { againstFloor, cpuMicros, measureFloor } from "./floor.js"
import { collectGarbage, mb } from "./support.js"

export interface SoakOptions {
  readonly messages: number
  readonly seconds: number
}

class Note extends Payload.Class<Note>("Note")({ text: Schema.String }) {}

const meta = (i: number) => `<from>console</from><to>echo</to><thread>soak-${i}</thread>`
const env = (m: string, payload: string) => `<message xmlns="${ENVELOPE_NS}"><meta>${m}</meta>${payload}</message>`

/** Every path: accepted (with a fresh conversation), repaired, and each kind of rejection. */
const inputs: ReadonlyArray<(i: number) => string> = [
  (i) => env(meta(i), `<Note xmlns=""><Text>hello ${i}</Text></Note>`),
  (i) => env(meta(i), `<Note xmlns=""><Text>hello ${i}</Text></Note>`),
  (i) => env(meta(i), `<Note xmlns=""><Text>unclosed ${i}</Note>`), // repaired
  (i) => env(meta(i), `<Note xmlns=""><Txt>${i}</Txt></Note>`), // PayloadInvalid
  (i) => env(meta(i), `<Unknown${i} xmlns=""/>`), // UnknownRoute
  (i) => env(meta(i), ""), // NoPayload
  (i) => `<!DOCTYPE m [<!ENTITY e${i} "x">]>${env(meta(i), "")}`, // DtdForbidden
  (i) => env(meta(i), `<Note xmlns="rel${i}"><Text>x</Text></Note>`), // no canonical form
  (i) => `<message xmlns="${ENVELOPE_NS}">${"<a>".repeat(70)}${i}`, // too deep
  (i) => `garbage ${i}`
]

interface Sample {
  readonly rss: number
  readonly heap: number
  readonly wasm: number
}

const sample = (engine: XmlEngine.Service): Sample => {
  collectGarbage()
  const m = process.memoryUsage()
  return { rss: m.rss, heap: m.heapUsed, wasm: engine.heapBytes() }
}

export const soakBench = (options: SoakOptions) =>
  Effect.gen(function*() {
    const organism = Organism.make({
      name: "soak",
      listeners: [Listener.make({ name: "echo", payload: Note, handler: (n) => Reply.respond(new Note({ text: `re: ${n.text}` })) })]
    })
    const engine = yield* XmlEngine
    const pump = yield* Pump.make(organism)
    yield* pump.awaitIdle
    const handlesAtStart = engine.liveHandles()
    const CHUNK = 1000
    const warmUp = Math.min(100_000, Math.floor(options.messages / 10))
    let afterWarmUp: Sample | undefined
    const cpu0 = process.cpuUsage()
    const started = performance.now()
    for (let start = 0; start < options.messages; start += CHUNK) {
      for (let k = 0; k < CHUNK && start + k < options.messages; k++) {
        yield* pump.injectRaw(inputs[(start + k) % inputs.length]!(start + k))
      }
      // Settled every 10,000: the load is sustained, not an ever-growing backlog.
      if ((start + CHUNK) % 10_000 === 0) yield* pump.awaitIdle
      if (start + CHUNK === warmUp) afterWarmUp = sample(engine)
    }
    yield* pump.awaitIdle
    const elapsed = (performance.now() - started) / 1000
    const cpu = cpuMicros(cpu0)
    const end = sample(engine)
    const c = pump.counters()
    if (c.injected !== c.delivered + c.rejected + c.guardStopped) throw new Error(`soak: accounting ${JSON.stringify(c)}`)
    const handles = engine.liveHandles()
    const spec = specOf(Note)
    const floor = measureFloor(
      Buffer.from(writeEnvelope({ from: "console", to: "echo", thread: "550e8400-e29b-41d4-a716-446655440000", payloadTag: "Note", payloadInner: spec.encodeInner(new Note({ text: "hello 1" })) })),
      spec.xsd,
      options.seconds
    )
    const perSecond = c.injected / elapsed
    const f = againstFloor({ units: c.injected, wallSeconds: elapsed, cpuMicros: cpu }, floor)
    // A leak fails the benchmark, it does not just print a number.
    const leaks = [
      handles.documents !== handlesAtStart.documents && `${handles.documents - handlesAtStart.documents} libxml2 documents left`,
      handles.schemas !== handlesAtStart.schemas && `${handles.schemas - handlesAtStart.schemas} schemas left`,
      end.wasm !== afterWarmUp!.wasm && `the WebAssembly heap grew by ${end.wasm - afterWarmUp!.wasm} bytes after warm-up`,
      end.heap - afterWarmUp!.heap > 16 * 1024 * 1024 && `the JS heap grew by ${mb(end.heap - afterWarmUp!.heap)} MB after warm-up`,
      pump.threads().roots !== 0 && `${pump.threads().roots} conversations still live`
    ].filter((l): l is string => typeof l === "string")
    if (leaks.length > 0) throw new Error(`soak: ${leaks.join("; ")}`)
    return {
      name: "soak",
      messages: options.messages,
      injected: c.injected,
      delivered: c.delivered,
      rejected: c.rejected,
      messages_per_s: Math.round(perSecond),
      cpu_us_per_message: f.cpuPerUnit,
      cores_used: f.coresUsed,
      rss_mb_after_warm_up: mb(afterWarmUp!.rss),
      rss_mb_end: mb(end.rss),
      rss_growth_mb: mb(end.rss - afterWarmUp!.rss),
      heap_growth_mb: mb(end.heap - afterWarmUp!.heap),
      wasm_heap_growth_bytes: end.wasm - afterWarmUp!.wasm,
      live_documents: handles.documents - handlesAtStart.documents,
      live_schemas: handles.schemas - handlesAtStart.schemas,
      live_threads: pump.threads().roots,
      rss_mb: mb(end.rss),
      // The floor (bench/floor.ts) is measured after the soak, in one slice: the soak's
      // messages are mostly hostile, so its ratios compare unlike work.
      floor_cpu_us: f.floorCpuUs,
      floor_per_s: f.floorPerSecond,
      ratio_to_floor: f.ratioToFloor,
      cpu_ratio_to_floor: f.cpuRatioToFloor
    }
  }).pipe(Effect.scoped, Effect.provide(Pump.layerServices))
