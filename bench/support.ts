import { Schema } from "effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { writeEnvelope } from "../src/domain/Envelope.js"
import * as Payload from "../src/domain/Payload.js"

/** A payload that makes a ~300-byte envelope, like a typical agent message. */
export class Ping extends Payload.Class<Ping>("Ping")({
  n: Schema.Int,
  text: Schema.String,
  sender: Schema.String
}) {}

/** `sender` names the conversation, so latency can be tracked per thread of hops. */
export const pingValue = (n: number, sender = "bench") =>
  new Ping({ n, text: "Hello there, friend: how is the weather today?", sender })

/** The thread id of the benchmarks' fixed envelopes. */
export const BENCH_THREAD = "550e8400-e29b-41d4-a716-446655440000"

/** The bytes of an envelope carrying `pingValue(n)` (to nobody: a broadcast). */
export const pingEnvelope = (options: { readonly from: string; readonly to?: string; readonly thread?: string; readonly n: number }) => {
  const spec = Payload.specOf(Ping)
  return Buffer.from(writeEnvelope({
    from: options.from,
    ...(options.to === undefined ? {} : { to: options.to }),
    thread: options.thread ?? BENCH_THREAD,
    payloadTag: spec.tag,
    payloadInner: spec.encodeInner(pingValue(options.n))
  }))
}

export const round = (x: number, digits = 2) => Number(x.toFixed(digits))

/** The middle value (the upper one of an even count); 0 for none. */
export const median = (xs: ReadonlyArray<number>) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted.length === 0 ? 0 : sorted[Math.floor(sorted.length / 2)]!
}

export const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

/** Bytes as MiB, one decimal. */
export const mb = (bytes: number) => round(bytes / 1024 / 1024, 1)

export const rssMb = () => mb(process.memoryUsage().rss)

/**
 * A full garbage collection, without `--expose-gc` on the command line: the flag is set at
 * run time and `gc` taken from a fresh context, where V8 installs it.
 */
export const collectGarbage: () => void = (() => {
  setFlagsFromString("--expose-gc")
  return runInNewContext("gc") as () => void
})()
