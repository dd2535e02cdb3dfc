/**
 * tracing: the pingpong workload without tracing and with it (spans sent over OTLP/HTTP
 * protobuf to a loopback receiver that reads and drops them), in the same process,
 * alternating, best of `rounds` each. `handler spans`: the default (a conversation span and
 * one per handler invocation); `hop spans`: every hop sampled as well (ORGANISM_OTEL_HOPS=1);
 * `sampled 10pct`: one conversation in ten traced (OTEL_TRACES_SAMPLER=traceidratio, ARG 0.1).
 * The time measured is the workload's, from the first message to idle; the final export at
 * the end of each run comes after it.
 */
import { Effect } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import * as Tracing from "../src/observability/Tracing.js"
import { run } from "./pingpong.js"
import { round } from "./support.js"

export interface TracingBenchOptions {
  readonly threads: number
  readonly hops: number
  readonly rounds: number
}

const sink = Effect.acquireRelease(
  Effect.async<{ url: string; close: () => void; received: () => number }>((resume) => {
    let received = 0
    const server = createServer((req, res) => {
      req.on("data", (c: Buffer) => void (received += c.length))
      req.on("end", () => res.writeHead(200, { "content-type": "application/x-protobuf" }).end())
    })
    server.listen(0, "127.0.0.1", () =>
      resume(Effect.succeed({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`,
        close: () => server.close(),
        received: () => received
      })))
  }),
  (s) => Effect.sync(s.close)
)

export const tracingBench = (options: TracingBenchOptions) =>
  Effect.gen(function*() {
    const receiver = yield* sink
    const traced = (hopSampleRatio: number, sampleRatio = 1) =>
      Tracing.observe({ url: receiver.url, protocol: "http/protobuf", serviceName: "bench", headers: {}, hopSampleRatio, sampleRatio })
    const variants = {
      off: Effect.void,
      handler_spans: traced(0),
      hop_spans: traced(1),
      sampled_10pct: traced(0, 0.1)
    }
    const best: Record<string, number> = {}
    yield* run(10, 200, false, traced(1)) // warm-up, tracing code included
    for (let r = 0; r < options.rounds; r++) {
      for (const [name, setup] of Object.entries(variants)) {
        const { elapsed, total } = yield* run(options.threads, options.hops, false, setup)
        best[name] = Math.max(best[name] ?? 0, total / elapsed)
      }
    }
    const off = best.off!
    return {
      name: "tracing",
      threads: options.threads,
      hops: options.hops,
      rounds: options.rounds,
      off_hops_per_s: Math.round(off),
      handler_spans_hops_per_s: Math.round(best.handler_spans!),
      handler_spans_ratio: round(best.handler_spans! / off),
      hop_spans_hops_per_s: Math.round(best.hop_spans!),
      hop_spans_ratio: round(best.hop_spans! / off),
      sampled_10pct_hops_per_s: Math.round(best.sampled_10pct!),
      sampled_10pct_ratio: round(best.sampled_10pct! / off),
      otlp_kb_received: Math.round(receiver.received() / 1024)
    }
  }).pipe(Effect.scoped)
