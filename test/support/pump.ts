/** Running a pump in a test: events collected, accounting checked at the end. */
import { expect } from "@effect/vitest"
import { Effect, Layer, Queue, Schema } from "effect"
import { Listener } from "../../src/domain/Listener.js"
import { Organism } from "../../src/domain/Organism.js"
import { Reply } from "../../src/domain/Reply.js"
import * as Payload from "../../src/domain/Payload.js"
import type { PumpEvent } from "../../src/domain/PumpEvent.js"
import type { Conversation } from "../../src/pipeline/Conversation.js"
import { Pump, type PumpServices } from "../../src/pipeline/Pump.js"
import { Events } from "../../src/services/Events.js"
import type { RecordedRequest } from "../../src/llm/MockLlmServer.js"
import { LlmRouter } from "../../src/services/LlmRouter.js"

export class Ping extends Payload.Class<Ping>("Ping")({ n: Schema.Int }) {}
export class Pong extends Payload.Class<Pong>("Pong")({ n: Schema.Int }) {}
export class Note extends Payload.Class<Note>("Note")({ text: Schema.String }) {}
export class Task extends Payload.Class<Task>("Task")({ id: Schema.Int }) {}

/** One conversation of `hops` hops between two listeners: ping forwards, pong responds. */
export const longPingpong = (hops: number) =>
  Organism.make({
    name: "long-pingpong",
    settings: { guards: { maxInvocationsPerThread: hops + 10 } },
    listeners: [
      Listener.make({ name: "ping", payload: Ping, handler: (p) => (p.n >= hops ? Reply.none : Reply.forward("pong", new Ping({ n: p.n + 1 }))) }),
      Listener.make({ name: "pong", payload: Ping, handler: (p) => (p.n >= hops ? Reply.none : Reply.respond(new Ping({ n: p.n + 1 }))) })
    ]
  })

export interface Harness {
  readonly pump: Pump.Service
  /** Every event so far (drains the subscription into the list). */
  readonly events: () => Effect.Effect<ReadonlyArray<PumpEvent>>
  /** Events of one kind so far. */
  readonly eventsOf: <T extends PumpEvent["_tag"]>(tag: T) => Effect.Effect<ReadonlyArray<Extract<PumpEvent, { _tag: T }>>>
}

/** The invariant every scenario must end with. */
export const expectBalanced = (pump: Pump.Service) => {
  const c = pump.counters()
  expect(c.injected).toBe(c.delivered + c.rejected + c.guardStopped)
  expect(c.inFlight).toBe(0)
  expect(c.running).toBe(0)
}

/**
 * Builds a pump for `organism`, runs `body`, waits until idle and checks the accounting.
 * Subscribes to events before the pump starts, so boot events are seen too. `services` may
 * provide more than the pump needs (an organism file's model router).
 */
export const withPump = <A, E, R, RS = never, ES = never>(
  // The pump provides the Conversation to handlers: it is not the organism's to give.
  organism: Organism<R | Conversation>,
  body: (h: Harness) => Effect.Effect<A, E, R>,
  // RS and ES are never unless a layer is given, so the default is exactly this type.
  services: Layer.Layer<PumpServices | RS, ES> = Pump.layerServices as Layer.Layer<PumpServices | RS, ES>
) =>
  Effect.gen(function*() {
    const bus = yield* Events
    const queue = yield* bus.subscribe
    const seen: Array<PumpEvent> = []
    const events = () => Effect.map(Queue.takeAll(queue), (chunk) => {
      seen.push(...chunk)
      return [...seen] as ReadonlyArray<PumpEvent>
    })
    const pump = yield* Pump.make(organism)
    const harness: Harness = {
      pump,
      events,
      eventsOf: (tag) => Effect.map(events(), (all) => all.filter((e) => e._tag === tag) as any)
    }
    const result = yield* body(harness)
    yield* pump.awaitIdle
    expectBalanced(pump)
    return result
  }).pipe(Effect.scoped, Effect.provide(services))

/** The embedded services plus a router without backends: what a file organism without `llm:` runs on. */
export const layerWithoutModels = Layer.mergeAll(Pump.layerServices, LlmRouter.layerNone("this test configures no model backends"))

/** The agent a model request is for: its system prompt names it. */
export const agentOf = (r: RecordedRequest) => /You are "([^"]+)"/.exec(r.system)?.[1]

/**
 * The turns a Chat Completions request sends, as one text, without the system prompt (which
 * explains SystemErrors and BudgetWarnings, so it would match what a test looks for).
 */
export const turnsOf = (r: RecordedRequest) =>
  JSON.stringify((r.body as { messages: Array<{ role: string }> }).messages.filter((m) => m.role !== "system"))
