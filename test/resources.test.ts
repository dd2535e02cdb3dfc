/**
 * Resource bounds: what a long-running organism must not accumulate.
 *
 * - Backpressure: a producer faster than the handlers never has more than `inbox_capacity`
 *   external messages in flight; it waits instead.
 * - Threads: after 100,000 conversations the registry is empty again and the heap has not
 *   grown with them.
 * - XML engine: 400,000 messages (valid and hostile) through the ingress stages leave the
 *   same number of native handles and the same WebAssembly heap as after warm-up.
 *
 * Bounds are checked structurally (counters, registry sizes, handle counts) and, for the
 * JavaScript heap, after forced garbage collections. No assertion is about speed.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Fiber, Queue } from "effect"
import { runInNewContext } from "node:vm"
import { setFlagsFromString } from "node:v8"
import { ENVELOPE_NS, writeEnvelope } from "../src/domain/Envelope.js"
import { isThreadId, makeThreadId, ownThreadId, type ThreadId } from "../src/domain/Ids.js"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { specOf } from "../src/domain/Payload.js"
import { Reply } from "../src/domain/Reply.js"
import { TodoUntil } from "../src/domain/TodoPayloads.js"
import { Pump } from "../src/pipeline/Pump.js"
import { BudgetRegistry } from "../src/services/BudgetRegistry.js"
import { ContextBuffer } from "../src/services/ContextBuffer.js"
import { TodoRegistry } from "../src/services/TodoRegistry.js"
import { IngressFixture, THREAD } from "./support/ingress.js"
import { expectBalanced, Note, Task, withPump } from "./support/pump.js"

/** A full, synchronous garbage collection (exposed at run time: no CLI flag needed). */
const collectGarbage: () => void = (() => {
  setFlagsFromString("--expose-gc")
  return runInNewContext("gc") as () => void
})()

const heapAfterGc = () => {
  collectGarbage()
  collectGarbage()
  return process.memoryUsage().heapUsed
}

describe("backpressure", () => {
  const CAPACITY = 4
  const TOTAL = 200

  for (const producer of ["inject", "injectRaw"] as const) {
    it.live(`a producer faster than the handlers (${producer}) waits: never more than inbox_capacity in flight`, () =>
      Effect.gen(function*() {
        const releases = yield* Queue.unbounded<void>()
        let open = 0
        let finished = 0
        let maxOpen = 0
        const organism = Organism.make({
          settings: { inboxCapacity: CAPACITY, maxConcurrentHandlers: 64 },
          listeners: [
            Listener.make({
              name: "slow",
              payload: Task,
              handler: () =>
                Effect.gen(function*() {
                  maxOpen = Math.max(maxOpen, ++open)
                  yield* Queue.take(releases)
                  open--
                  finished++
                })
            })
          ]
        })
        yield* withPump(organism, ({ pump }) =>
          Effect.gen(function*() {
            const raw = (id: number) =>
              writeEnvelope({
                from: "outside",
                to: "slow",
                thread: crypto.randomUUID(),
                payloadTag: "Task",
                payloadInner: specOf(Task).encodeInner(new Task({ id }))
              })
            let sent = 0
            const produce = Effect.forEach(
              Array.from({ length: TOTAL }, (_, i) => i),
              (i) =>
                Effect.map(
                  producer === "inject" ? Effect.asVoid(pump.inject("slow", new Task({ id: i }))) : pump.injectRaw(raw(i)),
                  () => void sent++
                ),
              { discard: true }
            )
            const injected0 = pump.counters().injected
            // Sampled at every step: messages admitted but not finished, and the pump's own count.
            let maxAhead = 0
            let maxInFlight = 0
            const sample = () => {
              const c = pump.counters()
              maxAhead = Math.max(maxAhead, c.injected - injected0 - finished)
              maxInFlight = Math.max(maxInFlight, c.inFlight)
              return c
            }
            const until = (what: string, condition: () => boolean) =>
              Effect.gen(function*() {
                for (let i = 0; i < 10_000; i++) {
                  sample()
                  if (condition()) return
                  yield* Effect.sleep("1 millis")
                }
                return yield* Effect.dieMessage(`never happened: ${what}`)
              })
            const fiber = yield* Effect.fork(produce)

            // The handlers hold every permit: the producer is parked, not queueing more.
            yield* until("the inbox capacity in use", () => pump.counters().running === CAPACITY)
            for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
            expect(sent).toBe(CAPACITY)
            expect(sample().injected - injected0).toBe(CAPACITY)
            expect(fiber.unsafePoll()).toBeNull()

            // Each finished message lets exactly one more in.
            for (let done = 1; done <= TOTAL; done++) {
              yield* Queue.offer(releases, undefined)
              const admitted = Math.min(TOTAL, done + CAPACITY)
              yield* until(`${done} finished, ${admitted} admitted`, () =>
                finished === done && pump.counters().injected - injected0 === admitted &&
                pump.counters().running === admitted - done)
            }
            yield* Fiber.join(fiber)
            yield* pump.awaitIdle
            expect(sent).toBe(TOTAL)
            expect(maxOpen).toBe(CAPACITY)
            expect(maxAhead).toBe(CAPACITY)
            expect(maxInFlight).toBe(CAPACITY)
          }))
      }))
  }
})

describe("thread ids", () => {
  it("fresh ids are distinct canonical UUIDv4s", () => {
    const ids = Array.from({ length: 100_000 }, makeThreadId)
    expect(ids.filter((id) => !isThreadId(id))).toEqual([])
    expect(new Set(ids).size).toBe(ids.length)
  })

  it("an id kept for a conversation is a flat string: not a rope, not a view into its envelope", () => {
    const kept = new Map<string, number>()
    const base = heapAfterGc()
    for (let i = 0; i < 100_000; i++) kept.set(makeThreadId(), i)
    // A flat 36-character string and its Map entry: well under 200 bytes (a rope: ≈ 500).
    expect((heapAfterGc() - base) / kept.size).toBeLessThan(200)

    // Ids read from 1 MiB envelopes: a plain substring keeps each envelope alive.
    const envelope = (i: number) => Buffer.alloc(1 << 20, 97 + (i % 26)).toString("latin1") + THREAD
    const retained = (take: (id: ThreadId) => ThreadId) => {
      const before = heapAfterGc()
      const ids = Array.from({ length: 16 }, (_, i) => take(envelope(i).slice(-36) as ThreadId))
      const grown = heapAfterGc() - before
      expect(ids.every((id) => id === THREAD)).toBe(true)
      return grown
    }
    expect(retained((id) => id)).toBeGreaterThan(8 << 20) // the measurement sees it
    expect(retained(ownThreadId)).toBeLessThan(1 << 20)
  })
})

describe("the thread registry and the registries keyed by conversation", () => {
  it.live("stay bounded over 100,000 conversations, and empty when they end", () =>
    Effect.gen(function*() {
      const CAPACITY = 256
      const budgets = yield* BudgetRegistry
      const organism = Organism.make({
        settings: { inboxCapacity: CAPACITY },
        listeners: [
          // Each conversation: console → a → b (a forwards, extending the chain), then ends.
          // On the way, agent `a` spends tokens and, every tenth time, raises a todo that
          // nothing will ever close: the conversation's end must clean both up.
          Listener.make({
            name: "a",
            agent: true,
            peers: ["b"],
            payload: Task,
            handler: (t, meta) => {
              budgets.unsafeConsume(meta.root, "a", { promptTokens: 10, completionTokens: 5 })
              const next = Reply.forward("b", new Note({ text: String(t.id) }))
              return t.id % 10 === 0
                ? Reply.all(next, Reply.forward("system.todo", new TodoUntil({ waitFor: "Never", description: "wait forever" })))
                : next
            }
          }),
          Listener.make({ name: "b", payload: Note, handler: () => Reply.none })
        ]
      })
      // No event subscriber (withPump keeps one): its queue would hold every event.
      const pump = yield* Pump.make(organism)
      let maxRoots = 0
      let maxNodes = 0
      const conversations = (from: number, to: number) =>
        Effect.gen(function*() {
          for (let i = from; i < to; i++) {
            yield* pump.inject("a", new Task({ id: i }))
            if (i % 97 === 0) {
              const t = pump.threads()
              maxRoots = Math.max(maxRoots, t.roots)
              maxNodes = Math.max(maxNodes, t.nodes)
            }
          }
          yield* pump.awaitIdle
        })
      yield* conversations(0, 10_000) // warm-up: JIT, pools, caches
      const warm = heapAfterGc()
      yield* conversations(10_000, 100_000)
      const after = heapAfterGc()

      expectBalanced(pump)
      // a and b in every conversation, system.todo in every tenth; nothing refused.
      expect(pump.counters().invocations).toBeGreaterThanOrEqual(210_000)
      expect(pump.counters().rejected + pump.counters().guardStopped).toBe(0)
      expect(pump.threads()).toEqual({ roots: 0, nodes: 0 })
      // Live conversations never exceed what the inbox admits (each holds its permit until
      // its last message settles); a conversation has three nodes (console, a, b).
      expect(maxRoots).toBeLessThanOrEqual(CAPACITY)
      expect(maxNodes).toBeLessThanOrEqual(CAPACITY * 3)
      // 90,000 conversations later: keeping even 50 bytes per conversation would show.
      expect(after - warm).toBeLessThan(90_000 * 50)
      // History keeps only what its retention allows; todos and budgets keep nothing.
      const history = yield* (yield* ContextBuffer).stats
      expect(history.threads).toBeLessThanOrEqual((yield* (yield* ContextBuffer).config).retainCompleted)
      expect(history.appended).toBeGreaterThanOrEqual(200_000)
      expect(yield* (yield* TodoRegistry).stats).toEqual({ threads: 0, open: 0, raised: 0 })
      expect(yield* budgets.stats).toMatchObject({ conversations: 0, totalTokens: 100_000 * 15 })
    }).pipe(Effect.scoped, Effect.provide(Pump.layerServices)), { timeout: 120_000 })
})

layer(IngressFixture.layer)("the XML engine", (it) => {
  // 400,000 rather than a million: on this 2-core machine, shared with other test suites, a
  // million of these mixed messages took 56 s (81 s with a deeper depth bomb in the mix) and
  // 400,000 take ≈ 18 s. 400,000 still catches any leak of one allocation per message
  // (≥ 16 bytes × 400,000 = 6 MB against a heap that grows in 64 KiB pages) and any
  // per-message document or schema handle.
  it.effect("leaks no handle and no WebAssembly memory over 400,000 messages", () =>
    Effect.gen(function*() {
      const { engine, ingress, routes } = yield* IngressFixture
      const env = (meta: string, payload: string) => `<message xmlns="${ENVELOPE_NS}"><meta>${meta}</meta>${payload}</message>`
      const meta = `<from>console</from><to>r</to><thread>${THREAD}</thread>`
      const valid = (i: number) =>
        writeEnvelope({ from: "console", to: "r", thread: THREAD, payloadTag: "Greeting", payloadInner: `<Name>n${i}</Name>` })
      // Every path through the stages, including each kind of rejection; fresh element and
      // attribute names keep libxml2's name dictionaries growing unless contexts are renewed.
      const inputs: ReadonlyArray<(i: number) => string> = [
        valid,
        valid,
        valid,
        (i) => env(meta, `<Doc xmlns=""><Title>t</Title><Body><e${i} a${i}="1">x</e${i}></Body></Doc>`),
        (i) => env(meta, `<Greeting xmlns=""><Name>unclosed ${i}</Greeting>`), // repaired
        (i) => env(meta, `<Greeting xmlns=""><Nom>${i}</Nom></Greeting>`), // PayloadInvalid
        (i) => env(meta, `<Int xmlns=""><Value>1${"0".repeat(30 + (i % 5))}</Value></Int>`), // DecodeFailed
        (i) => env(meta, `<Unknown${i} xmlns=""/>`), // UnknownRoute
        (i) => env(`<from>console</from><thread>${i}</thread><x:s${i} xmlns:x="urn:${i}"/>`, `<Greeting xmlns=""><Name>b</Name></Greeting>`),
        () => env(meta, ""), // NoPayload
        (i) => `<?xml version="1.0"?><!DOCTYPE m [<!ENTITY e${i} "x">]>${env(meta, "")}`, // DtdForbidden
        (i) => env(meta, `<Greeting xmlns="rel${i}"><Name>x</Name></Greeting>`), // no canonical form
        (i) => env(meta, `<Greeting xmlns=""><Name>a\u0001${i}</Name></Greeting>`), // not repaired
        (i) => `<message xmlns="${ENVELOPE_NS}">${"<a>".repeat(70)}${i}`, // too deep
        (i) => `garbage ${i}`
      ]
      const TOTAL = 400_000
      const WARM_UP = 40_000
      const EVERY = 80_000
      const CHUNK = 1000
      const chunk = (start: number) =>
        Array.from({ length: CHUNK }, (_, k) => Buffer.from(inputs[(start + k) % inputs.length]!(start + k), "utf8"))
      const outcomes = { Accepted: 0, Rejected: 0 }

      // The wasm heap only grows, so a leak could hide in its free space: each checkpoint also
      // measures the bytes in use (which grows the heap one step for the next stretch).
      let baseline: { readonly handles: ReturnType<typeof engine.liveHandles>; readonly inUse: number } | undefined
      let heapSize = 0
      const checkpoint = () => {
        const handles = engine.liveHandles()
        if (baseline === undefined) baseline = { handles, inUse: engine.heapBytesInUse() }
        else {
          expect(handles).toEqual(baseline.handles)
          // The messages since the last checkpoint never needed more wasm memory…
          expect(engine.heapBytes()).toBe(heapSize)
          // …and left no more of it in use than after warm-up (to 16 KiB, plus fragmentation).
          expect(engine.heapBytesInUse() - baseline.inUse).toBeLessThan(1 << 20)
        }
        heapSize = engine.heapBytes()
      }

      for (let start = 0; start < TOTAL; start += CHUNK) {
        const messages = chunk(start)
        // Half of the chunks go through runBatch (what the pump uses), half one by one.
        const results = (start / CHUNK) % 2 === 0
          ? ingress.runBatch(messages, routes)
          : messages.map((m) => ingress.run(m, routes))
        for (const r of results) outcomes[r._tag]++
        const done = start + CHUNK
        if (done === WARM_UP || (done > WARM_UP && done % EVERY === 0)) checkpoint()
        // This loop is synchronous work for many seconds: let the test runner's own I/O in.
        yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
      }
      expect(outcomes.Accepted + outcomes.Rejected).toBe(TOTAL)
      expect(outcomes.Accepted).toBeGreaterThan(TOTAL / 5)
      expect(outcomes.Rejected).toBeGreaterThan(TOTAL / 2)
      expect(engine.liveHandles()).toEqual(baseline!.handles)
    }), { timeout: 120_000 })
})
