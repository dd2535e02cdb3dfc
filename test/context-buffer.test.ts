import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, FastCheck as fc, Option, TestClock } from "effect"
import { makeThreadId, type ThreadId } from "../src/domain/Ids.js"
import {
  type AppendResult,
  ContextBuffer,
  type ContextBufferConfig,
  ContextFull,
  type ContextMessage,
  makeContextBuffer
} from "../src/services/ContextBuffer.js"
import { isContextFull } from "../src/services/errors.js"

const roots = Array.from({ length: 5 }, () => makeThreadId())
const hop = makeThreadId()

const message = (root: ThreadId, id: string, extra: Partial<ContextMessage> = {}): ContextMessage => ({
  id,
  root,
  thread: hop,
  from: "console",
  to: "greeter",
  payloadType: "Greeting",
  payload: { id },
  xml: `<Greeting><Name>${id}</Name></Greeting>`,
  ...extra
})

const appended = (r: ReturnType<ContextBuffer.Service["unsafeAppend"]>) => {
  const a = Either.getOrThrow(r)
  if (a._tag !== "Appended") throw new Error(`expected Appended, got ${a._tag}`)
  return a.slot
}

const slotOf = (a: AppendResult) => {
  if (a._tag !== "Appended") throw new Error(`expected Appended, got ${a._tag}`)
  return a.slot
}

const ids = (buffer: ContextBuffer.Service, root: ThreadId) => buffer.unsafeSlots(root).map((s) => s.id)

describe("ContextBuffer", () => {
  it.effect("records a delivered message with its hop, sender, target, type, value, XML, index and time", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_000)
      const buffer = yield* ContextBuffer.make()
      const [root] = roots
      const slot = slotOf(yield* buffer.append(message(root!, "m1")))
      expect(slot).toEqual({ ...message(root!, "m1"), index: 0, time: 1_000 })
      yield* TestClock.adjust(Duration.millis(5))
      expect(slotOf(yield* buffer.append(message(root!, "m2"))).index).toBe(1)
      expect((yield* buffer.slots(root!)).map((s) => [s.index, s.time])).toEqual([[0, 1_000], [1, 1_005]])
      expect(yield* buffer.info(root!)).toEqual(
        Option.some({ root, slots: 2, firstIndex: 0, nextIndex: 2, createdAt: 1_000, completedAt: undefined })
      )
      expect((yield* buffer.get(root!, 1)).pipe(Option.map((s) => s.id))).toEqual(Option.some("m2"))
      expect(yield* buffer.get(root!, 2)).toEqual(Option.none())
      expect(yield* buffer.info(makeThreadId())).toEqual(Option.none())
      expect(yield* buffer.stats).toMatchObject({ threads: 1, slots: 2, appended: 2 })
    }))

  it.effect("append fails with ContextFull in the error channel; complete and cleanup are Effects", () =>
    Effect.gen(function*() {
      const buffer = yield* ContextBuffer.make({ maxSlotsPerThread: 1, onFull: "reject", retainCompleted: 0 })
      const root = roots[0]!
      yield* buffer.append(message(root, "a"))
      const error = yield* Effect.flip(buffer.append(message(root, "b")))
      expect(error).toBeInstanceOf(ContextFull)
      expect(isContextFull(error)).toBe(true)
      expect(error).toMatchObject({ root, maxSlots: 1 })
      yield* buffer.complete(root)
      expect(yield* buffer.slots(root)).toEqual([])
      yield* buffer.append(message(roots[1]!, "a"))
      yield* buffer.cleanup(roots[1]!)
      expect(yield* buffer.stats).toMatchObject({ threads: 0, slots: 0, rejected: 1 })
    }))

  it("a message id already recorded is a no-op answered with Duplicate", () => {
    const buffer = makeContextBuffer()
    const root = roots[0]!
    appended(buffer.unsafeAppend(message(root, "m1")))
    expect(Either.getOrThrow(buffer.unsafeAppend(message(root, "m1", { from: "someone-else" })))).toEqual({ _tag: "Duplicate", id: "m1" })
    expect(ids(buffer, root)).toEqual(["m1"])
    expect(buffer.unsafeSlots(root)[0]!.from).toBe("console")
    // The same id on another conversation is another message.
    appended(buffer.unsafeAppend(message(roots[1]!, "m1")))
    expect(buffer.unsafeStats()).toMatchObject({ appended: 2, duplicates: 1, slots: 2 })
  })

  it("a duplicate stays a duplicate after its slot was dropped", () => {
    const buffer = makeContextBuffer({ maxSlotsPerThread: 2, onFull: "drop-oldest" })
    const root = roots[0]!
    for (const id of ["a", "b", "c"]) appended(buffer.unsafeAppend(message(root, id)))
    expect(ids(buffer, root)).toEqual(["b", "c"])
    expect(Either.getOrThrow(buffer.unsafeAppend(message(root, "a")))._tag).toBe("Duplicate")
    expect(ids(buffer, root)).toEqual(["b", "c"])
  })

  it("an id given as unique is neither checked nor remembered: the ids without it still are", () => {
    const buffer = makeContextBuffer()
    const root = roots[0]!
    const u1 = appended(buffer.unsafeAppend(message(root, "1", { unique: true })))
    expect(u1).not.toHaveProperty("unique")
    appended(buffer.unsafeAppend(message(root, "2", { unique: true })))
    // Not remembered: the same id without `unique` is a message the buffer has not seen.
    appended(buffer.unsafeAppend(message(root, "1")))
    appended(buffer.unsafeAppend(message(root, "m")))
    expect(Either.getOrThrow(buffer.unsafeAppend(message(root, "m")))._tag).toBe("Duplicate")
    expect(Either.getOrThrow(buffer.unsafeAppend(message(root, "1")))._tag).toBe("Duplicate")
    expect(ids(buffer, root)).toEqual(["1", "2", "1", "m"])
    expect(buffer.unsafeSlots(root).map((s) => s.index)).toEqual([0, 1, 2, 3])
    expect(buffer.unsafeStats()).toMatchObject({ appended: 4, duplicates: 2, slots: 4 })
  })

  it("reject policy: a full conversation refuses with ContextFull and is left unchanged", () => {
    const buffer = makeContextBuffer({ maxSlotsPerThread: 2, onFull: "reject" })
    const root = roots[0]!
    appended(buffer.unsafeAppend(message(root, "a")))
    appended(buffer.unsafeAppend(message(root, "b")))
    const refused = buffer.unsafeAppend(message(root, "c"))
    if (Either.isRight(refused)) throw new Error("expected ContextFull")
    const error = refused.left
    expect(error).toBeInstanceOf(ContextFull)
    expect(error).toMatchObject({ _tag: "ContextFull", root, maxSlots: 2 })
    expect(error.message).toContain("2 messages")
    expect(ids(buffer, root)).toEqual(["a", "b"])
    expect(buffer.unsafeStats()).toMatchObject({ rejected: 1, slots: 2, droppedSlots: 0 })
    // Not recorded, so it is not a duplicate either: once there is room it can be recorded.
    expect(Either.isLeft(buffer.unsafeAppend(message(root, "c")))).toBe(true)
  })

  it("drop-oldest policy: keeps the newest slots; indexes are never reused", () => {
    const buffer = makeContextBuffer({ maxSlotsPerThread: 3, onFull: "drop-oldest" })
    const root = roots[0]!
    for (let i = 0; i < 200; i++) appended(buffer.unsafeAppend(message(root, `m${i}`)))
    expect(ids(buffer, root)).toEqual(["m197", "m198", "m199"])
    expect(buffer.unsafeSlots(root).map((s) => s.index)).toEqual([197, 198, 199])
    expect(buffer.unsafeGet(root, 196)).toBeUndefined()
    expect(buffer.unsafeGet(root, 198)!.id).toBe("m198")
    expect(buffer.unsafeInfo(root)).toMatchObject({ slots: 3, firstIndex: 197, nextIndex: 200 })
    expect(buffer.unsafeStats()).toMatchObject({ slots: 3, droppedSlots: 197, rejected: 0 })
  })

  it.effect("queries by type, sender, target, participant, hop, index range, time range and last N", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(0)
      const buffer = yield* ContextBuffer.make()
      const root = roots[0]!
      const other = makeThreadId()
      const log: Array<Partial<ContextMessage>> = [
        { from: "console", to: "writer", payloadType: "Task" },
        { from: "writer", to: "researcher", payloadType: "ResearchRequest", thread: other },
        { from: "researcher", to: "writer", payloadType: "ResearchResult" },
        { from: "writer", to: "researcher", payloadType: "ResearchRequest", thread: other },
        { from: "researcher", to: "writer", payloadType: "ResearchResult" },
        { from: "writer", to: "console", payloadType: "Article" }
      ]
      for (const [i, extra] of log.entries()) {
        yield* buffer.append(message(root, `m${i}`, extra))
        yield* TestClock.adjust(Duration.millis(10))
      }
      // The synchronous twin answers exactly what the Effect does.
      expect(yield* buffer.query(root, { from: "writer" })).toEqual(buffer.unsafeQuery(root, { from: "writer" }))
      const q = (query: Parameters<ContextBuffer.Service["unsafeQuery"]>[1]) => buffer.unsafeQuery(root, query).map((s) => s.id)
      expect(q({ payloadType: "researchresult" })).toEqual(["m2", "m4"])
      expect(q({ from: "WRITER" })).toEqual(["m1", "m3", "m5"])
      expect(q({ to: "writer" })).toEqual(["m0", "m2", "m4"])
      expect(q({ involving: "researcher" })).toEqual(["m1", "m2", "m3", "m4"])
      expect(q({ thread: other })).toEqual(["m1", "m3"])
      expect(q({ index: { from: 2, to: 4 } })).toEqual(["m2", "m3"])
      expect(q({ index: { from: 4 } })).toEqual(["m4", "m5"])
      expect(q({ index: { to: -3 } })).toEqual([])
      expect(q({ time: { from: 10, to: 30 } })).toEqual(["m1", "m2"])
      expect(q({ from: "writer", last: 2 })).toEqual(["m3", "m5"])
      expect(q({ payloadType: "ResearchRequest", from: "writer", index: { from: 2 } })).toEqual(["m3"])
      expect(q({})).toEqual(log.map((_, i) => `m${i}`))
      expect(buffer.unsafeQuery(makeThreadId(), {})).toEqual([])
    }))

  it("slots() is a snapshot: later appends do not change an array already handed out", () => {
    const buffer = makeContextBuffer()
    const root = roots[0]!
    appended(buffer.unsafeAppend(message(root, "a")))
    const before = buffer.unsafeSlots(root)
    appended(buffer.unsafeAppend(message(root, "b")))
    expect(before.map((s) => s.id)).toEqual(["a"])
  })

  describe("conversations", () => {
    it("a new conversation evicts a completed one first, the longest completed", () => {
      const buffer = makeContextBuffer({ maxThreads: 3 })
      const [a, b, c, d, e] = roots as [ThreadId, ThreadId, ThreadId, ThreadId, ThreadId]
      for (const r of [a, b, c]) appended(buffer.unsafeAppend(message(r, "m")))
      buffer.unsafeComplete(c)
      buffer.unsafeComplete(b)
      appended(buffer.unsafeAppend(message(d, "m")))
      expect(buffer.unsafeInfo(c)).toBeUndefined() // completed first, so evicted first
      expect(buffer.unsafeInfo(b)).toBeDefined()
      expect(buffer.unsafeInfo(a)).toBeDefined() // live, older than b, but b is completed
      appended(buffer.unsafeAppend(message(e, "m")))
      expect(buffer.unsafeInfo(b)).toBeUndefined()
      expect(buffer.unsafeStats()).toMatchObject({ threads: 3, completed: 0, evictedThreads: 2 })
    })

    it("with no completed conversation, the oldest live one is evicted", () => {
      const buffer = makeContextBuffer({ maxThreads: 2 })
      const [a, b, c] = roots as [ThreadId, ThreadId, ThreadId]
      for (const r of [a, b]) appended(buffer.unsafeAppend(message(r, "m")))
      appended(buffer.unsafeAppend(message(a, "m2"))) // activity does not make it younger
      appended(buffer.unsafeAppend(message(c, "m")))
      expect(buffer.unsafeInfo(a)).toBeUndefined()
      expect(ids(buffer, b)).toEqual(["m"])
      expect(ids(buffer, c)).toEqual(["m"])
    })

    it("completed conversations stay queryable, at most retainCompleted of them", () => {
      const buffer = makeContextBuffer({ retainCompleted: 2 })
      const [a, b, c] = roots as [ThreadId, ThreadId, ThreadId]
      for (const r of [a, b, c]) appended(buffer.unsafeAppend(message(r, "m")))
      buffer.unsafeComplete(a)
      buffer.unsafeComplete(b)
      expect(ids(buffer, a)).toEqual(["m"])
      expect(buffer.unsafeInfo(a)!.completedAt).toBeTypeOf("number")
      buffer.unsafeComplete(c)
      expect(buffer.unsafeInfo(a)).toBeUndefined()
      expect(ids(buffer, b)).toEqual(["m"])
      expect(ids(buffer, c)).toEqual(["m"])
      expect(buffer.unsafeStats()).toMatchObject({ threads: 2, completed: 2 })
    })

    it.effect("completed conversations expire after retainFor (TestClock)", () =>
      Effect.gen(function*() {
        const buffer = yield* ContextBuffer.make({ retainFor: Duration.minutes(5) })
        const [a, b] = roots as [ThreadId, ThreadId]
        yield* buffer.append(message(a, "m"))
        yield* buffer.append(message(b, "m"))
        yield* buffer.complete(a)
        yield* TestClock.adjust(Duration.minutes(4))
        yield* buffer.complete(b)
        expect((yield* buffer.stats).completed).toBe(2)
        yield* TestClock.adjust(Duration.minutes(1))
        expect(yield* buffer.slots(a)).toEqual([])
        expect(ids(buffer, b)).toEqual(["m"])
        yield* TestClock.adjust(Duration.minutes(4))
        expect(yield* buffer.info(b)).toEqual(Option.none())
        expect(yield* buffer.stats).toMatchObject({ threads: 0, completed: 0, slots: 0, evictedThreads: 2 })
      }))

    it("retainCompleted 0 drops a conversation as it completes", () => {
      const buffer = makeContextBuffer({ retainCompleted: 0 })
      appended(buffer.unsafeAppend(message(roots[0]!, "m")))
      buffer.unsafeComplete(roots[0]!)
      expect(buffer.unsafeInfo(roots[0]!)).toBeUndefined()
      expect(buffer.unsafeStats().slots).toBe(0)
    })

    it("a message on a completed conversation reopens it, history included", () => {
      const buffer = makeContextBuffer()
      const root = roots[0]!
      appended(buffer.unsafeAppend(message(root, "a")))
      buffer.unsafeComplete(root)
      expect(buffer.unsafeStats().completed).toBe(1)
      appended(buffer.unsafeAppend(message(root, "b")))
      expect(ids(buffer, root)).toEqual(["a", "b"])
      expect(buffer.unsafeInfo(root)!.completedAt).toBeUndefined()
      expect(buffer.unsafeStats().completed).toBe(0)
    })

    it("cleanup forgets a conversation at once; unknown roots are ignored", () => {
      const buffer = makeContextBuffer()
      appended(buffer.unsafeAppend(message(roots[0]!, "a")))
      appended(buffer.unsafeAppend(message(roots[1]!, "a")))
      buffer.unsafeCleanup(roots[0]!)
      buffer.unsafeCleanup(makeThreadId())
      buffer.unsafeComplete(makeThreadId())
      expect(buffer.unsafeInfo(roots[0]!)).toBeUndefined()
      expect(buffer.unsafeStats()).toMatchObject({ threads: 1, slots: 1, evictedThreads: 0 })
    })
  })

  describe("reconfigure (hot reload)", () => {
    it.effect("the current limits are readable; reconfigure replaces the ones given and keeps the others", () =>
      Effect.gen(function*() {
        const buffer = yield* ContextBuffer.make({ maxSlotsPerThread: 10, maxThreads: 7 })
        expect(yield* buffer.config).toMatchObject({ maxSlotsPerThread: 10, maxThreads: 7, onFull: "reject" })
        yield* buffer.reconfigure({ maxSlotsPerThread: 1, onFull: "drop-oldest" })
        expect(yield* buffer.config).toMatchObject({ maxSlotsPerThread: 1, maxThreads: 7, onFull: "drop-oldest" })
        expect(buffer.unsafeConfig()).toEqual(yield* buffer.config)
      }))

    it.effect("a lowered slot limit with drop-oldest: each conversation comes down to it on its next append", () =>
      Effect.gen(function*() {
        const buffer = yield* ContextBuffer.make({ maxSlotsPerThread: 10, onFull: "drop-oldest" })
        const [a, b] = roots as [ThreadId, ThreadId]
        for (let i = 0; i < 8; i++) {
          yield* buffer.append(message(a, `a${i}`))
          yield* buffer.append(message(b, `b${i}`))
        }
        yield* buffer.reconfigure({ maxSlotsPerThread: 3 })
        // Nothing is dropped until a conversation takes its next message.
        expect(ids(buffer, a)).toHaveLength(8)
        yield* buffer.append(message(a, "a8"))
        expect(ids(buffer, a)).toEqual(["a6", "a7", "a8"])
        expect((yield* buffer.slots(a)).map((s) => s.index)).toEqual([6, 7, 8])
        expect(ids(buffer, b)).toHaveLength(8)
        yield* buffer.append(message(b, "b8"))
        expect(ids(buffer, b)).toEqual(["b6", "b7", "b8"])
        yield* buffer.append(message(b, "b9"))
        expect(ids(buffer, b)).toEqual(["b7", "b8", "b9"])
        expect(yield* buffer.stats).toMatchObject({ slots: 6, droppedSlots: 13 })
        // A new conversation is held to the new limit too.
        for (let i = 0; i < 5; i++) yield* buffer.append(message(roots[2]!, `c${i}`))
        expect(ids(buffer, roots[2]!)).toEqual(["c2", "c3", "c4"])
      }))

    it.effect("a lowered slot limit with reject: the next message is refused and the history is kept", () =>
      Effect.gen(function*() {
        const buffer = yield* ContextBuffer.make({ maxSlotsPerThread: 10, onFull: "reject" })
        const root = roots[0]!
        for (let i = 0; i < 5; i++) yield* buffer.append(message(root, `m${i}`))
        yield* buffer.reconfigure({ maxSlotsPerThread: 3 })
        const error = yield* Effect.flip(buffer.append(message(root, "m5")))
        expect(error).toMatchObject({ _tag: "ContextFull", root, maxSlots: 3 })
        expect(ids(buffer, root)).toEqual(["m0", "m1", "m2", "m3", "m4"])
        // Switching the policy to drop-oldest lets it go on, at the new limit.
        yield* buffer.reconfigure({ onFull: "drop-oldest" })
        yield* buffer.append(message(root, "m5"))
        expect(ids(buffer, root)).toEqual(["m3", "m4", "m5"])
        // Raising the limit gives room again, from the next append.
        yield* buffer.reconfigure({ maxSlotsPerThread: 5, onFull: "reject" })
        yield* buffer.append(message(root, "m6"))
        yield* buffer.append(message(root, "m7"))
        expect(ids(buffer, root)).toEqual(["m3", "m4", "m5", "m6", "m7"])
        expect(Either.isLeft(buffer.unsafeAppend(message(root, "m8")))).toBe(true)
      }))

    it("a lowered conversation limit evicts as many as needed when the next conversation opens", () => {
      const buffer = makeContextBuffer({ maxThreads: 5 })
      const [a, b, c, d, e] = roots as [ThreadId, ThreadId, ThreadId, ThreadId, ThreadId]
      for (const r of [a, b, c, d]) appended(buffer.unsafeAppend(message(r, "m")))
      buffer.unsafeComplete(c)
      buffer.unsafeReconfigure({ maxThreads: 2 })
      expect(buffer.unsafeStats().threads).toBe(4)
      appended(buffer.unsafeAppend(message(e, "m")))
      // The completed one first, then the oldest live ones.
      expect([a, b, c, d, e].map((r) => buffer.unsafeInfo(r) !== undefined)).toEqual([false, false, false, true, true])
      expect(buffer.unsafeStats()).toMatchObject({ threads: 2, evictedThreads: 3 })
    })

    it.effect("retention: a shorter retainFor expires at once, a lower retainCompleted at the next completion", () =>
      Effect.gen(function*() {
        const buffer = yield* ContextBuffer.make({ retainCompleted: 5, retainFor: Duration.hours(1) })
        const [a, b, c, d] = roots as [ThreadId, ThreadId, ThreadId, ThreadId]
        for (const r of [a, b, c, d]) yield* buffer.append(message(r, "m"))
        yield* buffer.complete(a)
        yield* TestClock.adjust(Duration.minutes(10))
        yield* buffer.complete(b)
        yield* buffer.complete(c)
        yield* buffer.reconfigure({ retainFor: Duration.minutes(5) })
        // a completed 10 minutes ago: past the new 5 minutes.
        expect(yield* buffer.info(a)).toEqual(Option.none())
        expect((yield* buffer.stats).completed).toBe(2)
        yield* buffer.reconfigure({ retainCompleted: 1 })
        expect((yield* buffer.stats).completed).toBe(2)
        yield* buffer.complete(d)
        expect((yield* buffer.stats).completed).toBe(1)
        expect(Option.isSome(yield* buffer.info(d))).toBe(true)
      }))
  })

  describe("bounds under random appends, completions, cleanups and reconfigurations", () => {
    type Op =
      | { readonly op: "append"; readonly root: number; readonly id: number }
      | { readonly op: "complete"; readonly root: number }
      | { readonly op: "cleanup"; readonly root: number }
      | { readonly op: "tick"; readonly ms: number }
      | { readonly op: "reconfigure"; readonly config: Partial<ContextBufferConfig> }

    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 8, arbitrary: fc.record({ op: fc.constant("append" as const), root: fc.nat(4), id: fc.nat(15) }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("complete" as const), root: fc.nat(4) }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant("cleanup" as const), root: fc.nat(4) }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("tick" as const), ms: fc.nat(400) }) }
    )

    const limits = {
      maxSlotsPerThread: fc.integer({ min: 1, max: 6 }),
      maxThreads: fc.integer({ min: 1, max: 4 }),
      onFull: fc.constantFrom("reject" as const, "drop-oldest" as const),
      retainCompleted: fc.integer({ min: 0, max: 3 }),
      retainFor: fc.oneof(fc.integer({ min: 1, max: 1000 }).map(Duration.millis), fc.constant(Duration.infinity))
    }
    const config: fc.Arbitrary<ContextBufferConfig> = fc.record(limits)

    // Some of the limits, replaced while conversations are under way (a hot reload).
    const reconfigure: fc.Arbitrary<Op> = fc.record({
      op: fc.constant("reconfigure" as const),
      config: fc.record(limits, { requiredKeys: [] })
    })
    const opOrReconfigure: fc.Arbitrary<Op> = fc.oneof({ weight: 13, arbitrary: op }, { weight: 1, arbitrary: reconfigure })

    /** The rules, written as plainly as possible: the implementation must agree step by step. */
    interface Model {
      created: number
      completed: number | undefined
      completedAt: number
      seen: Set<string>
      slots: Array<string>
    }

    /**
     * Runs `ops` on a buffer and on the model. Each limit applies from the next operation it
     * governs (slots: the conversation's next append; conversations: the next one opened;
     * retained: the next completion; retention time: at once). Right after such an operation
     * the limit in force holds; at every step, the largest limit in force so far holds.
     */
    const agree = (initial: ContextBufferConfig, ops: ReadonlyArray<Op>) => {
      let t = 0
      let cfg = initial
      const buffer = makeContextBuffer(cfg, () => t)
      const model = new Map<number, Model>()
      let seq = 0
      const bound = { slots: cfg.maxSlotsPerThread, threads: cfg.maxThreads, completed: cfg.retainCompleted }
      const completedCount = () => [...model.values()].filter((x) => x.completed !== undefined).length
      const expire = () => {
        const retainMs = Duration.toMillis(cfg.retainFor)
        for (const [r, m] of model) if (m.completed !== undefined && m.completedAt + retainMs <= t) model.delete(r)
      }
      const oldest = (pick: (m: Model) => number | undefined) => {
        let best: number | undefined
        let bestKey = Infinity
        for (const [r, m] of model) {
          const k = pick(m)
          if (k !== undefined && k < bestKey) [best, bestKey] = [r, k]
        }
        return best
      }
      for (const o of ops) {
        switch (o.op) {
          case "tick":
            t += o.ms
            break
          case "reconfigure":
            buffer.unsafeReconfigure(o.config)
            cfg = { ...cfg, ...o.config }
            expect(buffer.unsafeConfig()).toEqual(cfg)
            bound.slots = Math.max(bound.slots, cfg.maxSlotsPerThread)
            bound.threads = Math.max(bound.threads, cfg.maxThreads)
            bound.completed = Math.max(bound.completed, cfg.retainCompleted)
            break
          case "cleanup":
            buffer.unsafeCleanup(roots[o.root]!)
            model.delete(o.root)
            break
          case "complete": {
            buffer.unsafeComplete(roots[o.root]!)
            expire()
            const m = model.get(o.root)
            if (m === undefined || m.completed !== undefined) break
            if (cfg.retainCompleted === 0) {
              model.delete(o.root)
              break
            }
            m.completed = seq++
            m.completedAt = t
            while (completedCount() > cfg.retainCompleted) model.delete(oldest((x) => x.completed)!)
            expect(buffer.unsafeStats().completed).toBeLessThanOrEqual(cfg.retainCompleted)
            break
          }
          case "append": {
            const id = `m${o.id}`
            const result = buffer.unsafeAppend(message(roots[o.root]!, id))
            expire()
            let m = model.get(o.root)
            const opened = m === undefined
            if (m === undefined) {
              while (model.size >= cfg.maxThreads) model.delete(oldest((x) => x.completed) ?? oldest((x) => x.created)!)
              model.set(o.root, m = { created: seq++, completed: undefined, completedAt: 0, seen: new Set(), slots: [] })
            } else if (m.seen.has(id)) {
              expect(Either.getOrThrow(result)._tag).toBe("Duplicate")
              break
            } else if (m.slots.length >= cfg.maxSlotsPerThread && cfg.onFull === "reject") {
              expect(Either.isLeft(result)).toBe(true)
              break
            }
            expect(Either.getOrThrow(result)._tag).toBe("Appended")
            m.completed = undefined
            m.seen.add(id)
            m.slots.push(id)
            while (m.slots.length > cfg.maxSlotsPerThread) m.slots.shift()
            expect(ids(buffer, roots[o.root]!).length).toBeLessThanOrEqual(cfg.maxSlotsPerThread)
            if (opened) expect(buffer.unsafeStats().threads).toBeLessThanOrEqual(cfg.maxThreads)
            break
          }
        }
        expire() // queries expire too
        // Compared as one string per step (cheap); a difference fails with a readable diff.
        const stats = buffer.unsafeStats()
        const held = roots.map((r) => ids(buffer, r))
        const actual = {
          threads: stats.threads,
          completed: stats.completed,
          slots: stats.slots,
          held,
          bounded: stats.threads <= bound.threads && stats.completed <= bound.completed &&
            held.every((h) => h.length <= bound.slots && new Set(h).size === h.length)
        }
        const kept = roots.map((_, i) => model.get(i)?.slots ?? [])
        const expected = {
          threads: model.size,
          completed: completedCount(),
          slots: kept.reduce((n, h) => n + h.length, 0),
          held: kept,
          bounded: true
        }
        if (JSON.stringify(actual) !== JSON.stringify(expected)) expect(actual).toEqual(expected)
      }
    }

    it.prop("the buffer agrees with a plain model, and every bound holds after every step", [config, fc.array(op, { minLength: 10, maxLength: 120, size: "max" })], ([cfg, ops]) => {
      agree(cfg, ops)
    }, { fastCheck: { numRuns: 200 } })

    it.prop("the same, with the limits replaced at random points (hot reload)", [config, fc.array(opOrReconfigure, { minLength: 10, maxLength: 150, size: "max" })], ([cfg, ops]) => {
      agree(cfg, ops)
    }, { fastCheck: { numRuns: 300 } })
  })
})
