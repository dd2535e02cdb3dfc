/**
 * The message lifecycle as a property: over random organisms (handlers that reply, forward to
 * peers real and missing, broadcast, throw, fail, suspend past their timeout, answer their own
 * SystemErrors, or return any JSON-like value, reply-shaped or not) fed random mixes of
 * input (typed injections, requests, raw envelopes valid and hostile) and hot reloads, the
 * pump never wedges — code agents' watched branches included: every request ends, `awaitIdle` returns, every hop is settled exactly
 * once (`injected = delivered + rejected + guard-stopped`, nothing in flight), and every
 * conversation completes and gives its thread back.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, FastCheck as fc, Fiber, TestClock } from "effect"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { Reply } from "../src/domain/Reply.js"
import { SystemError } from "../src/domain/SystemPayloads.js"
import { Pump } from "../src/pipeline/Pump.js"
import { ENVELOPE_NS } from "./support/hostile.js"
import { expectBalanced, Note, Ping } from "./support/pump.js"

type Behaviour =
  | { readonly _tag: "respond" }
  | { readonly _tag: "forward"; readonly to: string }
  | { readonly _tag: "broadcast" }
  | { readonly _tag: "none" }
  | { readonly _tag: "throw" }
  | { readonly _tag: "fail" }
  | { readonly _tag: "suspend"; readonly seconds: number }
  | { readonly _tag: "value"; readonly value: unknown }

interface Spec {
  readonly behaviour: Behaviour
  readonly broadcast: boolean
  readonly timeoutSeconds: number
  /** On a SystemError: forward to a listener that does not exist (the loop issue 11 found). */
  readonly answersErrors: boolean
  readonly exclusive: boolean
  /** A code agent: the branches it forwards are watched (a SystemError when one ends unanswered). */
  readonly agent: boolean
}

const names = ["a", "b", "c"]

/** Values a handler might return by mistake, reply-shaped or not. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue(),
  fc.constantFrom<unknown>(
    42,
    "x",
    {},
    [],
    [Reply.none],
    { _tag: "Forward", to: "a" },
    { _tag: "Forward", to: "a", payloads: [{}] },
    { _tag: "Respond", payloads: 5 },
    { _tag: "Respond", payloads: [null] },
    { _tag: "All", replies: null },
    { _tag: "All", replies: [{ _tag: "Nope" }] },
    { _tag: "Broadcast", payloads: "x" }
  )
)

const behaviour: fc.Arbitrary<Behaviour> = fc.oneof(
  fc.constant({ _tag: "respond" as const }),
  fc.record({ _tag: fc.constant("forward" as const), to: fc.constantFrom(...names, "ghost") }),
  fc.constant({ _tag: "broadcast" as const }),
  fc.constant({ _tag: "none" as const }),
  fc.constant({ _tag: "throw" as const }),
  fc.constant({ _tag: "fail" as const }),
  fc.record({ _tag: fc.constant("suspend" as const), seconds: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ _tag: fc.constant("value" as const), value: hostileValue })
)

const spec: fc.Arbitrary<Spec> = fc.record({
  behaviour,
  broadcast: fc.boolean(),
  timeoutSeconds: fc.integer({ min: 1, max: 4 }),
  answersErrors: fc.boolean(),
  exclusive: fc.boolean(),
  agent: fc.boolean()
})

const organismOf = (specs: ReadonlyArray<Spec>, maxInvocations: number) =>
  Organism.make({
    settings: { guards: { maxInvocationsPerThread: maxInvocations, maxThreadDuration: Duration.minutes(2) } },
    listeners: specs.map((s, i) =>
      Listener.make({
        name: names[i]!,
        payload: Ping,
        accepts: [Note],
        broadcast: s.broadcast,
        timeout: Duration.seconds(s.timeoutSeconds),
        ...(s.agent ? { agent: true, peers: names } : {}),
        ...(s.exclusive ? { concurrency: { _tag: "Exclusive" } as const } : {}),
        onSystem: s.answersErrors
          ? (e) => (e instanceof SystemError ? Reply.forward("ghost", new Ping({ n: 0 })) : Reply.none)
          : undefined,
        handler: (p): any => {
          const n = p instanceof Ping ? p.n : 0
          switch (s.behaviour._tag) {
            case "respond":
              return Reply.respond(new Ping({ n: n + 1 }))
            case "forward":
              return n > 6 ? Reply.none : Reply.forward(s.behaviour.to, new Ping({ n: n + 1 }))
            case "broadcast":
              return n > 3 ? Reply.none : Reply.broadcast(new Note({ text: `n${n}` }))
            case "none":
              return undefined
            case "throw":
              throw new Error("handler threw")
            case "fail":
              return Effect.fail("handler failed")
            case "suspend":
              return Effect.as(Effect.sleep(Duration.seconds(s.behaviour.seconds)), Reply.respond(new Ping({ n: n + 1 })))
            case "value":
              return s.behaviour.value
          }
        }
      })
    )
  })

type Action =
  | { readonly _tag: "inject"; readonly to: string; readonly n: number }
  | { readonly _tag: "request"; readonly to: string }
  | { readonly _tag: "raw"; readonly text: string }
  | { readonly _tag: "reload"; readonly specs: ReadonlyArray<Spec> }
  | { readonly _tag: "tick"; readonly seconds: number }

const THREAD = "550e8400-e29b-41d4-a716-446655440000"
const raw = fc.oneof(
  fc.string(),
  fc.constantFrom(...names, "ghost").map((to) =>
    `<message xmlns="${ENVELOPE_NS}"><meta><from>outside</from><to>${to}</to><thread>${THREAD}</thread></meta><Ping xmlns=""><N>1</N></Ping></message>`
  ),
  fc.constant(`<message xmlns="${ENVELOPE_NS}"><meta><from>outside</from><thread>x</thread></meta><Note xmlns=""><Text>all</Text></Note></message>`),
  fc.constant(`<message xmlns="${ENVELOPE_NS}"><meta><from>outside</from><to>a</to><thread>${THREAD}</thread></meta><Ping xmlns=""><N>nope</N></Ping></message>`)
)

const action = (specs: fc.Arbitrary<ReadonlyArray<Spec>>): fc.Arbitrary<Action> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ _tag: fc.constant("inject" as const), to: fc.constantFrom(...names, "ghost"), n: fc.integer({ min: 0, max: 3 }) }) },
    { weight: 2, arbitrary: fc.record({ _tag: fc.constant("request" as const), to: fc.constantFrom(...names) }) },
    { weight: 2, arbitrary: fc.record({ _tag: fc.constant("raw" as const), text: raw }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("reload" as const), specs }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("tick" as const), seconds: fc.integer({ min: 0, max: 3 }) }) }
  )

const specs = fc.array(spec, { minLength: 3, maxLength: 3 })

/** Advances the test clock until `fiber` is done, at most `seconds`. */
const driveUntilDone = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, seconds: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < seconds && fiber.unsafePoll() === null; i++) {
      yield* TestClock.adjust("1 second")
      for (let j = 0; j < 20; j++) yield* Effect.yieldNow()
    }
    return fiber.unsafePoll()
  })

const scenario = (first: ReadonlyArray<Spec>, maxInvocations: number, actions: ReadonlyArray<Action>) =>
  Effect.gen(function*() {
    const pump: Pump.Service = yield* Pump.make(organismOf(first, maxInvocations))
    const requests: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
    for (const a of actions) {
      switch (a._tag) {
        case "inject":
          yield* Effect.exit(pump.inject(a.to, new Ping({ n: a.n })))
          break
        case "request":
          requests.push(yield* Effect.fork(pump.request(a.to, new Ping({ n: 0 }), { timeout: "10 minutes" })))
          break
        case "raw":
          yield* pump.injectRaw(a.text)
          break
        case "reload":
          yield* pump.reload(organismOf(a.specs, maxInvocations))
          break
        case "tick":
          yield* TestClock.adjust(Duration.seconds(a.seconds))
          break
      }
      yield* Effect.yieldNow()
    }
    // Every request ends, and the pump comes to rest, within the longest timeout the
    // organisms allow: nothing is wedged.
    for (const r of requests) expect(yield* driveUntilDone(r, 700)).not.toBeNull()
    const idle = yield* Effect.fork(pump.awaitIdle)
    expect(yield* driveUntilDone(idle, 700)).toEqual(Exit.void)
    expectBalanced(pump)
    expect(pump.threads()).toEqual({ roots: 0, nodes: 0 })
  }).pipe(Effect.scoped, Effect.provide(Pump.layerServices))

describe("the message lifecycle", () => {
  it.effect.prop(
    "every hop is settled exactly once and nothing wedges, whatever handlers do",
    [specs, fc.integer({ min: 3, max: 40 }), fc.array(action(specs), { minLength: 1, maxLength: 25 })],
    ([first, maxInvocations, actions]) => scenario(first, maxInvocations, actions),
    { fastCheck: { numRuns: 60 } }
  )

  it.effect("a handler that answers its own SystemErrors by forwarding to nobody is stopped by the step cap", () =>
    Effect.gen(function*() {
      const looping: Spec = {
        behaviour: { _tag: "forward", to: "ghost" },
        broadcast: false,
        timeoutSeconds: 1,
        answersErrors: true,
        exclusive: false,
        agent: false
      }
      const pump = yield* Pump.make(organismOf([looping], 20))
      yield* pump.inject("a", new Ping({ n: 0 }))
      const idle = yield* Effect.fork(pump.awaitIdle)
      expect(yield* driveUntilDone(idle, 5)).toEqual(Exit.void)
      expectBalanced(pump)
      const c = pump.counters()
      // 20 invocations (a forward to nobody and the SystemErrors it brings back), then the
      // one SystemError that tells why, then the cap stops everything.
      expect(c.invocations).toBe(1 + 21) // boot + the conversation
      expect(c.guardStopped).toBeGreaterThan(0)
    }).pipe(Effect.scoped, Effect.provide(Pump.layerServices)))
})
