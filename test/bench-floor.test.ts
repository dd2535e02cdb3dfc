/**
 * The benchmarks' floor (bench/floor.ts): its definitions, its meter, and the fields
 * `npm run bench` reports against it (a real run of the ingress benchmark).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { againstFloor, type Floor, floorMeter, measureFloor } from "../bench/floor.js"
import { Ping, pingEnvelope } from "../bench/support.js"
import * as Payload from "../src/domain/Payload.js"
import { specOf } from "../src/domain/Payload.js"

class Other extends Payload.Class<Other>("Other")({ count: Schema.Int }) {}

const spec = specOf(Ping)
const envelope = pingEnvelope({ from: "ping", to: "pong", n: 1 })

const floorOf = (cpuMicroseconds: number): Floor => ({
  cpuMicroseconds,
  perSecond: 1e6 / cpuMicroseconds,
  wallMicroseconds: cpuMicroseconds,
  coresUsed: 1,
  messages: 1000
})

describe("the floor's figures", () => {
  it("one core slower than the floor: ratio_to_floor above 1, from wall time; cpu_ratio_to_floor from CPU time", () => {
    // 1,000 hops in 30 ms of wall time and 25 ms of CPU, against a 10 µs floor.
    const f = againstFloor({ units: 1000, wallSeconds: 0.03, cpuMicros: 25_000 }, floorOf(10))
    expect(f).toEqual({
      cpuPerUnit: 25,
      coresUsed: 0.83,
      floorCpuUs: 10,
      floorPerSecond: 100_000,
      floorCoresUsed: 1,
      ratioToFloor: 3,
      cpuRatioToFloor: 2.5
    })
  })

  it("past one core's limit: ratio_to_floor below 1 while the CPU per hop is still above the floor", () => {
    // 4 cores busy: 5 µs of wall time per hop, 20 µs of CPU.
    const f = againstFloor({ units: 1000, wallSeconds: 0.005, cpuMicros: 20_000 }, floorOf(10))
    expect(f.coresUsed).toBe(4)
    expect(f.ratioToFloor).toBe(0.5)
    expect(f.cpuRatioToFloor).toBe(2)
  })
})

describe("floorMeter", () => {
  it("adds up its slices in CPU time, and checks every message it runs", () => {
    const meter = floorMeter(envelope, spec.xsd)
    meter.slice(100)
    const one = meter.result()
    meter.slice(100)
    const two = meter.result()
    meter.close()
    expect(one.messages).toBeGreaterThan(0)
    expect(two.messages).toBeGreaterThan(one.messages)
    expect(two.cpuMicroseconds).toBeGreaterThan(0)
    expect(two.perSecond * two.cpuMicroseconds).toBeCloseTo(1e6, 0)
    // One busy thread: CPU cannot run far ahead of wall time (background GC aside), and a
    // loaded machine only lowers the figure.
    expect(two.coresUsed).toBeLessThan(1.5)
    // A payload its XSD refuses is an error, not a faster floor.
    expect(() => measureFloor(envelope, specOf(Other).xsd, 0.01)).toThrow("floor: payload invalid")
  })
})

describe("npm run bench", () => {
  it.live("ingress reports CPU per message, cores used and both ratios, consistent with their definitions", () =>
    Effect.gen(function*() {
      const { stdout } = yield* Effect.promise(() =>
        promisify(execFile)(process.execPath, ["bin/bench.js", "ingress", "--json", "--seconds", "0.3"], { timeout: 60_000 })
      )
      const r = JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, number>
      for (const field of ["cpu_us_per_message", "cores_used", "floor_cpu_us", "floor_per_s", "floor_cores_used", "ratio_to_floor", "cpu_ratio_to_floor"]) {
        expect(r[field], field).toBeGreaterThan(0)
      }
      expect(r).not.toHaveProperty("floor_us")
      expect(Math.abs(r.floor_per_s! * r.floor_cpu_us! / 1e6 - 1)).toBeLessThan(0.01)
      expect(r.ratio_to_floor).toBeCloseTo(r.us_per_message! / r.floor_cpu_us!, 1)
      expect(r.cpu_ratio_to_floor).toBeCloseTo(r.cpu_us_per_message! / r.floor_cpu_us!, 1)
    }), 60_000)
})
