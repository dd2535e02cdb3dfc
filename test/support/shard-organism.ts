/**
 * An organism for the shard tests, loaded by every shard (a worker thread) from this module:
 * `pingpong(hops)` is the long ping-pong of pump.ts; the other exports are what the tests ask
 * of each shard through `Shards.call`.
 */
import { Schema } from "effect"
import { threadId } from "node:worker_threads"
import { Listener } from "../../src/domain/Listener.js"
import { Organism } from "../../src/domain/Organism.js"
import * as Payload from "../../src/domain/Payload.js"
import { Reply } from "../../src/domain/Reply.js"

// Here, not in pump.ts: a shard imports this module, and must not import the test runner.
export class Ping extends Payload.Class<Ping>("Ping")({ n: Schema.Int }) {}

let handled = 0

export const pingpong = (hops: number) =>
  Organism.make({
    name: "shard-pingpong",
    settings: { guards: { maxInvocationsPerThread: hops + 10 } },
    listeners: [
      Listener.make({
        name: "ping",
        payload: Ping,
        handler: (p) => (handled++, p.n >= hops ? Reply.none : Reply.forward("pong", new Ping({ n: p.n + 1 })))
      }),
      Listener.make({
        name: "pong",
        payload: Ping,
        handler: (p) => (handled++, p.n >= hops ? Reply.none : Reply.respond(new Ping({ n: p.n + 1 })))
      })
    ]
  })

/** Which thread this shard is, and how many messages its handlers took. */
export const stats = () => ({ threadId, handled })

export const fails = (why: string) => Promise.reject(new Error(why))

/**
 * Ends the thread of the first shard to get here, as a crash would (`flag`: a
 * SharedArrayBuffer every shard sees); the others answer "alive".
 */
export const crashOne = (flag: SharedArrayBuffer) =>
  Atomics.compareExchange(new Int32Array(flag), 0, 0, 1) === 0 ? process.exit(3) : "alive"

export const notAnOrganism = { name: "nothing" }
