/**
 * Shards: one organism on several threads. Each shard is a `node:worker_threads` thread
 * running a whole pump (ShardWorker.ts) with its own libxml2, registries and handlers; a
 * conversation lives in the shard it was injected into, so nothing of it crosses threads but
 * its injection, its events (only while somebody watches) and the answers. This is how an
 * organism uses more than one core: a pump runs every hop of its conversations on one thread.
 *
 * The organism comes from a source every thread can load: an ES module's export or an
 * organism file (ShardProtocol.ts), not a value, since handlers are closures that cannot move
 * between threads. Each shard keeps its own books; `counters` adds them up.
 */
import { Context, Duration, Effect, Either, Layer, type Queue, type Scope } from "effect"
import { availableParallelism } from "node:os"
import { isAbsolute, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import type { ThreadId } from "../domain/Ids.js"
import { type InjectError, InboxFull, PayloadNotEncodable, PumpStopped } from "../domain/PumpError.js"
import { PumpEvent } from "../domain/PumpEvent.js"
import type { PayloadValue } from "../domain/Reply.js"
import { workerSource } from "../pipeline/internal/WorkerSource.js"
import type { Pump } from "../pipeline/Pump.js"
import type { Counters } from "../pipeline/pump/Core.js"
import { encodePayload } from "../pipeline/pump/Outbox.js"
import { Events } from "../services/Events.js"
import { decodeEvents } from "./internal/EventBatch.js"
import { ShardCallFailed, ShardFailed } from "./ShardErrors.js"
import type { FromShard, ShardInit, ShardSource, ToShard, WireError } from "./ShardProtocol.js"

export { ShardCallFailed, ShardFailed } from "./ShardErrors.js"
export type { ShardSource } from "./ShardProtocol.js"

export declare namespace Shards {
  export interface Options {
    readonly source: ShardSource
    /** How many shards (threads); default: the cores Node sees (`os.availableParallelism()`). */
    readonly shards?: number
    /** How long each shard's drain may take when the Scope closes (default 5 s). */
    readonly drainDeadline?: Duration.DurationInput
    /**
     * How long a shard may take to load its organism (default 60 s): past it, `make` fails
     * with `ShardFailed` rather than wait for a module that never finishes loading.
     */
    readonly startTimeout?: Duration.DurationInput
  }

  export interface Service {
    readonly shards: number
    /** The organism's name and listeners, as shard 0 loaded them. */
    readonly name: string
    readonly listeners: ReadonlyArray<string>
    /**
     * Sends a payload to a listener on a new conversation, in the next shard in turn; returns
     * the conversation's thread id.
     */
    readonly inject: (
      to: string,
      payload: PayloadValue,
      options?: { readonly from?: string }
    ) => Effect.Effect<ThreadId, InjectError | ShardFailed>
    /** Waits until every shard is idle (see `Pump.awaitIdle`). */
    readonly awaitIdle: Effect.Effect<void, ShardFailed>
    /** The shards' books added up. */
    readonly counters: Effect.Effect<Counters, ShardFailed>
    /** Every shard's last rejected messages, oldest first. */
    readonly deadLetters: Effect.Effect<ReadonlyArray<Pump.DeadLetter>, ShardFailed>
    /** Live conversations and chain nodes in all shards. */
    readonly threads: Effect.Effect<{ readonly roots: number; readonly nodes: number }, ShardFailed>
    /**
     * Cancels a conversation in whichever shard has it (see `Pump.cancel`); false when none
     * has a live conversation that matches.
     */
    readonly cancel: (thread: string, options?: { readonly by?: string }) => Effect.Effect<boolean, ShardFailed>
    /**
     * Drains every shard at once (see `Pump.drain`): finished when every shard finished in
     * time, with the handler jobs interrupted in all of them. The shards then take no new
     * conversation (`PumpStopped`).
     */
    readonly drain: (deadline: Duration.DurationInput) => Effect.Effect<Pump.Drained, ShardFailed>
    /**
     * Every shard's events, from the moment this Effect returns, for the lifetime of the
     * Scope. Shards send events only while somebody subscribes: an organism nobody watches
     * pays nothing for them.
     */
    readonly subscribe: Effect.Effect<Queue.Dequeue<PumpEvent>, ShardFailed, Scope.Scope>
    /**
     * Runs a function the source module exports in every shard, with structured-cloneable
     * arguments; returns each shard's result (structured-cloned), shard 0 first. For what a
     * module keeps per thread: statistics, caches, test probes.
     */
    readonly call: (name: string, ...args: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<unknown>, ShardFailed | ShardCallFailed>
  }
}

interface Shard {
  readonly index: number
  readonly worker: Worker
  readonly pending: Map<number, (m: FromShard | ShardFailed) => void>
  failed: ShardFailed | undefined
}

/** A pump's error, rebuilt from its tag and fields. */
const injectError = (shard: number, e: WireError): InjectError | ShardFailed => {
  switch (e._tag) {
    case "PumpStopped":
      return new PumpStopped()
    case "InboxFull":
      return new InboxFull(e.fields as ConstructorParameters<typeof InboxFull>[0])
    case "PayloadNotEncodable":
      return new PayloadNotEncodable({ reason: String(e.fields.reason ?? e.message) })
    default:
      return new ShardFailed({ shard, reason: e.message })
  }
}

/** Event classes' prototypes by tag: an event comes back from a shard as data and gets its prototype again. */
const eventClasses = new Map<string, object>(PumpEvent.members.map((m) => [m._tag as string, m.prototype as object]))

const sourceOf = (source: ShardSource): ShardInit["source"] => {
  if ("yaml" in source) return { yaml: resolve(source.yaml) }
  const m = source.module
  const module = m instanceof URL ? m.href : /^[a-z][a-z0-9+.-]*:/i.test(m) && !isAbsolute(m) ? m : pathToFileURL(resolve(m)).href
  return { module, export: source.export ?? "default", args: source.args ?? [] }
}

const addCounters = (a: Counters, b: Counters): Counters => {
  const rejectedBy: Record<string, number> = { ...a.rejectedBy }
  for (const [k, v] of Object.entries(b.rejectedBy)) rejectedBy[k] = (rejectedBy[k] ?? 0) + v
  return {
    injected: a.injected + b.injected,
    delivered: a.delivered + b.delivered,
    rejected: a.rejected + b.rejected,
    guardStopped: a.guardStopped + b.guardStopped,
    inFlight: a.inFlight + b.inFlight,
    invocations: a.invocations + b.invocations,
    running: a.running + b.running,
    rejectedBy,
    pendingApprovals: a.pendingApprovals + b.pendingApprovals
  }
}

const make = Effect.fn("Shards.make")(function*(options: Shards.Options) {
  const count = options.shards ?? availableParallelism()
  if (!Number.isInteger(count) || count < 1) return yield* new ShardFailed({ shard: -1, reason: `shards must be a whole number ≥ 1, got ${count}` })
  const drainMs = Duration.toMillis(options.drainDeadline ?? Duration.seconds(5))
  const source = sourceOf(options.source)
  const code = workerSource(import.meta.url, "ShardWorker")
  const events = yield* Events.make
  let seq = 0

  const fail = (shard: Shard, reason: string) => {
    if (shard.failed !== undefined) return
    shard.failed = new ShardFailed({ shard: shard.index, reason })
    for (const resume of shard.pending.values()) resume(shard.failed)
    shard.pending.clear()
  }

  const spawn = (index: number) =>
    Effect.async<{ readonly shard: Shard; readonly ready: Extract<FromShard, { k: "ready" }> }, ShardFailed>((resume) => {
      const init: ShardInit = { index, source }
      const worker = new Worker(code, { eval: true, workerData: init })
      const shard: Shard = { index, worker, pending: new Map(), failed: undefined }
      let started = false
      worker.on("message", (m: FromShard) => {
        switch (m.k) {
          case "ready":
            started = true
            return resume(Effect.succeed({ shard, ready: m }))
          case "startFailed":
            // Its thread is of no more use, and what its loader left may keep it alive.
            void worker.terminate()
            if (!started) return resume(Effect.fail(new ShardFailed({ shard: index, reason: `could not start: ${m.reason}` })))
            return fail(shard, m.reason)
          case "events":
            for (const e of decodeEvents(m.batch, eventClasses)) events.publish(e)
            return
          case "done":
          case "error": {
            const answer = shard.pending.get(m.id)
            shard.pending.delete(m.id)
            return answer?.(m)
          }
        }
      })
      worker.on("error", (e) => {
        if (!started) resume(Effect.fail(new ShardFailed({ shard: index, reason: `could not start: ${e.message}` })))
        fail(shard, `its thread failed: ${e.message}`)
      })
      worker.on("exit", (code) => {
        if (!started) resume(Effect.fail(new ShardFailed({ shard: index, reason: `its thread exited with code ${code} before it was ready` })))
        fail(shard, `its thread exited (code ${code})`)
      })
      return Effect.sync(() => void worker.terminate())
    })

  /** One request to one shard; a pump's failure comes back as its wire form. */
  const ask = (shard: Shard, message: (id: number) => ToShard) =>
    Effect.async<unknown, ShardFailed | { readonly wire: WireError }>((resume) => {
      if (shard.failed !== undefined) return resume(Effect.fail(shard.failed))
      const id = ++seq
      shard.pending.set(id, (m) => {
        if (m instanceof ShardFailed) resume(Effect.fail(m))
        else if (m.k === "done") resume(Effect.succeed(m.value))
        else if (m.k === "error") resume(Effect.fail({ wire: m.error }))
      })
      shard.worker.postMessage(message(id))
    })

  /** Drains a shard (a failed one has nothing to drain), then ends its thread. */
  const stop = (shard: Shard) =>
    ask(shard, (id) => ({ k: "stop", id, deadlineMs: drainMs })).pipe(
      Effect.timeout(Duration.millis(drainMs + 5_000)),
      Effect.ignore,
      Effect.zipRight(Effect.promise(() => shard.worker.terminate()))
    )

  const startTimeout = Duration.decode(options.startTimeout ?? Duration.seconds(60))
  // Registered first: when one shard cannot start, those already started are stopped too.
  const ready: Array<Shard> = []
  yield* Effect.addFinalizer(() => Effect.forEach(ready, stop, { concurrency: "unbounded", discard: true }))
  const started = yield* Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (i) =>
      Effect.timeoutFail(Effect.tap(spawn(i), (s) => void ready.push(s.shard)), {
        duration: startTimeout,
        onTimeout: () => new ShardFailed({ shard: i, reason: `could not start: not ready after ${Duration.format(startTimeout)}` })
      }),
    { concurrency: "unbounded" }
  )
  const shards = started.map((s) => s.shard)
  const first = started[0]!.ready

  /**
   * A request to every shard at once; the answers in shard order, or — when any failed — the
   * failure of the lowest-numbered shard that failed (not of whichever failed first).
   */
  const inEveryShard = <A, E>(f: (shard: Shard) => Effect.Effect<A, E>) =>
    Effect.flatMap(Effect.all(shards.map(f), { concurrency: "unbounded", mode: "either" }), (answers) => {
      const failed = answers.find(Either.isLeft)
      return failed === undefined ? Effect.succeed(answers.map((a) => (a as Either.Right<E, A>).right)) : Effect.fail(failed.left)
    })

  /** A request every shard must answer; a pump's failure becomes what `failure` makes of it. */
  const askEvery = <E>(message: (id: number) => ToShard, failure: (shard: number, e: WireError) => E) =>
    inEveryShard((s) =>
      Effect.catchIf(ask(s, message), (e): e is { readonly wire: WireError } => !(e instanceof ShardFailed), (e) =>
        Effect.fail(failure(s.index, e.wire))))

  /** A request every shard must answer: a pump's failure is that shard's failure. */
  const askAll = (message: (id: number) => ToShard) =>
    askEvery(message, (shard, e) => new ShardFailed({ shard, reason: e.message }))

  let next = 0
  const inject: Shards.Service["inject"] = (to, payload, injectOptions) =>
    Effect.suspend(() => {
      const encoded = encodePayload(payload, first.wire)
      if (encoded._tag === "Left") return Effect.fail(new PayloadNotEncodable({ reason: encoded.left }))
      // The next live shard in turn: conversations are spread evenly, and a shard that
      // failed takes none.
      let shard: Shard | undefined
      for (let tries = 0; tries < count && shard === undefined; tries++) {
        const candidate = shards[next++ % count]!
        if (candidate.failed === undefined) shard = candidate
      }
      if (shard === undefined) return Effect.fail(shards[0]!.failed!)
      const { tag, inner } = encoded.right
      const target = shard
      return Effect.mapError(
        ask(target, (id) => ({ k: "inject", id, to, tag, inner, from: injectOptions?.from })),
        (e) => e instanceof ShardFailed ? e : injectError(target.index, e.wire)
      ) as Effect.Effect<ThreadId, InjectError | ShardFailed>
    })

  let watchers = 0
  const setWatch = (on: boolean) => Effect.asVoid(askAll((id) => ({ k: "watch", id, on })))

  const service: Shards.Service = {
    shards: count,
    name: first.name,
    listeners: first.listeners,
    inject,
    awaitIdle: Effect.asVoid(askAll((id) => ({ k: "idle", id }))),
    counters: Effect.map(askAll((id) => ({ k: "counters", id })), (all) => (all as ReadonlyArray<Counters>).reduce(addCounters)),
    deadLetters: Effect.map(
      askAll((id) => ({ k: "deadLetters", id })),
      (all) => (all as ReadonlyArray<ReadonlyArray<Pump.DeadLetter>>).flat().sort((a, b) => a.time - b.time)
    ),
    threads: Effect.map(askAll((id) => ({ k: "threads", id })), (all) =>
      (all as ReadonlyArray<{ readonly roots: number; readonly nodes: number }>).reduce((a, b) => ({ roots: a.roots + b.roots, nodes: a.nodes + b.nodes }))),
    cancel: (thread, cancelOptions) =>
      Effect.map(askAll((id) => ({ k: "cancel", id, thread, by: cancelOptions?.by })), (all) => all.some((found) => found === true)),
    drain: (deadline) =>
      Effect.suspend(() => {
        const deadlineMs = Duration.toMillis(deadline)
        return Effect.map(askAll((id) => ({ k: "drain", id, deadlineMs })), (all) => {
          const drained = all as ReadonlyArray<Pump.Drained>
          return { finished: drained.every((d) => d.finished), interrupted: drained.reduce((n, d) => n + d.interrupted, 0) }
        })
      }),
    subscribe: Effect.gen(function*() {
      const queue = yield* events.subscribe
      yield* Effect.acquireRelease(
        Effect.suspend(() =>
          watchers++ === 0 ? Effect.tapError(setWatch(true), () => Effect.sync(() => void watchers--)) : Effect.void
        ),
        () => Effect.suspend(() => --watchers === 0 ? Effect.ignore(setWatch(false)) : Effect.void)
      )
      return queue
    }),
    call: (name, ...args) =>
      askEvery((id) => ({ k: "call", id, name, args }), (shard, e) => new ShardCallFailed({ shard, name, reason: e.message }))
  }
  return service
})

export class Shards extends Context.Tag("xml-organism/Shards")<Shards, Shards.Service>() {
  /** Starts the shards and waits until each is ready; they drain and end with the Scope. */
  static readonly make: (options: Shards.Options) => Effect.Effect<Shards.Service, ShardFailed, Scope.Scope> = make

  static readonly layer = (options: Shards.Options): Layer.Layer<Shards, ShardFailed> => Layer.scoped(Shards, make(options))
}
