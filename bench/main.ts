/**
 * `npm run bench [NAME…] [--json] [--threads T] [--hops H] [--listeners L] [--messages M]
 *  [--live N] [--agents A] [--turns N] [--seconds S] [--clients C] [--subscribers N] [--conversations N] [--rounds R]
 *  [--workers N] [--shards N]`
 *
 * One JSON line per benchmark with its figures and `ratio_to_floor`: the libxml2 floor's
 * throughput on one core (measured in CPU time, in the same run, interleaved with the
 * workload where the workload allows) divided by the measured throughput. 1.0 means the
 * framework costs nothing beyond libxml2 on one core; below 1.0 means past one core's limit.
 * `cpu_us_per_hop` / `cpu_us_per_message`, `cores_used` and `cpu_ratio_to_floor` (CPU per
 * unit in floors) are defined in bench/floor.ts.
 */
import { Effect } from "effect"
import { availableParallelism } from "node:os"
import { agentsBench } from "./agents.js"
import { broadcastBench } from "./broadcast.js"
import { durableBench } from "./durable.js"
import { ingressBench } from "./ingress.js"
import { pingpongBench } from "./pingpong.js"
import { serveBench } from "./serve.js"
import { soakBench } from "./soak.js"
import { threadsBench } from "./threads.js"
import { tracingBench } from "./tracing.js"

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const option = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`)
  if (i === -1) return fallback
  const v = Number(argv[i + 1])
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`bench: --${name} expects a positive number`)
    process.exit(2)
  }
  return v
}
/** `--workers N` (0 allowed: ingress workers off); undefined when not given. */
const workersOption = (() => {
  const i = argv.indexOf("--workers")
  if (i === -1) return undefined
  const v = Number(argv[i + 1])
  if (!Number.isInteger(v) || v < 0) {
    console.error("bench: --workers expects a whole number ≥ 0")
    process.exit(2)
  }
  return v
})()
/** `--shards N`: pingpong on N worker threads, each a whole pump; undefined when not given. */
const shardsOption = argv.includes("--shards") ? option("shards", 1) : undefined
const valued = new Set(["--shards", "--workers", "--conversations", "--rounds", "--threads", "--hops", "--listeners", "--messages", "--live", "--agents", "--turns", "--seconds", "--clients", "--subscribers"])
const names = argv.filter((a, i) => !a.startsWith("--") && !valued.has(argv[i - 1] ?? ""))

const seconds = option("seconds", 2)
const benches: Record<string, () => Effect.Effect<Record<string, unknown>, unknown>> = {
  ingress: () => ingressBench({ seconds }),
  pingpong: () => pingpongBench({ threads: option("threads", 50), hops: option("hops", 2000), seconds, rounds: option("rounds", 3), workers: workersOption, shards: shardsOption }),
  // pingpong on shards: the organism on every core (--shards N, default: the cores Node sees).
  shards: () => pingpongBench({ threads: option("threads", 50), hops: option("hops", 2000), seconds, rounds: option("rounds", 3), workers: workersOption, shards: shardsOption ?? availableParallelism() }),
  broadcast: () => broadcastBench({ listeners: option("listeners", 100), messages: option("messages", 5000), seconds }),
  threads: () => threadsBench({ live: option("live", 10_000), seconds }),
  agents: () => agentsBench({ agents: option("agents", 20), turns: option("turns", 20) }),
  // Not in the default set: pingpong three ways, several rounds (the README's tracing cost).
  tracing: () => tracingBench({ threads: option("threads", 50), hops: option("hops", 2000), rounds: option("rounds", 3) }),
  // Not in the default set: a million messages take about a minute.
  soak: () => soakBench({ messages: option("messages", 1_000_000), seconds }),
  // Not in the default set either: it starts an HTTP server and 100 SSE clients.
  serve: () =>
    serveBench({
      clients: option("clients", 16),
      hops: option("hops", 20),
      subscribers: option("subscribers", 100),
      seconds: option("seconds", 3),
      rounds: option("rounds", 3)
    }),
  // Not in the default set: it needs Postgres (scripts/test-postgres.sh) and starts two runner processes.
  durable: () => durableBench({ conversations: option("conversations", 20) })
}

const unknown = names.filter((n) => !(n in benches))
if (unknown.length > 0) {
  console.error(`bench: unknown benchmark ${unknown.join(", ")}; available: ${Object.keys(benches).join(", ")}`)
  process.exit(2)
}

const defaults = Object.keys(benches).filter((n) => n !== "soak" && n !== "serve" && n !== "tracing" && n !== "durable")
for (const name of names.length > 0 ? names : defaults) {
  const result = await Effect.runPromise(benches[name]!())
  if (flag("json")) console.log(JSON.stringify(result))
  else {
    console.log(`${name}:`)
    for (const [k, v] of Object.entries(result)) if (k !== "name") console.log(`  ${k.padEnd(16)} ${v}`)
  }
}
