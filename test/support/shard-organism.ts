/**
 * An organism for the shard tests, loaded by every shard (a worker thread) from this module:
 * `pingpong(hops)` is the long ping-pong of pump.ts; the other exports are what the tests ask
 * of each shard through `Shards.call`.
 */
import { Effect, Schema } from "effect"
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

/** Never finishes making its organism (it waits on a timer forever): a shard loading it never gets ready. */
export const never = () => new Promise<never>(() => void setInterval(() => {}, 1000))

/**
 * The first shard to load this gets a ping-pong organism, the others fail. `flag` (shared by
 * every shard): [0] how many loaded; [1] ticks of a timer every loading thread runs, so a
 * thread still alive keeps counting.
 */
export const failAllButOne = (flag: SharedArrayBuffer) => {
  const counts = new Int32Array(flag)
  setInterval(() => void Atomics.add(counts, 1, 1), 5)
  if (Atomics.add(counts, 0, 1) > 0) throw new Error("only one shard may load this")
  return pingpong(2)
}

/** `wait` takes a Ping and never answers (its handler suspends until it is interrupted). */
export const waiting = () =>
  Organism.make({
    name: "shard-waiting",
    listeners: [Listener.make({ name: "wait", payload: Ping, handler: () => Effect.never })]
  })
