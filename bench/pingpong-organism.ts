/**
 * The pingpong organism, in a module of its own so that shards (worker threads) can load it
 * too. A forwards to B (the chain grows by one hop), B responds (it shrinks back): the chain
 * stays two hops deep however long the ping-pong runs. Each thread of the module records the
 * time between two hops of the same conversation (`record`, `recorded`).
 */
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { Reply } from "../src/domain/Reply.js"
import { Ping, pingValue } from "./support.js"

let last = new Map<string, number>()
let samples = new Float64Array(0)
let count = 0

/** Starts recording (room for `capacity` samples), dropping what was recorded before. */
export const record = (capacity: number) => {
  last = new Map()
  samples = new Float64Array(capacity)
  count = 0
}

/** The samples recorded since `record`, in ms. */
export const recorded = (): Float64Array => samples.slice(0, count)

/** A hop arrived: its latency is the time since the previous hop of its conversation. */
const hop = (p: Ping) => {
  const now = performance.now()
  const before = last.get(p.sender)
  if (before !== undefined && count < samples.length) samples[count++] = now - before
  last.set(p.sender, now)
  return p.n
}

/** Conversations of `hops` hops; `workers`: ingress worker threads (undefined: the default). */
export const pingpongOrganism = (hops: number, workers?: number) =>
  Organism.make({
    name: "pingpong",
    settings: {
      guards: { maxInvocationsPerThread: hops + 10 },
      maxConcurrentHandlers: 64,
      ...(workers === undefined ? {} : { ingress: { workers } })
    },
    listeners: [
      Listener.make({
        name: "ping",
        payload: Ping,
        handler: (p) => {
          const n = hop(p)
          return n >= hops ? Reply.none : Reply.forward("pong", pingValue(n + 1, p.sender))
        }
      }),
      Listener.make({
        name: "pong",
        payload: Ping,
        handler: (p) => {
          const n = hop(p)
          return n >= hops ? Reply.none : Reply.respond(pingValue(n + 1, p.sender))
        }
      })
    ]
  })
