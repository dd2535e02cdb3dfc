/**
 * The floor: the bare libxml2 work of one message — parse, envelope XSD, Exclusive C14N,
 * payload XSD — through the same binding the engine uses, with no framework around it.
 * Everything the pump adds is measured against this, in the same run.
 *
 * It is measured in CPU time, so a neighbour taking the core away does not make the floor
 * look slower, and in slices interleaved with the workload (`FloorMeter.slice`), so that both
 * see the same machine. The floor is one core's work: `perSecond` is what one core does
 * when it does nothing else. Its CPU time is the main thread's (Linux:
 * /proc/thread-self/schedstat; Node 20 has no `process.threadCpuUsage`), else the process's:
 * right after a workload, V8's helper threads still sweep and compile for it, and the
 * process's figure charged that to the floor — 12.6–15.7 µs a message in pingpong's slices,
 * against 11.8–13.3 for the thread itself (ingress's slices, after no pump: equal). The
 * workload's CPU time is the process's (`cpuMicros`): its helper threads are its cost.
 *
 * Definitions shared by the benchmarks that report against it (bench/main.ts, README
 * "Performance"), for a workload of U units (hops, messages) in W seconds of wall time and
 * C µs of process CPU time:
 *   cpu_us_per_<unit>  = C / U
 *   cores_used         = C / (W × 10⁶)
 *   floor_cpu_us       = the floor's CPU µs per message
 *   floor_per_s        = 10⁶ / floor_cpu_us: the floor's throughput on one core
 *   ratio_to_floor     = floor_per_s / (U / W) = (W × 10⁶ / U) / floor_cpu_us — one core's
 *                        floor throughput over the measured (wall) throughput. Above 1: slower
 *                        than one core doing only libxml2; below 1: past one core's limit,
 *                        which only more than one core can do.
 *   cpu_ratio_to_floor = (C / U) / floor_cpu_us — CPU spent per unit in floors: what the
 *                        framework costs whatever the cores and the neighbours.
 */
import { readFileSync } from "node:fs"
import { ENVELOPE_XSD } from "../src/domain/Envelope.js"
import { hardenedFlags, instantiate } from "../src/services/internal/libxml2.js"
import { round } from "./support.js"

/** Its own libxml2 instance, like each XmlEngine layer. */
const Raw = await instantiate()

/**
 * Warm-up before the first measured slice. The module is compiled anew per instance and
 * starts on V8's baseline wasm tier: measured in 100 ms slices from a fresh process, the
 * first 100–200 ms run at 35–125 µs a message with a second core busy (process CPU ≈ 1.95×
 * wall: the optimizing tier compiling in the background), and from 300–800 ms on (20,000–
 * 40,000 messages) it settles at its steady ≈ 12 µs with CPU ≈ wall. 1.5 s covers the slow
 * case twice over; the old 5,000-message warm-up ended inside the baseline tier.
 */
const FIRST_WARM_UP_MS = 1500
/** Later floors in the same process reuse the tiered-up code: only their own JS warms up. */
const LATER_WARM_UP_MS = 200
let warmedUp = false

export interface Floor {
  /** CPU µs per message (the main thread's; the process's where that is not known). */
  readonly cpuMicroseconds: number
  /** Messages per second on one core: 10⁶ / cpuMicroseconds. */
  readonly perSecond: number
  /** Wall µs per message, for comparison (machine load shows as wall > CPU). */
  readonly wallMicroseconds: number
  /**
   * The floor's CPU over its wall time: ≈ 1.0 on a quiet machine (one busy thread); below
   * 1 when neighbours took the core during the floor's slices.
   */
  readonly coresUsed: number
  readonly messages: number
}

export interface FloorMeter {
  /** Runs the floor for about `ms` of wall time and adds it to the figures. */
  readonly slice: (ms: number) => void
  /** The figures over every slice so far. */
  readonly result: () => Floor
  readonly close: () => void
}

/** CPU µs of the whole process since `from` (or since it started). */
export const cpuMicros = (from?: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(from)
  return u.user + u.system
}

/** Nanoseconds on a CPU of the calling thread (the first field of schedstat). */
const schedstat = () => Number(readFileSync("/proc/thread-self/schedstat", "utf8").split(" ")[0])

/** CPU µs of the calling thread so far, where the system tells; else of the process. */
export const threadCpuMicros: () => number = (() => {
  try {
    if (Number.isFinite(schedstat())) return () => schedstat() / 1000
  } catch {
    // Not Linux, or no scheduler statistics: the process's time.
  }
  return () => cpuMicros()
})()

const compile = (xsd: string) => {
  const r = Raw.compileSchema(xsd)
  if (r._tag !== "Compiled") throw new Error(`floor: XSD does not compile: ${JSON.stringify(r.errors)}`)
  return r.schema
}

/** A floor for `envelope` whose payload validates against `payloadXsd`, warmed up. */
export const floorMeter = (envelope: Uint8Array, payloadXsd: string): FloorMeter => {
  const env = compile(ENVELOPE_XSD)
  const pay = compile(payloadXsd)
  const once = () => {
    const doc = Raw.readDocument(envelope, hardenedFlags)
    if (Raw.validateDocument(env, doc).length > 0) throw new Error("floor: envelope invalid")
    if (Raw.canonicalize(doc)._tag !== "Canonical") throw new Error("floor: no canonical form")
    if (Raw.validateElement(pay, Raw.nthElementChild(Raw.rootElement(doc), 1)).length > 0) {
      throw new Error("floor: payload invalid")
    }
    Raw.freeDocument(doc)
  }
  const loop = (ms: number) => {
    let n = 0
    const until = performance.now() + ms
    while (performance.now() < until) {
      for (let i = 0; i < 200; i++) once()
      n += 200
    }
    return n
  }
  loop(warmedUp ? LATER_WARM_UP_MS : FIRST_WARM_UP_MS)
  warmedUp = true
  let messages = 0
  let cpu = 0
  let wall = 0
  return {
    slice: (ms) => {
      const cpu0 = threadCpuMicros()
      const wall0 = performance.now()
      messages += loop(ms)
      wall += (performance.now() - wall0) * 1000
      cpu += threadCpuMicros() - cpu0
    },
    result: () => ({
      cpuMicroseconds: cpu / messages,
      perSecond: (messages * 1e6) / cpu,
      wallMicroseconds: wall / messages,
      coresUsed: cpu / wall,
      messages
    }),
    close: () => {
      Raw.freeSchema(env)
      Raw.freeSchema(pay)
    }
  }
}

/** The floor in one slice of `seconds`, for benchmarks whose workload is not sliced. */
export const measureFloor = (envelope: Uint8Array, payloadXsd: string, seconds = 1.5): Floor => {
  const meter = floorMeter(envelope, payloadXsd)
  meter.slice(seconds * 1000)
  meter.close()
  return meter.result()
}

/** A measured stretch of workload: units done, wall seconds, process CPU µs. */
export interface Work {
  readonly units: number
  readonly wallSeconds: number
  readonly cpuMicros: number
}

export const addWork = (a: Work, b: Work): Work => ({
  units: a.units + b.units,
  wallSeconds: a.wallSeconds + b.wallSeconds,
  cpuMicros: a.cpuMicros + b.cpuMicros
})

export const noWork: Work = { units: 0, wallSeconds: 0, cpuMicros: 0 }

/** The figures of the header for `work` against `floor` (per unit: the caller names it). */
export const againstFloor = (work: Work, floor: Floor) => {
  const cpuPerUnit = work.cpuMicros / work.units
  const wallPerUnit = (work.wallSeconds * 1e6) / work.units
  return {
    cpuPerUnit: round(cpuPerUnit, 2),
    coresUsed: round(work.cpuMicros / (work.wallSeconds * 1e6), 2),
    floorCpuUs: round(floor.cpuMicroseconds, 2),
    floorPerSecond: Math.round(floor.perSecond),
    floorCoresUsed: round(floor.coresUsed, 2),
    ratioToFloor: round(wallPerUnit / floor.cpuMicroseconds),
    cpuRatioToFloor: round(cpuPerUnit / floor.cpuMicroseconds)
  }
}
