/**
 * Events: a PubSub of pump events. Publishing is synchronous and free when nobody listens —
 * producers ask `active()` before building an event, so an organism without observers pays
 * nothing per message.
 */
import { Context, Effect, Layer, PubSub, type Queue, type Scope, Stream } from "effect"
import type { PumpEvent } from "../domain/PumpEvent.js"

export declare namespace Events {
  export interface Service {
    /** True while at least one subscriber or observer exists. */
    readonly active: () => boolean
    /** Publishes without waiting (subscribers' queues are unbounded). */
    readonly publish: (event: PumpEvent) => void
    /** A subscription for the lifetime of the Scope. Subscribe before you start producing. */
    readonly subscribe: Effect.Effect<Queue.Dequeue<PumpEvent>, never, Scope.Scope>
    /**
     * Calls `f` with every event inside `publish` itself, for the lifetime of the Scope: for
     * an observer that must never lag behind the producer (the journal writes each record
     * before the pump goes on, so a crash cannot lose what is waiting in a queue). `f` runs
     * on the pump's path: it must be quick and must not throw — one that throws is removed,
     * so an observer can never break the pump.
     */
    readonly observe: (f: (event: PumpEvent) => void) => Effect.Effect<void, never, Scope.Scope>
    /** Every event from the moment the stream is run. */
    readonly stream: Stream.Stream<PumpEvent>
  }
}

export class Events extends Context.Tag("xml-organism/Events")<Events, Events.Service>() {
  static readonly make: Effect.Effect<Events.Service, never, Scope.Scope> = Effect.gen(function*() {
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<PumpEvent>(), PubSub.shutdown)
    let subscribers = 0
    // Replaced, never mutated: an observer added or removed while `publish` iterates does
    // not disturb that iteration.
    let observers: ReadonlyArray<(event: PumpEvent) => void> = []
    const remove = (f: (event: PumpEvent) => void) => {
      observers = observers.filter((o) => o !== f)
    }
    const subscribe = Effect.acquireRelease(
      Effect.tap(PubSub.subscribe(hub), () => Effect.sync(() => void subscribers++)),
      () => Effect.sync(() => void subscribers--)
    )
    return {
      active: () => subscribers > 0 || observers.length > 0,
      publish: (event) => {
        if (subscribers > 0) hub.unsafeOffer(event)
        if (observers.length > 0) {
          for (const f of observers) {
            try {
              f(event)
            } catch {
              remove(f)
            }
          }
        }
      },
      subscribe,
      observe: (f) =>
        Effect.acquireRelease(
          Effect.sync(() => void (observers = [...observers, f])),
          () => Effect.sync(() => remove(f))
        ),
      stream: Stream.unwrapScoped(Effect.map(subscribe, (queue) => Stream.fromQueue(queue)))
    }
  })

  static readonly layer: Layer.Layer<Events> = Layer.scoped(Events, Events.make)
}
