/**
 * A shard: one worker thread running a whole pump for the conversations the main thread
 * gives it (Shards.ts). It loads the organism from its source, answers the main thread's
 * requests (ShardProtocol.ts), and forwards its events in batches while somebody on the main
 * thread watches. Nothing of a conversation crosses threads but its injection, its events
 * and the answers: every hop runs here.
 */
import { Effect, Exit, Layer, Runtime, Scope } from "effect"
import { parentPort, workerData } from "node:worker_threads"
import type { Organism } from "../domain/Organism.js"
import type { PumpEvent } from "../domain/PumpEvent.js"
import { RawPayload } from "../domain/Reply.js"
import { IoFairness } from "../pipeline/IoFairness.js"
import { Pump } from "../pipeline/Pump.js"
import { Events } from "../services/Events.js"
import { encodeEvents } from "./internal/EventBatch.js"
import { loadShardSource } from "./ShardSource.js"
import type { FromShard, ShardInit, ToShard, WireError } from "./ShardProtocol.js"

const init = workerData as ShardInit
const port = parentPort!
const post = (m: FromShard) => port.postMessage(m)

const wireError = (e: unknown): WireError => {
  if (e !== null && typeof e === "object" && "_tag" in e) {
    const { _tag, ...fields } = e as { _tag: string } & Record<string, unknown>
    return { _tag, fields: JSON.parse(JSON.stringify(fields)), message: String((e as { message?: unknown }).message ?? _tag) }
  }
  return { _tag: "Defect", fields: {}, message: e instanceof Error ? e.message : String(e) }
}

const serve = (module: Record<string, unknown>) => Effect.gen(function*() {
  const pump = yield* Pump
  const events = yield* Events
  const runtime = yield* Effect.runtime<never>()
  const run = Runtime.runFork(runtime)
  const stopped = yield* Effect.makeLatch(false)

  // Events go out in batches: one message per turn of the event loop, not one per event.
  let batch: Array<PumpEvent> = []
  const flush = () => {
    if (batch.length === 0) return // nothing, or sent already ahead of an answer
    const out = batch
    batch = []
    post({ k: "events", batch: encodeEvents(out) })
  }
  let watching: Scope.CloseableScope | undefined
  const watch = (on: boolean) =>
    Effect.gen(function*() {
      if (on && watching === undefined) {
        const scope = yield* Scope.make()
        yield* Scope.extend(events.observe((e) => {
          if (batch.length === 0) setImmediate(flush)
          batch.push(e)
        }), scope)
        watching = scope
      } else if (!on && watching !== undefined) {
        yield* Scope.close(watching, Exit.void)
        watching = undefined
      }
    })

  // Events waiting for their batch go out before any answer: the port keeps order, so when
  // `awaitIdle` returns on the main thread, every event of the work before it has arrived
  // (as a pump publishes its events before it is idle).
  const reply = (m: FromShard) => {
    flush()
    post(m)
  }
  const answer = (id: number, effect: Effect.Effect<unknown, unknown>) =>
    run(Effect.matchCause(effect, {
      onFailure: (cause) => {
        const failure = cause._tag === "Fail" ? cause.error : cause._tag === "Die" ? cause.defect : cause
        reply({ k: "error", id, error: wireError(failure) })
      },
      onSuccess: (value) => reply({ k: "done", id, value })
    }))

  port.on("message", (m: ToShard) => {
    switch (m.k) {
      case "inject":
        return answer(m.id, pump.inject(m.to, new RawPayload({ tag: m.tag, inner: m.inner }), m.from === undefined ? {} : { from: m.from }))
      case "idle":
        return answer(m.id, pump.awaitIdle)
      case "counters":
        return answer(m.id, Effect.sync(() => pump.counters()))
      case "deadLetters":
        return answer(m.id, Effect.sync(() => pump.deadLetters()))
      case "threads":
        return answer(m.id, Effect.sync(() => pump.threads()))
      case "cancel":
        return answer(m.id, pump.cancel(m.thread, m.by === undefined ? {} : { by: m.by }))
      case "drain":
        return answer(m.id, pump.drain(m.deadlineMs))
      case "call":
        return answer(m.id, callExport(module, m.name, m.args))
      case "watch":
        return answer(m.id, watch(m.on))
      case "stop":
        return answer(m.id, Effect.ensuring(pump.drain(m.deadlineMs), stopped.open))
    }
  })
  post({
    k: "ready",
    name: pump.organism.settings.name,
    wire: pump.organism.settings.wire,
    listeners: pump.organism.listeners.map((l) => l.name)
  })
  yield* stopped.await
  flush()
})

/** Runs a function the source module exports (`Shards.call`). */
const callExport = (module: Record<string, unknown>, name: string, args: ReadonlyArray<unknown>) =>
  Effect.tryPromise({
    try: async () => {
      const f = module[name]
      if (typeof f !== "function") throw new Error(`the shard's module has no function export ${name}`)
      return await f(...args)
    },
    catch: (e) => e
  })

const main = Effect.gen(function*() {
  const loaded = yield* loadShardSource(init.source, init.index)
  const pump = Layer.scoped(Pump, Effect.provideService(Pump.make(loaded.organism as Organism<never>), IoFairness, IoFairness.serving))
  yield* Effect.provide(serve(loaded.module), Layer.provideMerge(pump, loaded.services))
})

Effect.runPromiseExit(Effect.scoped(main)).then((exit) => {
  if (Exit.isFailure(exit)) {
    const failure = exit.cause._tag === "Fail" ? exit.cause.error : exit.cause
    post({ k: "startFailed", reason: failure instanceof Error ? failure.message : String(failure) })
  }
  port.close()
})
